# From result files to answers: the runs table, statistics, tables, figures.


rule runs_csv:
    output:
        f"{RESULTS}/runs.csv",
    params:
        # The resolved grid: the rule reruns whenever a run is added or removed.
        runs=sorted(RUNS),
    localrule: True
    run:
        from hybrid.studies import write_runs_csv

        write_runs_csv(list(RUNS.values()), output[0])


def analysis_outputs():
    return [f"{RESULTS}/runs.csv", *run_results()]
