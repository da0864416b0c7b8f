# Classifier experiments: real, augment, synthetic (the pretrained model) and finetune, then their
# controls (shuffled labels, classical augmentation, balance, scratch); synthecg/classifier/experiments.py.


rule classifier_real:
    input:
        real="results/data/{dataset}.h5",
    output:
        metrics="results/classifier/{dataset}/real/none/all/seed{seed}/metrics.json",
        model="results/classifier/{dataset}/real/none/all/seed{seed}/model.pt",
    log:
        "results/logs/classifier/{dataset}/real/seed{seed}.log",
    benchmark:
        "results/benchmarks/classifier/{dataset}/real/seed{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: EXPERIMENTS["threads"]
    resources:
        gpu=CLASSIFIER_GPU,
        gpu_slots=CLASSIFIER_GPU_SLOTS,
        mem_mb=CLASSIFIER_MEMORY,
    params:
        experiment="real",
        classifier=config["classifier"],
        device=EXPERIMENTS["device"],
    script:
        "../scripts/train_classifier.py"


rule classifier_augment:
    input:
        real="results/data/{dataset}.h5",
        synthetic=synthetic_for,
    output:
        metrics="results/classifier/{dataset}/augment/{generator}/r{ratio}/seed{seed}/metrics.json",
    log:
        "results/logs/classifier/{dataset}/augment/{generator}/r{ratio}/seed{seed}.log",
    benchmark:
        "results/benchmarks/classifier/{dataset}/augment/{generator}/r{ratio}/seed{seed}.tsv"
    wildcard_constraints:
        generator="|".join(ARM_GENERATORS),
    conda:
        "../../envs/torch.yaml"
    threads: EXPERIMENTS["threads"]
    resources:
        gpu=CLASSIFIER_GPU,
        gpu_slots=CLASSIFIER_GPU_SLOTS,
        mem_mb=augmented_memory,
    params:
        experiment="augment",
        replicate=replicate_of,
        classifier=config["classifier"],
        device=EXPERIMENTS["device"],
    script:
        "../scripts/train_classifier.py"


rule classifier_synthetic:
    input:
        real="results/data/{dataset}.h5",
        synthetic=synthetic_for,
    output:
        metrics="results/classifier/{dataset}/synthetic/{generator}/all/seed{seed}/metrics.json",
        model="results/classifier/{dataset}/synthetic/{generator}/all/seed{seed}/model.pt",
    log:
        "results/logs/classifier/{dataset}/synthetic/{generator}/seed{seed}.log",
    benchmark:
        "results/benchmarks/classifier/{dataset}/synthetic/{generator}/seed{seed}.tsv"
    wildcard_constraints:
        generator="|".join(ARM_GENERATORS),
    conda:
        "../../envs/torch.yaml"
    threads: EXPERIMENTS["threads"]
    resources:
        gpu=CLASSIFIER_GPU,
        gpu_slots=CLASSIFIER_GPU_SLOTS,
        mem_mb=CLASSIFIER_MEMORY,
    params:
        experiment="synthetic",
        replicate=replicate_of,
        classifier=config["classifier"],
        device=EXPERIMENTS["device"],
    script:
        "../scripts/train_classifier.py"


rule classifier_finetune:
    input:
        real="results/data/{dataset}.h5",
        pretrained="results/classifier/{dataset}/synthetic/{generator}/all/seed{seed}/model.pt",
    output:
        metrics="results/classifier/{dataset}/finetune/{generator}/f{fraction}/seed{seed}/metrics.json",
    log:
        "results/logs/classifier/{dataset}/finetune/{generator}/f{fraction}/seed{seed}.log",
    benchmark:
        "results/benchmarks/classifier/{dataset}/finetune/{generator}/f{fraction}/seed{seed}.tsv"
    wildcard_constraints:
        generator="|".join(ARM_GENERATORS),
    conda:
        "../../envs/torch.yaml"
    threads: EXPERIMENTS["threads"]
    resources:
        gpu=CLASSIFIER_GPU,
        gpu_slots=CLASSIFIER_GPU_SLOTS,
        mem_mb=CLASSIFIER_MEMORY,
    params:
        experiment="finetune",
        replicate=replicate_of,
        classifier=config["classifier"],
        device=EXPERIMENTS["device"],
    script:
        "../scripts/train_classifier.py"


# Controls: each comparison of the study gets its baseline.


rule classifier_shuffled:
    input:
        real="results/data/{dataset}.h5",
    output:
        metrics="results/classifier/{dataset}/shuffled/none/all/seed{seed}/metrics.json",
    log:
        "results/logs/classifier/{dataset}/shuffled/seed{seed}.log",
    benchmark:
        "results/benchmarks/classifier/{dataset}/shuffled/seed{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: EXPERIMENTS["threads"]
    resources:
        gpu=CLASSIFIER_GPU,
        gpu_slots=CLASSIFIER_GPU_SLOTS,
        mem_mb=CLASSIFIER_MEMORY,
    params:
        experiment="shuffled",
        classifier=config["classifier"],
        device=EXPERIMENTS["device"],
    script:
        "../scripts/train_classifier.py"


rule classifier_classical:
    input:
        real="results/data/{dataset}.h5",
    output:
        metrics="results/classifier/{dataset}/augment/classical/r{ratio}/seed{seed}/metrics.json",
    log:
        "results/logs/classifier/{dataset}/augment/classical/r{ratio}/seed{seed}.log",
    benchmark:
        "results/benchmarks/classifier/{dataset}/augment/classical/r{ratio}/seed{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: EXPERIMENTS["threads"]
    resources:
        gpu=CLASSIFIER_GPU,
        gpu_slots=CLASSIFIER_GPU_SLOTS,
        mem_mb=augmented_memory,
    params:
        experiment="classical",
        generator="classical",
        classical=EXPERIMENTS["classical_augmentation"],
        classifier=config["classifier"],
        device=EXPERIMENTS["device"],
    script:
        "../scripts/train_classifier.py"


rule classifier_balance:
    input:
        real="results/data/{dataset}.h5",
        synthetic=synthetic_for,
    output:
        metrics="results/classifier/{dataset}/balance/{generator}/all/seed{seed}/metrics.json",
    log:
        "results/logs/classifier/{dataset}/balance/{generator}/seed{seed}.log",
    benchmark:
        "results/benchmarks/classifier/{dataset}/balance/{generator}/seed{seed}.tsv"
    wildcard_constraints:
        generator="|".join(ARM_GENERATORS),
    conda:
        "../../envs/torch.yaml"
    threads: EXPERIMENTS["threads"]
    resources:
        gpu=CLASSIFIER_GPU,
        gpu_slots=CLASSIFIER_GPU_SLOTS,
        mem_mb=CLASSIFIER_MEMORY,
    params:
        experiment="balance",
        replicate=replicate_of,
        balance_target=EXPERIMENTS["balance_target"],
        classifier=config["classifier"],
        device=EXPERIMENTS["device"],
    script:
        "../scripts/train_classifier.py"


rule classifier_scratch:
    input:
        real="results/data/{dataset}.h5",
    output:
        metrics="results/classifier/{dataset}/scratch/none/f{fraction}/seed{seed}/metrics.json",
    log:
        "results/logs/classifier/{dataset}/scratch/f{fraction}/seed{seed}.log",
    benchmark:
        "results/benchmarks/classifier/{dataset}/scratch/f{fraction}/seed{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: EXPERIMENTS["threads"]
    resources:
        gpu=CLASSIFIER_GPU,
        gpu_slots=CLASSIFIER_GPU_SLOTS,
        mem_mb=CLASSIFIER_MEMORY,
    params:
        experiment="scratch",
        classifier=config["classifier"],
        device=EXPERIMENTS["device"],
    script:
        "../scripts/train_classifier.py"
