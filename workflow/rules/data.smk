# Data stages: PhysioNet download -> per-dataset HDF5 and QC table -> merged HDF5.


# Outputs: the catalogue and the manifest say what the data is (the same from any copy of the
# release); location.json says where the verified files lie and where they came from this time.
# physionet_url and the download settings are read by the script, not passed as params: see there.
# A job stopped by server errors is rerun (download.job_retries) and fetches only what is missing.
rule download_dataset:
    output:
        catalogue="results/physionet/{source}/records.csv",
        manifest="results/physionet/{source}/manifest.json",
        location="results/physionet/{source}/location.json",
    log:
        "results/logs/download/{source}.log",
    benchmark:
        "results/benchmarks/download/{source}.tsv"
    retries: config["download"]["job_retries"]
    conda:
        "../../envs/data.yaml"
    # Peak 350 MB for Chapman's 45,152 records (docs/scale.md). From a mirror on the same machine
    # the download took 8 min; from physionet.org, one request a file, it may take hours (runtime
    # is in minutes).
    resources:
        mem_mb=1000,
        runtime=480,
    params:
        cache=PHYSIONET_CACHE,
        classes=config["classes"],
        max_records_per_class=config["max_records_per_class"],
        sampling_rate=config["sampling_rate"],
        seed=config["seed"],
        split_fractions=config["split_fractions"],
    script:
        "../scripts/download.py"


rule preprocess_dataset:
    input:
        catalogue="results/physionet/{source}/records.csv",
        manifest="results/physionet/{source}/manifest.json",
        # Where the files lie is no reason to preprocess again: the manifest fixes their bytes.
        location=ancient("results/physionet/{source}/location.json"),
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
    resources:
        mem_mb=preprocess_mem_mb,
        runtime=60,  # minutes; 4.3 min for Chapman's 45,152 records on 2 threads
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
    resources:
        mem_mb=1000,  # peak 280 MB for the 64,953 records of both releases, copied 1,024 at a time
        runtime=30,  # minutes; 1.3 min at full size
    script:
        "../scripts/merge.py"
