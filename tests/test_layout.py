"""The package's shape: four rooms whose imports point one way, and no module too long to read.

studies -> train -> nn, data; nn and data apart; the shared helpers (fields, strict_yaml, transfer,
checksummed) below them all; no circle. Every import counts, a function's late import too.
"""

import ast
import graphlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hybrid"
# A room may import rooms of a lower rank and itself; nn and data share a rank and stay apart.
RANKS = {"shared": 0, "nn": 1, "data": 1, "train": 2, "studies": 3, "root": 4}
SHARED = {"hybrid.fields", "hybrid.strict_yaml", "hybrid.checksummed", "hybrid.transfer"}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def room(module: str) -> str:
    if module == "hybrid":
        return "root"
    if module in SHARED:
        return "shared"
    return module.split(".")[1]


def imported(path: Path, known: set[str]) -> set[str]:
    """The package's modules that `path` imports, anywhere in it: `from hybrid.x import y`
    counts as hybrid.x.y where that is a module, else as hybrid.x."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "hybrid"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hybrid":
            subs = {f"{node.module}.{alias.name}" for alias in node.names} & known
            found |= subs or {node.module}
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(path, set(known)) for name, path in known.items()}


def test_every_module_lives_in_a_room_or_is_a_shared_helper():
    rooms = {room(name) for name in modules()}
    assert rooms == set(RANKS), f"modules outside the four rooms: {rooms - set(RANKS)}"


def test_imports_point_down_the_rooms_never_up_or_across():
    upward = [
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        for target in targets
        if room(target) != room(name) and RANKS[room(target)] >= RANKS[room(name)]
    ]
    assert not upward, "imports against the rooms' order (studies -> train -> nn, data -> shared):\n" + "\n".join(upward)


def test_the_import_graph_has_no_circle():
    graph = {name: targets - {name} for name, targets in import_graph().items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"an import circle: {' -> '.join(error.args[1])}")


def test_the_graph_sees_late_imports_and_from_imports_of_modules(tmp_path):
    # the checks above are only as good as the graph: a function's import and a
    # `from package import module` both count
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from hybrid.studies import cost\n    import hybrid.train.loop\n")
    assert imported(source, set(modules())) == {"hybrid.studies.cost", "hybrid.train.loop"}


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_longer_than_a_few_hundred_lines(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by concept (../shared/STYLE.md)"


def test_the_train_rule_s_command_is_the_one_finished_runs_recorded():
    # Snakemake reruns a job whose shell command text changed (its `code` rerun trigger):
    # renaming the training command would retrain every finished run of a study in progress.
    rule = (ROOT / "workflow/rules/train.smk").read_text()
    command = re.search(r"rule train:.*?shell:\s*\n((?:\s*\".*\"\n)+)", rule, re.S).group(1)
    assert "".join(re.findall(r'"(.*)"', command)) == (
        "python -m hybrid.train --run-config {input.config} --out {params.out}"
        " --results-dir {params.results} --threads {threads} > {log} 2>&1"
    )


def test_an_install_from_pyproject_holds_every_subpackage():
    # `packages = ["hybrid", ...]` once listed the top package alone: an editable install
    # worked, a wheel lacked the subpackages. The discovery pyproject configures finds them all.
    import tomllib

    from setuptools import find_packages

    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packaged = set(find_packages(str(ROOT), include=find["include"]))
    on_disk = {module_name(init.parent / "__init__.py") for init in PACKAGE.rglob("__init__.py")}
    assert on_disk <= packaged, f"not installed by a non-editable install: {on_disk - packaged}"
