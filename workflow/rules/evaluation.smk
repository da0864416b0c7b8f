# Evaluation: how close each generator's synthetic ECG is to the real data.


rule fidelity_report:
    input:
        real="results/data/{dataset}.h5",
        synthetic=synthetic_for,
        real_model=real_classifier_model,
        tstr_metrics=tstr_metrics,
    output:
        json="results/fidelity/{dataset}/{generator}.json",
    log:
        "results/logs/fidelity/{dataset}/{generator}.log",
    benchmark:
        "results/benchmarks/fidelity/{dataset}/{generator}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    params:
        seed=EXPERIMENTS["seeds"][0],
    script:
        "../scripts/fidelity.py"
