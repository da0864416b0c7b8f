# Evaluation: how close each generator's synthetic ECG is to the real data.


rule real_rhythm:
    input:
        h5="results/data/{source}.h5",
    output:
        csv="results/quality/{source}/real_rhythm.csv",
    log:
        "results/logs/quality/{source}/real_rhythm.log",
    benchmark:
        "results/benchmarks/quality/{source}/real_rhythm.tsv"
    conda:
        "../../envs/data.yaml"
    # ~45 ms a record on one core: 33 core-minutes for Chapman's 45,152 records.
    # Snakemake lowers it to --cores on a smaller machine.
    threads: 4
    resources:
        mem_mb=2000,  # 480 MB at 2 threads: a block of 256 records a worker, whatever the size
    script:
        "../scripts/real_rhythm.py"


# The merged set holds the sources' records unchanged: their rhythms are not read again.
rule merged_rhythm:
    input:
        unpack(source_rhythms),
        h5="results/data/merged.h5",
    output:
        csv="results/quality/merged/real_rhythm.csv",
    log:
        "results/logs/quality/merged/real_rhythm.log",
    benchmark:
        "results/benchmarks/quality/merged/real_rhythm.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,  # two tables of a row a record
    script:
        "../scripts/merged_rhythm.py"


rule synthetic_rhythm:
    input:
        real="results/data/{dataset}.h5",
        synthetic=synthetic_for,
    output:
        csv="results/quality/{dataset}/synthetic_rhythm/{generator}.csv",
    log:
        "results/logs/quality/{dataset}/synthetic_rhythm/{generator}.log",
    benchmark:
        "results/benchmarks/quality/{dataset}/synthetic_rhythm/{generator}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1000,  # the labels and the records read: at most max_per_class a class
    params:
        max_per_class=200,  # records read per class (~60 ms each), whatever the sampling ratio
    script:
        "../scripts/synthetic_rhythm.py"


rule generator_quality:
    input:
        real="results/data/{source}.h5",
        real_rhythm="results/quality/{source}/real_rhythm.csv",
        synthetic=first_synthetic,
        synthetic_rhythm="results/quality/{source}/synthetic_rhythm/{generator}.csv",
    output:
        json="results/quality/{source}/{generator}.json",
    log:
        "results/logs/quality/{source}/{generator}.log",
    benchmark:
        "results/benchmarks/quality/{source}/{generator}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=memory_for("real", base_mb=1500),  # the real records in mV, a few hundred synthetic ones
    script:
        "../scripts/generator_quality.py"


rule fidelity_report:
    input:
        real="results/data/{dataset}.h5",
        real_rhythm="results/quality/{dataset}/real_rhythm.csv",
        synthetic=synthetic_for,
        synthetic_rhythm="results/quality/{dataset}/synthetic_rhythm/{generator}.csv",
        real_models=real_classifier_models,
        tstr_metrics=tstr_metrics,
    output:
        json="results/fidelity/{dataset}/{generator}.json",
    log:
        "results/logs/fidelity/{dataset}/{generator}.log",
    benchmark:
        "results/benchmarks/fidelity/{dataset}/{generator}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        # The real records normalised, a per-class sample of synthetic ones, and the DCR distances
        # (2,000 queries x every real record, sorted too): 7.7 GB for the merged set at full size.
        mem_mb=memory_for("real", base_mb=2000, per_mb=3.0),
    params:
        seeds=EXPERIMENTS["seeds"],
    script:
        "../scripts/fidelity.py"


rule plot_embedding:
    input:
        real="results/data/{dataset}.h5",
        synthetic=synthetic_for,
        real_model=first_real_classifier_model,
    output:
        png=report(
            "results/plots/embedding/{dataset}/{generator}.png",
            caption="../report/embedding.rst",
            category="4. Closeness to real ECG",
            subcategory="Embeddings",
            labels={"dataset": "{dataset}", "generator": "{generator}"},
        ),
    log:
        "results/logs/plots/embedding/{dataset}/{generator}.log",
    benchmark:
        "results/benchmarks/plots/embedding/{dataset}/{generator}.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=1500,  # max_records of each side, read by rows
    params:
        max_records=2000,
    script:
        "../scripts/plot_embedding.py"
