# One job per resolved run. A run's directory holds run.yaml (its whole resolved config),
# then result.json and history.csv; its checkpoint (checkpoint.pt) is not a declared
# output, so a failed or preempted job leaves it and the retry resumes from it.


rule run_config:
    output:
        f"{RESULTS}/runs/{{run}}/run.yaml",
    log:
        f"{RESULTS}/logs/run_config/{{run}}.log",
    localrule: True
    # printf alone: the lightest of the project's environments
    conda:
        "../envs/analysis.yaml"
    params:
        text=lambda w: yaml.safe_dump(RUNS[w.run].config.to_dict(), sort_keys=False),
    # A shell job, not a `run:` block: Snakemake runs each `run:` job in a fresh Python
    # process that parses the whole workflow again (seconds each), and a study has hundreds.
    shell:
        "printf '%s' {params.text:q} > {output}"


rule train:
    input:
        config=f"{RESULTS}/runs/{{run}}/run.yaml",
        data=data_ready,
        # The store must exist before a job logs to it, but a newer one (a store or an
        # experiment added, or a new version of the init command) changes no result:
        # ancient, so that it never makes a finished run look out of date.
        tracking=ancient(f"{RESULTS}/tracking/store.ready"),
    output:
        result=f"{RESULTS}/runs/{{run}}/result.json",
        history=f"{RESULTS}/runs/{{run}}/history.csv",
    log:
        f"{RESULTS}/logs/train/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{run}}.tsv"
    retries: RESOURCES.get("retries", 2)
    group:
        "train"
    conda:
        "../envs/train.yaml"
    threads: RESOURCES.get("cpus", 1)
    # per run; with resources.runs_per_gpu: k, a Slurm job of k runs sums their CPUs and
    # memory and shares one GPU (common.smk: train_gpu)
    resources:
        runtime=train_runtime,
        mem_mb=RESOURCES.get("mem_mb", 4000),
        gpu=train_gpu,
    # Nothing here may name a run's studies or variant: a changed parameter reruns a
    # finished job, and adding a study must not retrain the runs it shares. The run reads
    # its MLflow labels from runs.csv itself, and the tracking sync keeps them current.
    params:
        # shell words (common.smk), as `:q` would make them, with the command's text unchanged
        out=lambda w, output: shell_word(Path(output.result).parent),
        results=lambda w, output: shell_word(Path(output.result).parents[2]),
    # This command's text is part of every finished run's record (Snakemake's `code` rerun
    # trigger): edit it and every finished run is retrained. `python -m hybrid.train` stays.
    shell:
        "python -m hybrid.train --run-config {input.config} --out {params.out}"
        " --results-dir {params.results} --threads {threads} > {log} 2>&1"
