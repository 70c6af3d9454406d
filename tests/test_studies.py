"""Studies as data: grids resolved into runs with content-hashed ids, the config schema."""

import copy
from pathlib import Path

import pytest
import yaml

from hybrid.studies import axis_value, known_keys, resolve_runs, runs_table
from hybrid.studies.schema import SCHEMA_HEADER, config_schema

ROOT = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
PAPER = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_demo_runs_are_unique_and_shared_between_studies():
    runs = resolve_runs(DEMO)
    ids = [r.run_id for r in runs]
    assert len(ids) == len(set(ids)) == 21
    # DiffStride and the hybrid at the default settings belong to the pooling and placement
    # studies and train once per seed (placement runs seeds 0 and 1, pooling 0, 1 and 2);
    # DiffStride at layer 4 and smoothness 4 belongs to the placement and smoothness studies.
    by_studies = lambda variant, at: sorted(  # noqa: E731
        tuple(r.studies) for r in runs if r.variant == variant and r.config.model.downsample_at == at
        and r.config.train.recipe == "hybrid-paper")
    every = ("stem", "layer2", "layer3", "layer4")
    for variant in ("diffstride", "hybrid"):
        assert by_studies(variant, every) == [("pooling",)] + [("pooling", "placement")] * 2
    assert by_studies("diffstride", ("layer4",)) == (
        [("placement",)] * 2  # the spectral head
        + [("placement", "smoothness")] * 2 + [("smoothness",)] * 2)  # smoothness 4, then 2


def test_paper_config_covers_the_issue_grid():
    runs = resolve_runs(PAPER)
    rows = runs_table(runs)
    pooling = [r for r in rows if "pooling" in r["studies"].split(";")]
    assert {r["variant"] for r in pooling} == {"strided", "max", "blur", "spectral", "diffstride", "hybrid",
                                              "hybrid-after-norm", "scale-control", "hybrid-layer4"}
    assert {r["model.block"] for r in pooling} == {"preact"} and {r["model.arch"] for r in pooling} == {"resnet18"}
    assert {r["model.arch"] for r in rows if "arch" in r["studies"]} == {"resnet18", "resnet56"}
    assert {r["train.recipe"] for r in pooling} == {"hybrid-paper", "official-diffstride"}
    assert {r["dataset.name"] for r in rows} == {"cifar10", "cifar100", "tiny-imagenet", "imagenette"}
    datasets = [r for r in rows if "datasets" in r["studies"].split(";")]
    assert {r["dataset.name"] for r in datasets} == {"tiny-imagenet", "imagenette"} and len(datasets) == 40
    assert {r["variant"] for r in datasets} == {"strided", "spectral", "diffstride", "hybrid"}
    assert len({r["seed"] for r in rows}) >= 5
    smoothness = {r["model.smoothness"] for r in rows if "smoothness" in r["studies"]}
    assert smoothness == {"1", "2", "4", "8", "16"}
    assert {r["model.init_stride"] for r in rows if "init_stride" in r["studies"]} == {"1+1+2+2+2", "1+1+3+2+3"}


def test_an_unrelated_edit_keeps_every_existing_run_id():
    before = {r.run_id for r in resolve_runs(DEMO)}
    edited = copy.deepcopy(DEMO)
    edited["studies"]["smoothness"]["vary"]["model.smoothness"].append(16)
    edited["studies"]["lr"] = {"fixed": {"variant": "strided"}, "vary": {"train.lr": [0.01, 0.05]}}
    after = {r.run_id for r in resolve_runs(edited)}
    assert before < after
    # 2 new smoothness runs (1 variant, 2 seeds); of the lr study, lr 0.05 is the base's and
    # already runs (the pooling study's strided runs).
    assert len(after - before) == 2 + 3


def test_numbers_spelled_differently_are_the_same_run():
    a = copy.deepcopy(DEMO)
    a["studies"] = {"s": {"vary": {"model.init_stride": [[1, 1, 2, 2, 2]], "model.smoothness": [4]}}}
    b = copy.deepcopy(a)
    b["studies"]["s"]["vary"] = {"model.init_stride": [[1.0, 1.0, 2.0, 2.0, 2.0]], "model.smoothness": [4.0]}
    assert [r.run_id for r in resolve_runs(a)] == [r.run_id for r in resolve_runs(b)]


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c["studies"]["smoothness"]["vary"].update({"model.smoothnes": [1]}),
         r"studies\.smoothness: unknown key 'model\.smoothnes'; known keys: dataset\.name"),
        (lambda c: c["studies"]["pooling"]["vary"].update({"variant": ["median"]}),
         r"studies\.pooling: unknown variant 'median'; declared variants: strided"),
        (lambda c: c["studies"]["pooling"]["vary"].update({"train.epochs": 3}),
         r"studies\.pooling\.vary\.train\.epochs: expected a non-empty list"),
        (lambda c: c["studies"]["pooling"]["vary"].update({"train.epochs": ["many"]}),
         r"studies\.pooling .*train\.epochs: input should be a valid integer, got 'many'"),
    ],
)
def test_bad_studies_name_the_key(edit, message):
    config = copy.deepcopy(DEMO)
    edit(config)
    with pytest.raises(ValueError, match=message):
        resolve_runs(config)


def test_runs_table_has_every_varied_key_for_every_run():
    rows = runs_table(resolve_runs(DEMO))
    columns = set(rows[0])
    assert {"run_id", "name", "studies", "variant", "seed", "model.smoothness", "model.downsample_at"} <= columns
    assert all(set(r) == columns for r in rows)
    assert axis_value(["stem", "layer2"]) == "stem+layer2" and axis_value(4.0) == "4" and axis_value(0.5) == "0.5"


def test_run_names_are_key_value_pairs_with_the_recipe_and_unique():
    """MLflow's run list shows the name: values without their keys ("synthetic/diffstride/
    none/layer4/seed0") and no recipe told a reader little."""
    runs = resolve_runs(DEMO)
    names = [r.config.name for r in runs]
    assert len(set(names)) == len(runs)
    assert "dataset=synthetic variant=diffstride recipe=hybrid-paper model.head_pool=none " \
           "model.downsample_at=layer4 seed=0" in names
    for run in runs:
        pairs = dict(part.split("=", 1) for part in run.config.name.split(" "))
        assert pairs["recipe"] == run.config.train.recipe and pairs["seed"] == str(run.config.seed)


def test_runs_csv_always_says_what_a_run_trains_on_and_how():
    rows = runs_table(resolve_runs(DEMO))
    assert {"dataset.name", "train.recipe", "model.arch", "model.block"} <= set(rows[0])
    first = {r["model.block"] for r in rows if r["studies"] == "first_release"}
    assert first == {"postact"}


def test_per_site_kinds_and_stride_pairs_are_study_axes():
    config = copy.deepcopy(DEMO)
    config["studies"] = {"sites": {"fixed": {"variant": "diffstride"}, "vary": {
        "model.site_kinds": [{}, {"layer4": "spectral"}, {"layer3": "spectral", "layer4": "spectral"}],
        "model.init_stride": [[1, 1, 2, 2, 2], [1, 1, [2, 3], 2, 2]]}}}
    runs = resolve_runs(config)
    assert len(runs) == 3 * 2 * 3
    levels = {(axis_value(r.axes["model.site_kinds"]), axis_value(r.axes["model.init_stride"])) for r in runs}
    assert ("layer3=spectral+layer4=spectral", "1+1+2x3+2+2") in levels and ("none", "1+1+2+2+2") in levels


def test_cost_estimate_counts_what_the_loop_trains(capsys, tmp_path):
    from hybrid.nn import resnet
    from hybrid.studies.__main__ import main
    from hybrid.studies.cost import MEASURED_IMAGES_PER_S, run_cost, study_costs

    runs = resolve_runs(DEMO)
    strided = next(r for r in runs if r.variant == "strided" and r.studies == ["pooling", "init_stride"])
    cost = run_cost(strided.config)
    t = strided.config.train
    assert cost.images == t.epochs * 32 * 32  # 1024 images, batch 32
    forward = resnet(strided.config.model).cost()["flops"]
    assert cost.train_flops == pytest.approx(forward * (3 * cost.images + t.epochs * 512))
    # GPU-hours from the measured throughput of the run's family: no DiffStride here
    assert cost.images_per_s == MEASURED_IMAGES_PER_S["resnet18"]["fixed"]
    assert cost.gpu_hours == pytest.approx((cost.images + t.epochs * 512 / 3) / cost.images_per_s / 3600)
    hybrid = next(r for r in runs if r.variant == "hybrid")
    assert run_cost(hybrid.config).images_per_s == MEASURED_IMAGES_PER_S["resnet18"]["diffstride"]
    rows = {r["study"]: r for r in study_costs(runs)}
    assert rows["total (each run once)"]["runs"] == len(runs)
    assert rows["pooling"]["runs"] == 9
    main([str(ROOT / "config" / "demo.yaml"), "--cost"])
    out = capsys.readouterr().out
    assert "measured on one NVIDIA H100" in out and "resnet18 fixed 9800, diffstride 3470" in out
    # the config's own throughput replaces the measured one, and says so
    config = {**DEMO, "cost": {"gpu": "our A100s", "images_per_s": {"resnet18": {"fixed": 980.0}}}}
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(config))
    main([str(path), "--cost"])
    slow = capsys.readouterr().out
    assert "measured on our A100s" in slow and "fixed 980" in slow
    total = [line for line in slow.splitlines() if line.startswith("total")][0]
    fast = [line for line in out.splitlines() if line.startswith("total")][0]
    assert float(total.split()[-1]) > float(fast.split()[-1])


def test_schema_file_is_generated_from_the_dataclasses():
    written = (ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text()
    assert written == SCHEMA_HEADER + yaml.safe_dump(config_schema(), sort_keys=False), (
        "workflow/schemas/config.schema.yaml is stale: run `python -m hybrid.studies --schema > "
        "workflow/schemas/config.schema.yaml`"
    )
    assert set(config_schema()["properties"]["variants"]["additionalProperties"]["propertyNames"]["enum"]) == set(known_keys())


def test_the_readme_worked_example_adds_only_new_runs():
    config = copy.deepcopy(PAPER)
    config["studies"]["stride_lr"] = {
        "fixed": {"train.recipe": "hybrid-paper"},
        "vary": {"dataset.name": ["cifar10"], "variant": ["diffstride", "hybrid"], "train.stride_lr_mult": [0.1, 1.0, 10.0]},
    }
    before = {r.run_id for r in resolve_runs(PAPER)}
    runs = resolve_runs(config)
    new = {r.run_id for r in runs} - before
    assert len(new) == 2 * 2 * 5  # two variants x two new multipliers x five seeds
    reused = [r for r in runs if "stride_lr" in r.studies and r.run_id in before]
    assert len(reused) == 2 * 5 and all("pooling" in r.studies for r in reused)
    assert {axis_value(r.axes["train.stride_lr_mult"]) for r in runs if "stride_lr" in r.studies} == {"0.1", "1", "10"}


def test_the_analysis_spells_config_values_as_runs_csv_does():
    # analysis.claims.as_cell repeats hybrid.studies.axis_value, since the analysis may not
    # import the training package: this keeps the two spellings of one rule equal.
    from analysis.claims import as_cell

    for value in [4, 4.0, 0.5, 16.0, 1e-3, "none", True, ["stem", "layer2"], [1, 1, 3.0, 2, 3], -2.0, 0.0,
                  [1.5, 1, [1.7, 2.3], 2.5, (2.9, 1.6)], {"layer4": "spectral"}, {}, {"stem": "blur", "layer4": "max"}]:
        assert as_cell(value) == axis_value(value), value
    assert axis_value([1.5, 1, [1.7, 2.3], 2.5]) == "1.5+1+1.7x2.3+2.5" and axis_value({"layer4": "spectral"}) == "layer4=spectral"


def test_the_report_caption_states_the_verdict_rule_of_the_code():
    from analysis.stats import VERDICT_RULE

    rule = " ".join(VERDICT_RULE.split())
    caption = " ".join((ROOT / "workflow" / "report" / "table_claims.rst").read_text().split())
    assert rule in caption
    readme = " ".join((ROOT / "README.md").read_text().replace("\n> ", "\n").split())
    assert rule in readme


def test_captions_render_and_name_the_configured_correction(tmp_path, monkeypatch):
    """Each caption through Jinja and docutils, as Snakemake's report renders it, under a
    config that asks for Benjamini-Hochberg: the correction named is the configured one.
    Rendered where the workflow runs: the landing page embeds the verdicts that the tables
    rule writes (results/tables/landing.html)."""
    import types

    import jinja2
    from docutils.core import publish_parts

    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "tables").mkdir(parents=True)
    (tmp_path / "results" / "tables" / "landing.html").write_text("<p>the verdicts</p>")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["analysis"]["correction"] = "fdr_bh"
    snakemake = types.SimpleNamespace(config=config)
    for path in sorted((ROOT / "workflow" / "report").glob("*.rst")):
        text = jinja2.Environment().from_string(path.read_text()).render(snakemake=snakemake)
        html = publish_parts(text, writer="html",
                             settings_overrides={"halt_level": 2, "report_level": 2})["body"]
        assert "holm" not in html.lower(), path.name
        if path.name in ("table_claims.rst", "table_sweep.rst", "table_smoothness.rst",
                         "table_placement.rst", "workflow.rst"):
            assert "fdr_bh" in html, path.name


def test_status_reads_where_each_run_stands_from_its_files(tmp_path, capsys):
    import json

    from hybrid import checksummed
    from hybrid.studies.__main__ import main

    config = {**copy.deepcopy(DEMO), "results": str(tmp_path / "results")}
    runs = resolve_runs(config)
    results = tmp_path / "results"

    def run_dir(i):
        path = results / "runs" / runs[i].run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    (run_dir(0) / "result.json").write_text(json.dumps({"status": "completed"}))
    (run_dir(1) / "result.json").write_text(json.dumps({"status": "diverged"}))
    (run_dir(2) / "result.json").write_text("{half")
    checksummed.write(run_dir(3) / "checkpoint.pt", {"epoch": 2, "run_id": runs[3].run_id})
    logs = results / "logs" / "train"
    logs.mkdir(parents=True)
    (logs / f"{runs[4].run_id}.log").write_text("loading\nerror: train.device is 'cuda' but CUDA is not available\n")
    (logs / f"{runs[5].run_id}.log").write_text("loading data set synthetic\n")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # a shared run is named by its first study
    main([str(path), "--status"])
    out = capsys.readouterr().out
    total = next(line for line in out.splitlines() if line.startswith("all runs")).split()[2:]
    assert [int(n) for n in total] == [1, 1, 1, 1, 1, 1, len(runs) - 6]
    assert f"{runs[3].run_id} {runs[3].name}: started (resumes at epoch 2 of {runs[3].config.train.epochs})" in out
    assert f"{runs[4].run_id} {runs[4].name}: failed (" in out and "CUDA is not available" in out
    assert f"{runs[2].run_id} {runs[2].name}: corrupt" in out


def test_the_readme_s_cost_command_prints_the_paper_study_in_seconds():
    """The README's check before launch, verbatim, as a login node runs it: every study and
    the total, each run counted once (the FLOPs counted without building a network)."""
    import os
    import re
    import subprocess
    import sys

    command = re.search(r"`(python -m hybrid\.studies config/config\.yaml --cost)`",
                        (ROOT / "README.md").read_text()).group(1)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    total = next(line for line in done.stdout.splitlines() if line.startswith("total (each run once)"))
    assert total.split()[4] == str(len(resolve_runs(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))))
    for study in ("pooling", "confirmatory", "postact_paper", "datasets"):
        assert any(line.startswith(study + " ") for line in done.stdout.splitlines()), study
