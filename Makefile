# `make demo` and `make test` create .venv on first use and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The torch build to install first; the releases tested here. Override on a cluster,
# e.g. `make TORCH='torch torchvision' test`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The environment alone (e.g. on a cluster's login node): nothing runs, nothing is submitted.
install: $(STAMP)

# The whole study on the generated data set, on the CPU, ending in results/report.html.
demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m snakemake --cores all --configfile config/demo.yaml \
		--scheduler greedy --report results/report.html --report-after-run

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/layers.py
	$(PY) bench/train.py
	$(PY) bench/dag.py

clean:
	rm -rf $(VENV) .pytest_cache
