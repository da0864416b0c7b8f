# Aggregation: tables over seeds and the figures of the report.


rule summarise_tables:
    input:
        classifier=classifier_files(),
        fidelity=fidelity_files(),
        quality=quality_files(),
    output:
        runs="results/tables/runs.csv",
        cells="results/tables/cells.csv",
        quality_csv=report(
            "results/tables/quality.csv",
            caption="../report/quality_table.rst",
            category="2. Generators",
            labels={"table": "generator quality"},
        ),
        quality_md="results/tables/quality.md",
        augmentation_csv=report(
            "results/tables/augmentation.csv",
            caption="../report/augmentation_table.rst",
            category="5. Tables",
            labels={"table": "augmentation"},
        ),
        augmentation_md="results/tables/augmentation.md",
        transfer_csv=report(
            "results/tables/transfer.csv",
            caption="../report/transfer_table.rst",
            category="5. Tables",
            labels={"table": "transfer"},
        ),
        transfer_md="results/tables/transfer.md",
        fidelity_csv=report(
            "results/tables/fidelity.csv",
            caption="../report/fidelity_table.rst",
            category="5. Tables",
            labels={"table": "closeness"},
        ),
        fidelity_md="results/tables/fidelity.md",
        per_class_csv=report(
            "results/tables/per_class.csv",
            caption="../report/per_class_table.rst",
            category="5. Tables",
            labels={"table": "per class"},
        ),
        per_class_md="results/tables/per_class.md",
        comparisons_csv=report(
            "results/tables/comparisons.csv",
            caption="../report/comparisons_table.rst",
            category="5. Tables",
            labels={"table": "comparisons"},
        ),
        comparisons_md="results/tables/comparisons.md",
        merged_vs_single_csv=report(
            "results/tables/merged_vs_single.csv",
            caption="../report/merged_vs_single_table.rst",
            category="5. Tables",
            labels={"table": "merged vs single"},
        ),
        merged_vs_single_md="results/tables/merged_vs_single.md",
    log:
        "results/logs/tables.log",
    benchmark:
        "results/benchmarks/tables.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=2000,  # 733 MB over the paper grid's 705 runs (benchmarks/tables_at_scale.py)
    params:
        primary=config["experiments"]["primary_comparisons"],
    script:
        "../scripts/summarise_tables.py"


rule plot_transfer:
    input:
        table="results/tables/cells.csv",
    output:
        png=report(
            "results/plots/transfer.png",
            caption="../report/transfer.rst",
            category="3. Classifiers",
            subcategory="Transfer learning",
            labels={"figure": "transfer curves"},
        ),
    log:
        "results/logs/plots/transfer.log",
    benchmark:
        "results/benchmarks/plots/transfer.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        metric="macro_f1",
    script:
        "../scripts/plot_runs.py"


rule plot_augmentation:
    input:
        table="results/tables/comparisons.csv",
    output:
        png=report(
            "results/plots/augmentation_gain.png",
            caption="../report/augmentation.rst",
            category="3. Classifiers",
            subcategory="Augmentation",
            labels={"figure": "augmentation gains"},
        ),
    log:
        "results/logs/plots/augmentation.log",
    benchmark:
        "results/benchmarks/plots/augmentation.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        metric="macro_f1",
    script:
        "../scripts/plot_runs.py"


rule plot_confusion:
    input:
        unpack(confusion_inputs),
    output:
        png=report(
            "results/plots/confusion/{dataset}.png",
            caption="../report/confusion.rst",
            category="3. Classifiers",
            subcategory="Confusion matrices",
            labels={"dataset": "{dataset}"},
        ),
    log:
        "results/logs/plots/confusion/{dataset}.log",
    benchmark:
        "results/benchmarks/plots/confusion/{dataset}.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        generators=GENERATORS,
    script:
        "../scripts/plot_confusion.py"


rule plot_fidelity:
    input:
        reports=fidelity_files(),
    output:
        png=report(
            "results/plots/fidelity_heatmap.png",
            caption="../report/fidelity_heatmap.rst",
            category="4. Closeness to real ECG",
            subcategory="Summary",
            labels={"figure": "closeness heatmap"},
        ),
    log:
        "results/logs/plots/fidelity.log",
    benchmark:
        "results/benchmarks/plots/fidelity.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    script:
        "../scripts/plot_fidelity.py"


rule plot_samples:
    input:
        real="results/data/{source}.h5",
        synthetic=first_synthetic,
    output:
        png=report(
            "results/plots/samples/{source}/{generator}.png",
            caption="../report/samples.rst",
            category="2. Generators",
            subcategory="Samples",
            labels={"dataset": "{source}", "generator": "{generator}"},
        ),
    log:
        "results/logs/plots/samples/{source}/{generator}.log",
    benchmark:
        "results/benchmarks/plots/samples/{source}/{generator}.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,  # labels, and one record a panel
    params:
        seed=config["seed"],
    script:
        "../scripts/plot_samples.py"


rule plot_generator_loss:
    input:
        curves=loss_curves(),
    output:
        png=report(
            "results/plots/generator_loss.png",
            caption="../report/generator_loss.rst",
            category="2. Generators",
            subcategory="Training",
            labels={"figure": "loss curves"},
        ),
    log:
        "results/logs/plots/generator_loss.log",
    benchmark:
        "results/benchmarks/plots/generator_loss.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        sources=SOURCE_DATASETS,
        generators=GENERATORS,
    script:
        "../scripts/plot_generator_loss.py"


rule plot_heart_rate:
    input:
        reports=fidelity_files(),
    output:
        png=report(
            "results/plots/heart_rate.png",
            caption="../report/heart_rate.rst",
            category="4. Closeness to real ECG",
            subcategory="Summary",
            labels={"figure": "heart rate per class"},
        ),
    log:
        "results/logs/plots/heart_rate.log",
    benchmark:
        "results/benchmarks/plots/heart_rate.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    script:
        "../scripts/plot_heart_rate.py"
