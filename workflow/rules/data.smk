# Data: CIFAR is downloaded once, where there is internet (the login node: this is a
# localrule); the generated data set is generated and cached the same way.


rule data:
    output:
        touch(f"{RESULTS}/data/{{data}}.ready"),
    log:
        f"{RESULTS}/logs/data/{{data}}.log",
    localrule: True
    conda:
        "../envs/train.yaml"
    params:
        dataset=lambda w: DATASETS[w.data],
    shell:
        "python -m hybrid.data download {params.dataset.name} --root {params.dataset.root}"
        " --synthetic-train {params.dataset.synthetic_train}"
        " --synthetic-test {params.dataset.synthetic_test}"
        " --synthetic-seed {params.dataset.synthetic_seed} > {log} 2>&1"
