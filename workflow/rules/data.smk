# Data: CIFAR, Tiny-ImageNet and Imagenette are downloaded once, where there is internet
# (the login node: this is a localrule), an image folder's layout checked; the generated
# data set is generated and cached the same way. The larger sets are then packed once
# (hybrid.data.packing: decoded, resized, centre-cropped into uint8 arrays under the data root),
# a CPU job of its own, unless a pack of the same size is already there.


rule data:
    output:
        touch(f"{RESULTS}/data/{{data}}.ready"),
    log:
        f"{RESULTS}/logs/data/{{data}}.log",
    localrule: True
    conda:
        "../envs/train.yaml"
    params:
        # its fields as shell words (common.smk ShellWords): the data root may hold a space
        dataset=lambda w: ShellWords(DATASETS[w.data]),
    shell:
        "python -m hybrid.data download {params.dataset.name} --root {params.dataset.root}"
        " --synthetic-train {params.dataset.synthetic_train}"
        " --synthetic-test {params.dataset.synthetic_test}"
        " --synthetic-seed {params.dataset.synthetic_seed}"
        " --imagenette-size {params.dataset.imagenette_size} > {log} 2>&1"


rule pack:
    input:
        f"{RESULTS}/data/{{data}}.ready",
    output:
        touch(f"{RESULTS}/data/{{data}}.packed"),
    log:
        f"{RESULTS}/logs/pack/{{data}}.log",
    conda:
        "../envs/train.yaml"
    threads: 8
    resources:
        runtime=RESOURCES.get("pack_runtime_min", 240),
        mem_mb=8000,
    params:
        # its fields as shell words (common.smk ShellWords): the data root may hold a space
        dataset=lambda w: ShellWords(DATASETS[w.data]),
    shell:
        "python -m hybrid.data pack {params.dataset.name} --root {params.dataset.root}"
        " --image-size {params.dataset.packed_size}"
        " --imagenette-size {params.dataset.imagenette_size} --workers {threads} > {log} 2>&1"
