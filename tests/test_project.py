"""The project's own promises: one dependency list, the summary command."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from hybrid.summary import variant_table

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


def test_variant_table_covers_every_variant():
    rows = {r["variant"]: r for r in variant_table(width=8)}
    assert set(rows) == {"strided", "max", "avg", "blur", "spectral", "diffstride", "hybrid"}
    assert rows["strided"]["final_map"] == "4x4"
    assert rows["hybrid"]["learned_strides"] == 4 and rows["strided"]["learned_strides"] == 0
    assert rows["hybrid"]["params"] == rows["diffstride"]["params"]
