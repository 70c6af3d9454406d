"""Bad workflow configs are refused whole, before any job, with the key named (and a real
`snakemake -n` shows it); bad YAML files name their line."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hybrid.strict_yaml import ConfigFileError, load_yaml, parse_yaml
from hybrid.studies.checks import ConfigError, check_config, check_config_files

ROOT = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())


def edited(path: str, value):
    """An edit that sets the dotted `path` (list indices as numbers) of a config to `value`."""
    def edit(config):
        *parents, leaf = path.split(".")
        node = config
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[leaf] = value
    return edit


CASES = [
    # every model and train range, in `base` or in a study's grid
    (edited("base.model.smoothness", 0), r"base\.model\.smoothness: 0 is less than or equal to the minimum of 0"),
    (lambda c: c["studies"]["smoothness"]["vary"].update({"model.smoothness": [0, 4]}),
     r"studies\.smoothness .*model\.smoothness: input should be greater than 0, got 0"),
    (edited("base.model.init_stride", [1, 1, 0.5, 2, 2]), r"base\.model\.init_stride\.2"),
    (edited("base.model.head_stride", 0.5), r"base\.model\.head_stride: 0\.5 is less than the minimum of 1"),
    (edited("base.train.lr", -0.1), r"base\.train\.lr: -0\.1 is less than or equal to the minimum of 0"),
    (edited("base.train.lr", float("nan")), r"train\.lr: input should be a finite number, got nan"),
    (edited("base.train.momentum", -1), r"base\.train\.momentum: -1 is less than the minimum of 0"),
    (edited("base.train.label_smoothing", 1.5), r"base\.train\.label_smoothing: 1\.5 is greater than or equal to the maximum of 1"),
    (edited("base.train.eval_batch_size", 0), r"base\.train\.eval_batch_size: 0 is less than the minimum of 1"),
    (edited("base.train.crop_padding", -2), r"base\.train\.crop_padding: -2 is less than the minimum of 0"),
    (edited("base.train.milestones", [0.75, 0.5]), r"train\.milestones must increase"),
    (edited("base.train.device", "gpu"), r"base\.train\.device: 'gpu' does not match"),
    (edited("base.train.epochs", "ten"), r"base\.train\.epochs: 'ten' is not of type 'integer'"),
    (edited("base.optim", {}), r"base: Additional properties are not allowed \('optim' was unexpected\) \(schema rule: known keys only\)"),
    (edited("analysis.alpha", 2), r"analysis\.alpha: 2 is greater than or equal to the maximum of 1"),
    (edited("analysis.correction", "bonferroni"), r"analysis\.correction: 'bonferroni' is not one of"),
    # the analysis sections against the studies
    (edited("sweeps.smoothness.default", "3"),
     r"sweeps\.smoothness\.default: '3' is not a level of model\.smoothness in study 'smoothness'; its levels are 2, 4"),
    (edited("sweeps.smoothness.axis", "model.width"),
     r"sweeps\.smoothness\.axis: 'model\.width' is not varied in study 'smoothness'"),
    (edited("sweeps.smoothness.study", "smooth"), r"sweeps\.smoothness\.study: no study 'smooth'"),
    (edited("comparisons.hybrid_vs_diffstride.study", "pool"),
     r"comparisons\.hybrid_vs_diffstride\.study: no study 'pool'; the config's studies are"),
    (edited("comparisons.hybrid_vs_diffstride.treatment", {"variant": "hybird"}),
     r"comparisons\.hybrid_vs_diffstride\.treatment\.variant: 'hybird' is not a value of variant in study 'pooling'"),
    (edited("comparisons.hybrid_vs_diffstride.by", ["dataset"]),
     r"comparisons\.hybrid_vs_diffstride\.by: 'dataset' is no run-table column"),
    (edited("comparisons.hybrid_vs_diffstride.control", {"model.widht": 4}),
     r"comparisons\.hybrid_vs_diffstride\.control: 'model\.widht' is no run-table column"),
    (edited("studies.pooling.fixed", {"variant": "median"}), r"studies\.pooling: unknown variant 'median'"),
    (edited("base.train.device", "cuda"), r"train\.device: 21 runs ask for 'cuda' .* but resources\.gpus is 0"),
]


@pytest.mark.parametrize("edit,message", CASES)
def test_a_bad_workflow_config_is_refused_naming_the_key(edit, message):
    config = copy.deepcopy(DEMO)
    edit(config)
    with pytest.raises(ConfigError, match=message) as caught:
        check_config(config)
    assert len(str(caught.value)) < 400  # the path and the rule, not the schema


def test_the_demo_config_passes_and_resolves():
    assert len(check_config(copy.deepcopy(DEMO))) == 21


@pytest.mark.parametrize("text,message", [
    ("seeds: [0]\nseeds: [1]\n", r"line 2, column 1: found key 'seeds' again \(first at line 1\)"),
    ("studies:\n  a: {vary: {x: [1]}}\n  a: {vary: {y: [2]}}\n", r"line 3, column 3: found key 'a' again"),
    ("studies:\n  a:\n    vary: {model.smoothness: [1], model.smoothness: [2]}\n", r"line 3: .*found key 'model\.smoothness' again|line 3, column \d+: found key 'model\.smoothness' again"),
    ("base: {train: {lr: 0.1}\n", r"line 2, column 1: expected ',' or '}'"),
])
def test_duplicate_keys_and_syntax_errors_name_the_line(text, message):
    with pytest.raises(ConfigFileError, match=message):
        parse_yaml(text, "c.yaml")


def test_config_files_that_are_no_yaml_are_named(tmp_path):
    binary = tmp_path / "model.pt"
    binary.write_bytes(b"\x80\x03\xff\xfe")
    for path, message in ((binary, "not a text file"), (tmp_path, "is a directory"),
                          (tmp_path / "missing.yaml", "no such file")):
        with pytest.raises(ConfigFileError, match=message):
            load_yaml(path)
    with pytest.raises(ConfigFileError, match="missing.yaml"):
        check_config_files([tmp_path / "missing.yaml"])


def test_snakemake_refuses_a_duplicated_key_before_any_job(tmp_path):
    """A real `snakemake -n`: the duplicated `seeds:` (YAML would keep the second) stops the
    workflow at load, with the file and line, and no job is listed."""
    text = (ROOT / "config" / "demo.yaml").read_text().replace("seeds:", "seeds: [7]\nseeds:", 1)
    config = tmp_path / "dup.yaml"
    config.write_text(text)
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(config),
                          "--directory", str(tmp_path), "--snakefile", str(ROOT / "Snakefile")],
                         capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "found key 'seeds' again" in output and "dup.yaml: line" in output
    assert "rule train" not in output and "Job stats" not in output


@pytest.mark.parametrize("damage, message", [
    (lambda text: text.replace("\n  ", "\n\t", 1), "line 3, column 1: found character '\\t'"),
    (lambda text: text.replace("seeds:", "# caf\xe9\nseeds:", 1), "not a text file (not UTF-8)"),
])
def test_the_default_config_is_read_strictly_before_snakemake_reads_it(tmp_path, damage, message):
    """Snakemake's own reader answers a Latin-1 file with a UnicodeDecodeError traceback and
    a tab with no line; the Snakefile reads config/config.yaml first, and names both."""
    text = "results: results\nbase:\n  model: {width: 4}\nseeds: [0]\n"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_bytes(damage(text).encode("latin-1"))
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--directory", str(tmp_path),
                          "--snakefile", str(ROOT / "Snakefile")], capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert f"invalid config: config/config.yaml: {message}" in output, output[-2000:]
    assert "UnicodeDecodeError" not in output and "Job stats" not in output


def test_the_studies_command_runs_the_same_checks_and_names_the_line(tmp_path):
    """Snakemake's own reader says only "not valid JSON or YAML"; this command says where."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("base: {train: {lr: 0.1}\nseeds: [0]\n")
    run = subprocess.run([sys.executable, "-m", "hybrid.studies", str(broken)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"error: {broken}: line 2, column 1: expected ',' or '}}', but got '<scalar>'"]
