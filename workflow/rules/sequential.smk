# A sequential study (the config's `sequential:`, hybrid/studies/stages.py): the comparisons'
# cells are trained stage by stage. After each stage a checkpoint looks at every comparison
# row (analysis/looks.py) and writes the plan of the next stage: the next stage's seeds for
# the cells of the rows still undecided, none for the others. Snakemake then re-evaluates
# the DAG, which grows by exactly those runs (their ids are content hashes, so no earlier
# run is retrained). Partial mode (`--config partial=true`) looks at whatever has finished.


rule candidates:
    output:
        f"{RESULTS}/sequential/candidates.csv",
    log:
        f"{RESULTS}/logs/candidates.log",
    localrule: True
    params:
        runs=sorted(RUNS),  # every run the design may train: rerun when one is added
    run:
        write_candidates(output[0])


checkpoint look:
    input:
        candidates=f"{RESULTS}/sequential/candidates.csv",
        config=f"{RESULTS}/config.yaml",
        results=look_results,
    output:
        f"{RESULTS}/sequential/look_{{look}}.json",
    log:
        f"{RESULTS}/logs/look/{{look}}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        runs_dir=lambda w, input: Path(input.candidates).parents[1] / "runs",
        finished=finished_results(),  # partial mode: look again when more runs have finished
    shell:
        "python -m analysis.looks --candidates {input.candidates:q} --runs-dir {params.runs_dir:q}"
        " --config {input.config:q} --look {wildcards.look} --out {output:q} > {log:q} 2>&1"
