# Data stages: PhysioNet download -> per-dataset HDF5 and QC table -> merged HDF5.


rule download_dataset:
    output:
        catalogue="results/physionet/{source}/records.csv",
        manifest="results/physionet/{source}/manifest.json",
    log:
        "results/logs/download/{source}.log",
    benchmark:
        "results/benchmarks/download/{source}.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        physionet_url=config["physionet_url"],
        cache=PHYSIONET_CACHE,
        classes=config["classes"],
        max_records_per_class=config["max_records_per_class"],
        sampling_rate=config["sampling_rate"],
        seed=config["seed"],
        split_fractions=config["split_fractions"],
        workers=config["download"]["workers"],
        retries=config["download"]["retries"],
    script:
        "../scripts/download.py"


rule preprocess_dataset:
    input:
        catalogue="results/physionet/{source}/records.csv",
        manifest="results/physionet/{source}/manifest.json",
    output:
        h5="results/data/{source}.h5",
        qc=report(
            "results/data/{source}/qc.csv",
            caption="../report/qc.rst",
            category="1. Data",
            labels={"dataset": "{source}", "table": "excluded records"},
        ),
    log:
        "results/logs/preprocess/{source}.log",
    benchmark:
        "results/benchmarks/preprocess/{source}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: config["preprocess"]["threads"]
    params:
        classes=config["classes"],
        sampling_rate=config["sampling_rate"],
        seed=config["seed"],
        split_fractions=config["split_fractions"],
        flat_lead_std_mv=config["preprocess"]["flat_lead_std_mv"],
    script:
        "../scripts/preprocess.py"


rule merge_datasets:
    input:
        unpack(merge_inputs),
    output:
        h5="results/data/merged.h5",
    log:
        "results/logs/preprocess/merged.log",
    benchmark:
        "results/benchmarks/preprocess/merged.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/merge.py"
