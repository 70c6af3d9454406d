# From result files to answers: the runs table, then statistics in tables and figures,
# each captioned for the report (workflow/report/). The analysis reads result files only.


rule runs_csv:
    input:
        # a sequential study's runs are those its last look planned
        plan=[look_file(LAST_LOOK)] if DESIGN else [],
    output:
        f"{RESULTS}/runs.csv",
    log:
        f"{RESULTS}/logs/runs_csv.log",
    localrule: True
    params:
        runs=sorted(RUNS),  # the resolved grid: rerun whenever a run is added or removed
    run:
        from hybrid.studies import write_runs_csv

        write_runs_csv(planned_runs(), output[0])


rule workflow_config:
    output:
        f"{RESULTS}/config.yaml",
    log:
        f"{RESULTS}/logs/workflow_config.log",
    localrule: True
    # printf alone: the lightest of the project's environments
    conda:
        "../envs/analysis.yaml"
    params:
        text=yaml.safe_dump(config, sort_keys=False),  # rerun when the config changes
    shell:
        "printf '%s' {params.text:q} > {output:q}"


rule collect:
    input:
        runs=f"{RESULTS}/runs.csv",
        results=run_results,
        histories=run_histories,
        # a sequential study's later stages, as its looks planned them
        planned=planned_results,
        planned_histories=planned_histories,
    output:
        table=f"{RESULTS}/runs_table.csv",
        history=f"{RESULTS}/history_table.csv",
        status=f"{RESULTS}/run_status.csv",
    log:
        f"{RESULTS}/logs/collect.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        runs_dir=lambda w, input: Path(input.runs).parent / "runs",
        finished=finished_results(),  # partial mode: rerun when more runs have finished
    shell:
        "python -m analysis.collect --runs {input.runs:q} --runs-dir {params.runs_dir:q}"
        " --out {output.table:q} --history-out {output.history:q}"
        " --status-out {output.status:q} > {log:q} 2>&1"


rule tables:
    input:
        table=f"{RESULTS}/runs_table.csv",
        config=f"{RESULTS}/config.yaml",
        # a sequential study's GPU-hours against the fixed design's
        candidates=[f"{RESULTS}/sequential/candidates.csv"] if DESIGN else [],
    output:
        [
            report(
                f"{RESULTS}/tables/{name}.html",
                caption=_caption("table", name),
                category=category,
                labels=_labels(name, "table"),
            )
            for name, category in TABLES.items()
        ],
        [
            f"{RESULTS}/tables/{name}.{ext}"
            for name in TABLES
            for ext in ("csv", "md", "tex")
        ],
        # every run, sortable and filterable (the runs table is too long for a CSV view)
        report(
            f"{RESULTS}/tables/runs.html",
            caption="../report/runs_table.rst",
            category=RUNS_CATEGORY,
            labels=_labels("runs", "table"),
        ),
        # the forest plot and verdict table that the landing page (workflow.rst) embeds
        f"{RESULTS}/tables/landing.html",
    log:
        f"{RESULTS}/logs/tables.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        out=lambda w, output: Path(output[0]).parent,
        candidates=lambda w, input: "".join(
            f" --candidates {shell_word(path)}" for path in input.candidates[:1]
        ),
    shell:
        "python -m analysis.tables --runs-table {input.table:q} --config {input.config:q}"
        "{params.candidates} --out {params.out:q} > {log:q} 2>&1"


rule figures:
    input:
        table=f"{RESULTS}/runs_table.csv",
        history=f"{RESULTS}/history_table.csv",
        config=f"{RESULTS}/config.yaml",
        # the forest plot draws the claims table the tables rule wrote
        claims=[f"{RESULTS}/tables/claims.csv"] if "claims" in TABLES else [],
    output:
        [
            report(
                f"{RESULTS}/figures/{name}.png",
                caption=_caption("figure", name),
                category=category,
                labels=_labels(name, "figure"),
            )
            for name, category in FIGURES.items()
        ],
        [f"{RESULTS}/figures/{name}.pdf" for name in FIGURES],
    log:
        f"{RESULTS}/logs/figures.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        out=lambda w, output: Path(output[0]).parent,
        claims=lambda w, input: "".join(
            f"--claims-table {shell_word(path)}" for path in input.claims[:1]
        ),
    shell:
        "python -m analysis.figures --runs-table {input.table:q} --history-table {input.history:q}"
        " --config {input.config:q} {params.claims} --out {params.out:q} > {log:q} 2>&1"
