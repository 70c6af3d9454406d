"""The project's own promises: one dependency list, the summary command, its commands' manners, its licence."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from hybrid.nn.summary import variant_table

ROOT = Path(__file__).resolve().parents[1]


def _normalised(specs) -> dict[str, str]:
    reqs = [Requirement(s) for s in specs]
    return {r.name.lower().replace("_", "-"): str(r.specifier) for r in reqs}


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert _normalised(s for s in pip_section if not s.startswith("-e")) == _normalised(project["dependencies"])
    assert conda_python.removeprefix("python") == project["requires-python"]
    assert "-e ." in pip_section


def test_variant_table_covers_every_variant_and_both_blocks():
    from hybrid.nn import VARIANTS

    rows = {r["variant"]: r for r in variant_table(width=8)}
    assert set(rows) == set(VARIANTS)
    assert rows["strided"]["final_map"] == "4x4" and rows["hybrid"]["final_map"] == "8x9"
    assert rows["hybrid"]["learned_strides"] == 4 and rows["strided"]["learned_strides"] == 0
    assert rows["hybrid"]["params_preact"] == rows["diffstride"]["params_preact"]
    assert rows["strided"]["params_postact"] > rows["strided"]["params_preact"]


def test_summary_prints_the_official_counts(capsys):
    from hybrid.nn.summary import main

    main(["--arch", "resnet56", "--width", "8"])
    out = capsys.readouterr().out
    assert "hybrid-layer4" not in out  # resnet56 has no layer4
    full = {r["variant"]: r for r in variant_table()}["strided"]
    # google-research/diffstride, counted by the official code: HEAD 11,172,170; 1f9e8f4 11,173,962.
    assert (full["params_preact"], full["params_postact"]) == (11_172_170, 11_173_962)


CLI_USER_ERRORS = [
    ("hybrid.train", ["--run-config", "missing.yaml", "--out", "{tmp}/run"]),
    ("hybrid.studies", ["missing.yaml"]),
    ("hybrid.train.tracking", ["sync", "{tmp}/nowhere"]),
    ("hybrid.data", ["download", "mnist"]),
    ("hybrid.nn.summary", ["--arch", "resnet50"]),
    ("analysis.collect", ["--runs", "missing.csv", "--runs-dir", "{tmp}", "--out", "{tmp}/t.csv",
                          "--history-out", "{tmp}/h.csv"]),
    ("analysis.tables", ["--runs-table", "missing.csv", "--config", "missing.yaml", "--out", "{tmp}/t"]),
    ("analysis.figures", ["--runs-table", "missing.csv", "--history-table", "missing.csv",
                          "--config", "missing.yaml", "--out", "{tmp}/f"]),
]


@pytest.mark.parametrize("module,argv", CLI_USER_ERRORS, ids=[m for m, _ in CLI_USER_ERRORS])
def test_every_command_meets_a_user_error_with_one_line_and_exit_2(tmp_path, module, argv):
    run = subprocess.run([sys.executable, "-m", module, *(a.format(tmp=tmp_path) for a in argv)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    lines = [line for line in run.stderr.splitlines() if "Warning" not in line and line.strip()]
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and lines[-1].startswith(("error:", f"python -m {module}")), run.stderr
    assert f"python -m {module}" in subprocess.run([sys.executable, "-m", module, "--help"], cwd=tmp_path,
                                                   capture_output=True, text=True, timeout=300).stdout


def test_the_license_file_is_the_one_pyproject_names():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


ENVS = sorted((ROOT / "workflow" / "envs").glob("*.yaml"))


def _pip_list(path: Path) -> list[str]:
    env = yaml.safe_load(path.read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))


def test_every_rule_names_an_environment_that_exists_and_needs_no_install_of_the_project():
    named = set()
    for rules in (ROOT / "workflow" / "rules").glob("*.smk"):
        lines = rules.read_text().splitlines()
        named |= {lines[i + 1].strip().strip('"') for i, line in enumerate(lines) if line.strip() == "conda:"}
    assert named == {"../envs/train.yaml", "../envs/analysis.yaml"}
    for env in ENVS:
        assert not any(spec.startswith("-e") for spec in _pip_list(env)), env  # --sdm conda cannot install it
    assert not any("torch" in spec for spec in _pip_list(ROOT / "workflow" / "envs" / "analysis.yaml"))


@pytest.mark.parametrize("env", ENVS, ids=[e.stem for e in ENVS])
def test_rule_environments_keep_pyproject_floors_and_pip_resolves_them(env):
    project = _normalised(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    for name, spec in _normalised(_pip_list(env)).items():
        assert project.get(name) == spec, f"{env.name}: {name}{spec} differs from pyproject.toml"
    resolve = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                              *_pip_list(env)], capture_output=True, text=True, timeout=600)
    assert resolve.returncode == 0, resolve.stderr[-2000:]


def test_every_third_party_import_is_a_declared_dependency():
    """`pillow` was imported by hybrid.data.packing but declared nowhere: an install from
    pyproject alone would fail at the first image folder."""
    import ast
    from importlib.metadata import packages_distributions

    declared = set(_normalised(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]))
    distributions = packages_distributions()
    imported = set()
    for path in [*ROOT.glob("hybrid/**/*.py"), *ROOT.glob("analysis/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    own = {"hybrid", "analysis"}
    third_party = {m for m in imported - own - set(sys.stdlib_module_names)}
    undeclared = {}
    for module in sorted(third_party):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & declared:
            undeclared[module] = sorted(names)
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"


def test_make_install_installs_and_runs_nothing_else(tmp_path):
    """The Slurm section's step 1 on a login node: the environment alone, no test run, no
    job submitted (`make test` would run tests/test_slurm.py)."""
    planned = subprocess.run(["make", "-n", "install", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert planned.returncode == 0, planned.stderr
    assert "pip install" in planned.stdout and "-m venv" in planned.stdout
    assert not {"pytest", "snakemake", "sbatch"} & set(planned.stdout.split()), planned.stdout
    assert "-m pytest" not in planned.stdout and "-m snakemake" not in planned.stdout
    done = subprocess.run(["make", "install"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
