# MLflow around the training jobs: the store and its experiments created once before any
# job starts (jobs that start together on a fresh SQLite store race to build its schema),
# and a sync at the end that logs whatever a job could not. Both are local and idempotent.


rule tracking_store:
    output:
        f"{RESULTS}/tracking/store.ready",
    log:
        f"{RESULTS}/logs/tracking_store.log",
    localrule: True
    conda:
        "../envs/train.yaml"
    params:
        stores=TRACKING_STORES,  # rerun when a store or an experiment is added
        command=_tracking_command("init"),
    shell:
        "({params.command}) > {log:q} 2>&1 && cp {log:q} {output:q}"


rule tracking_sync:
    input:
        results=run_results,
        planned=planned_results,
        store=f"{RESULTS}/tracking/store.ready",
    output:
        f"{RESULTS}/tracking/synced.txt",
    log:
        f"{RESULTS}/logs/tracking_sync.log",
    localrule: True
    conda:
        "../envs/train.yaml"
    params:
        command=_tracking_command("sync"),
    shell:
        "({params.command}) > {log:q} 2>&1 && cp {log:q} {output:q}"
