"""The Snakemake workflow for real: a tiny study through every rule, reruns, config errors."""

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((ROOT / "tests" / "workflow" / "tiny.yaml").read_text())


def snakemake(workdir: Path, config: dict, *args: str, cores: int = 2) -> subprocess.CompletedProcess:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(path), "--cores", str(cores), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    # 4 jobs at once on a fresh MLflow store: they used to race to build its schema
    done = snakemake(workdir, TINY, "--report", "results/report.html", "--report-after-run", cores=4)
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir


def test_every_rule_runs_and_the_report_is_written(finished):
    results = finished / "results"
    runs = pd.read_csv(results / "runs.csv")
    # 3 pooling variants + 1 first-release variant + 2 smoothness levels, minus the shared run, x 2 seeds
    assert len(runs) == 10
    assert runs["studies"].str.contains("pooling;smoothness").sum() == 2
    assert {"model.arch", "model.block", "train.recipe"} <= set(runs.columns)
    first = runs[runs["studies"] == "first_release"]
    assert set(first["model.block"]) == {"postact"} and set(first["train.recipe"]) == {"diffstride-first-release"}
    for run_id in runs["run_id"]:
        assert (results / "runs" / run_id / "result.json").exists()
        assert (results / "runs" / run_id / "run.yaml").exists()
        assert (results / "logs" / "train" / f"{run_id}.log").exists()
    table = pd.read_csv(results / "runs_table.csv")
    assert set(table["status"]) == {"completed"}
    claims = pd.read_csv(results / "tables" / "claims.csv")
    assert list(claims.columns[:14]) == ["claim", "dataset", "paper_value", "paper_delta", "mean", "std", "n",
                                         "delta", "ci_low", "ci_high", "ci_level", "verdict", "family",
                                         "family_size"]
    assert (results / "tables" / "outliers.html").exists()
    for name in ("pooling_accuracy", "learning_curves", "stride_trajectories", "accuracy_flops", "smoothness",
                 "first_release_accuracy"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 1000
    first_release = pd.read_csv(results / "tables" / "first_release.csv")
    assert list(first_release["variant"]) == ["strided"] and list(first_release["n"]) == [2]
    report = (results / "report.html").read_text()
    assert "Claims" in report and "smoothness" in report
    assert (results / "mlflow.db").exists()


def test_every_result_is_one_mlflow_run(finished):
    """The store is built once before the jobs (rule tracking_store) and synced after them:
    exactly one MLflow run per result file, none untracked, none twice."""
    from mlflow.tracking import MlflowClient

    results = finished / "results"
    run_ids = sorted(p.parent.name for p in (results / "runs").glob("*/result.json"))
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert sorted(r.data.tags["config_hash"] for r in runs) == run_ids
    table = pd.read_csv(results / "runs.csv").set_index("run_id")
    for run in runs:  # the UI filters by variant and study
        row = table.loc[run.data.tags["config_hash"]]
        assert (run.data.tags["variant"], run.data.tags["studies"]) == (row["variant"], row["studies"])
    assert all(r.info.status == "FINISHED" and "final/test_accuracy" in r.data.metrics for r in runs)
    assert "created=0" in (results / "tracking" / "synced.txt").read_text()  # the jobs logged everything


def test_a_finished_study_is_not_retrained(finished):
    dry = snakemake(finished, TINY, "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_a_new_level_trains_only_the_new_runs(finished):
    config = copy.deepcopy(TINY)
    config["studies"]["smoothness"]["vary"]["model.smoothness"].append(8)
    dry = snakemake(finished, config, "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    counts = job_counts(dry.stdout)
    assert counts["train"] == 2  # R = 8, two seeds
    assert counts["run_config"] == 2


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c["base"]["train"].update(epochz=1), "epochz"),
        (lambda c: c["studies"]["pooling"]["vary"].update({"model.smoothnes": [1]}), "model.smoothnes"),
        (lambda c: c["analysis"].update(correction="bonferroni") if "analysis" in c else c.update(analysis={"correction": "bonferroni"}), "bonferroni"),
    ],
)
def test_bad_config_stops_before_any_job_naming_the_key(tmp_path, edit, message):
    config = copy.deepcopy(TINY)
    edit(config)
    failed = snakemake(tmp_path, config, "-n")
    assert failed.returncode != 0
    assert message in failed.stdout + failed.stderr
    assert not (tmp_path / "results").exists()


def test_the_paper_study_plans_every_run():
    paper = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    dry = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert dry.returncode == 0, dry.stderr[-2000:]
    from hybrid.studies import resolve_runs

    runs = resolve_runs(paper)
    counts = job_counts(dry.stdout)
    assert counts["train"] == len(runs) == 736  # as config/config.yaml's comment says
    # the family each confirmatory row is corrected over, told before any job
    assert "claims: a confirmatory family of 16 rows" in dry.stdout + dry.stderr
    # Each run asks Slurm for its own time, from its cost estimate: a strided CIFAR run
    # (200 epochs at 9,800 images/s: 17 minutes) does not ask for the cap of 12 hours.
    runtime = {m.group(1): int(m.group(2)) for m in re.finditer(
        r"rule train:.*?wildcards: run=(\w+)\n\s+resources: [^\n]*?runtime=(\d+)", dry.stdout, re.S)}
    assert len(runtime) == 736 and max(runtime.values()) <= paper["resources"]["runtime_min"]
    strided = [runtime[r.run_id] for r in runs if r.variant == "strided" and r.config.dataset.name == "cifar10"
               and r.config.model.arch == "resnet18" and r.config.train.epochs == 200]
    assert strided and all(30 <= t <= 60 for t in strided), sorted(set(strided))
    assert {s for run in runs for s in run.studies} == {"pooling", "first_release", "arch", "placement",
                                                         "smoothness", "init_stride", "datasets", "postact_paper",
                                                         "confirmatory", "confirmatory_first_release"}
    # the paper's head on the standard post-activation net, where it is a rescaling, and the
    # control that tells a gain apart from it, here and on the first release's net
    postact = {(run.variant, run.config.model.block, run.config.train.recipe) for run in runs
               if "postact_paper" in run.studies}
    assert postact == {(v, "postact", "hybrid-paper") for v in ("diffstride", "hybrid", "scale-control")}
    assert any(run.variant == "scale-control" for run in runs if "first_release" in run.studies)
    confirmatory = [run for run in runs if "confirmatory" in run.studies]
    assert {run.config.seed for run in confirmatory} == set(range(11))
    assert counts["pack"] == 2  # Tiny-ImageNet and Imagenette, once each, whatever the runs
    # The paper's question is asked on the official networks: HEAD's pre-activation net under
    # both pooling recipes, the first release's post-activation net under its own, and the
    # standard post-activation net under the paper's recipe.
    blocks = {(run.config.train.recipe, run.config.model.block) for run in runs}
    assert blocks == {("hybrid-paper", "preact"), ("official-diffstride", "preact"),
                      ("diffstride-first-release", "postact"), ("torchvision-imagenet", "preact"),
                      ("hybrid-paper", "postact")}
    variants = {run.variant for run in runs if "pooling" in run.studies}
    assert {"hybrid", "hybrid-after-norm", "scale-control", "hybrid-layer4"} <= variants


def test_snakefmt_is_clean():
    check = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr + "\nrun: snakefmt Snakefile workflow/"


def test_lint_is_clean():
    lint = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--configfile", "tests/workflow/tiny.yaml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr


CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (.ci/run installs Debian's chromium)")
def test_the_report_renders_in_a_headless_browser(finished, tmp_path):
    # The report is a JavaScript app: the categories appear only once it has run.
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
         (finished / "results" / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    for category in ("1. Claims", "2. Pooling variants", "3. First release", "4. Smoothness", "5. Runs",
                     "hybrid_vs_diffstride", "n = 2: no interval"):  # the landing page's verdicts
        assert category in dom.stdout, category


def test_a_report_from_a_study_with_a_failed_run(tmp_path):
    """One run fails for good (a directory where its checkpoint goes: exit 2, every retry);
    `--keep-going` trains the others, and `--config partial=true` reports what finished,
    the failed run counted as missing."""
    from hybrid.studies import resolve_runs

    config = {**copy.deepcopy(TINY), "seeds": [0]}  # one seed: 5 runs make the point
    runs = resolve_runs(copy.deepcopy(config))
    broken = runs[0].run_id
    (tmp_path / "results" / "runs" / broken / "checkpoint.pt").mkdir(parents=True)
    failed = snakemake(tmp_path, config, "--keep-going", cores=4)
    assert failed.returncode != 0
    results = tmp_path / "results"
    finished = list((results / "runs").glob("*/result.json"))
    assert len(finished) == len(runs) - 1 == 4 and not (results / "runs" / broken / "result.json").exists()
    assert not (results / "tables").exists()  # the full analysis waits for every run

    partial = snakemake(tmp_path, {**config, "partial": True}, "--report", "results/report.html",
                        "--report-after-run", cores=2)
    assert partial.returncode == 0, partial.stderr[-3000:]
    assert "rule train" not in partial.stdout + partial.stderr
    status = pd.read_csv(results / "tables" / "status.csv")
    assert status["missing"].sum() >= 1 and status["completed"].sum() >= 4
    table = pd.read_csv(results / "runs_table.csv").set_index("run_id")
    assert table.loc[broken, "status"] == "missing"
    assert (results / "report.html").stat().st_size > 10_000


def readme_block(heading: str, language: str) -> str:
    """The first fenced `language` block under the README's `heading`: the README's own text."""
    section = (ROOT / "README.md").read_text().split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_adding_the_readme_s_axis_trains_only_its_new_runs(finished, tmp_path):
    """The README's `stride_lr` example added to the finished tiny study: only its new runs
    train (the multiplier-1.0 runs are the pooling study's, finished); removed again,
    nothing trains. Study membership is no job parameter, so it makes no run stale."""
    import shutil

    from hybrid.studies import resolve_runs

    workdir = tmp_path / "study"
    shutil.copytree(finished, workdir, symlinks=True)  # the finished study, its Snakemake state too
    example = yaml.safe_load(readme_block("## Adding an ablation axis", "yaml"))
    config = copy.deepcopy(TINY)
    for name, study in example["studies"].items():  # on the tiny study's data set
        study["vary"]["dataset.name"] = TINY["studies"]["pooling"]["vary"]["dataset.name"]
        config["studies"][name] = study
    config["sweeps"].update(example["sweeps"])
    new_runs = {r.run_id for r in resolve_runs(copy.deepcopy(config))} - {r.run_id for r in resolve_runs(copy.deepcopy(TINY))}
    assert len(new_runs) == 8  # 2 variants x 3 multipliers x 2 seeds, less the 4 pooling runs

    dry = snakemake(workdir, config, "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert job_counts(dry.stdout)["train"] == len(new_runs), dry.stdout[-3000:]

    added = snakemake(workdir, config, cores=2)
    assert added.returncode == 0, added.stderr[-4000:]
    assert all((workdir / "results" / "runs" / r / "result.json").exists() for r in new_runs)
    runs = pd.read_csv(workdir / "results" / "runs.csv")
    shared = runs["studies"].str.split(";").map(lambda s: {"pooling", "stride_lr"} <= set(s))
    assert shared.sum() == 4  # multiplier 1.0: the pooling study's DiffStride and hybrid runs

    removed = snakemake(workdir, TINY, "-n")
    assert removed.returncode == 0, removed.stderr[-2000:]
    assert job_counts(removed.stdout).get("train", 0) == 0, removed.stdout[-3000:]


def test_a_rerun_of_the_tracking_store_rule_retrains_no_finished_run(finished):
    """The store's rule reruns when a store is added or its init command's text changes (as
    when the tracking module moved to hybrid.train.tracking). The training jobs take its
    marker as ancient, so no finished run trains again; before, its rerun planned every
    run of the study again ("input files updated by another job")."""
    dry = snakemake(finished, TINY, "-n", "--forcerun", "tracking_store")
    assert dry.returncode == 0, dry.stderr[-2000:]
    counts = job_counts(dry.stdout)
    assert counts.get("tracking_store") == 1 and counts.get("train", 0) == 0, dry.stdout[-3000:]


def test_the_readme_s_mid_study_report_command_works_as_written(finished, tmp_path):
    """The README's partial-report command, verbatim, in a copy of the repository whose
    default config is the tiny study with one run missing: `--config` keeps the default
    config file, `partial=true` is read as a boolean, nothing trains."""
    import shutil

    command = re.search(r"`(snakemake [^`]*--config partial=true[^`]*)`", (ROOT / "README.md").read_text()).group(1)
    repo = tmp_path / "repo"
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    for name in tracked.split():
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    (repo / "config" / "config.yaml").write_text(yaml.safe_dump(TINY))
    runs = sorted((finished / "results" / "runs").glob("*/result.json"))
    missing = runs[0].parent.name
    for result in runs[1:]:
        shutil.copytree(result.parent, repo / "results" / "runs" / result.parent.name)

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(command, shell=True, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "rule train" not in done.stdout + done.stderr
    table = pd.read_csv(repo / "results" / "runs_table.csv").set_index("run_id")
    assert table.loc[missing, "status"] == "missing" and (table["status"] == "completed").sum() == len(runs) - 1
    assert (repo / "results" / "report.html").stat().st_size > 10_000
