# Generator stages: train each generator on each source dataset, then sample it; once per replicate
# (generators.replicates: independently seeded trainings, each with its own samples).


# Training is the run's longest chain (train -> sample -> every classifier that uses the samples):
# started first, it overlaps with the classifiers that need no generator instead of following them.
rule train_generator:
    input:
        h5="results/data/{source}.h5",
    output:
        model="results/generators/{source}/{generator}/rep{replicate}/model.pt",
        sidecar="results/generators/{source}/{generator}/rep{replicate}/model.json",
        curve_csv="results/generators/{source}/{generator}/rep{replicate}/loss.csv",
        curve_png="results/generators/{source}/{generator}/rep{replicate}/loss.png",
    log:
        "results/logs/generators/{source}/{generator}/rep{replicate}.log",
    benchmark:
        "results/benchmarks/generators/{source}/{generator}/rep{replicate}.tsv"
    priority: 50
    conda:
        "../../envs/torch.yaml"
    threads: config["generators"]["resources"]["threads"]
    resources:
        gpu=GENERATOR_GPU,
        gpu_slots=GENERATOR_GPU_SLOTS,
        mem_mb=config["generators"]["resources"]["mem_mb"],
        runtime=config["generators"]["resources"]["runtime"],
    params:
        settings=generator_settings,
        checkpoint=generator_checkpoint,
        seed=lambda wildcards: config["generators"]["training"]["seed"]
        + int(wildcards.replicate),
        class_balance=config["generators"]["training"]["class_balance"],
        augmentation=config["generators"]["training"]["augmentation"],
        leads=config["generators"]["leads"],
        checkpoint_every=config["generators"]["training"]["checkpoint_every"],
        log_every=config["generators"]["training"]["log_every"],
        device=config["generators"]["training"]["device"],
        min_records_per_class=config["generators"]["min_records_per_class"],
        on_small_class=config["generators"]["on_small_class"],
    script:
        "../scripts/train_generator.py"


rule sample_synthetic:
    input:
        model="results/generators/{source}/{generator}/rep{replicate}/model.pt",
        sidecar="results/generators/{source}/{generator}/rep{replicate}/model.json",
        h5="results/data/{source}.h5",
    output:
        h5="results/synthetic/{source}/{generator}/rep{replicate}.h5",
    log:
        "results/logs/synthetic/{source}/{generator}/rep{replicate}.log",
    benchmark:
        "results/benchmarks/synthetic/{source}/{generator}/rep{replicate}.tsv"
    priority: 50
    conda:
        "../../envs/torch.yaml"
    threads: config["generators"]["resources"]["threads"]
    resources:
        gpu=GENERATOR_GPU,
        gpu_slots=GENERATOR_GPU_SLOTS,
        mem_mb=2000,  # the model and a batch; records are written as they are drawn
    params:
        per_class=config["sampling"]["per_class"],
        ratio_to_real=config["sampling"]["ratio_to_real"],
        batch_size=config["sampling"]["batch_size"],
        seed=lambda wildcards: config["sampling"]["seed"] + int(wildcards.replicate),
        device=config["generators"]["training"]["device"],
    script:
        "../scripts/sample_synthetic.py"


# A curated set: the same model and seed as sample_synthetic's, keeping only records whose rhythm
# fits their class (experiments.curated), drawn until each class has its count or the draws run out.
rule sample_curated:
    input:
        model="results/generators/{source}/{generator}/rep{replicate}/model.pt",
        sidecar="results/generators/{source}/{generator}/rep{replicate}/model.json",
        h5="results/data/{source}.h5",
    output:
        h5="results/synthetic/{source}/{generator}-curated/rep{replicate}.h5",
        curation="results/synthetic/{source}/{generator}-curated/rep{replicate}.json",
    log:
        "results/logs/synthetic/{source}/{generator}-curated/rep{replicate}.log",
    benchmark:
        "results/benchmarks/synthetic/{source}/{generator}-curated/rep{replicate}.tsv"
    priority: 50
    conda:
        "../../envs/torch.yaml"
    threads: config["generators"]["resources"]["threads"]
    resources:
        gpu=GENERATOR_GPU,
        gpu_slots=GENERATOR_GPU_SLOTS,
        mem_mb=2000,  # the model and a batch; records are written as they are drawn
    params:
        per_class=config["sampling"]["per_class"],
        ratio_to_real=config["sampling"]["ratio_to_real"],
        batch_size=config["sampling"]["batch_size"],
        seed=lambda wildcards: config["sampling"]["seed"] + int(wildcards.replicate),
        device=config["generators"]["training"]["device"],
        curate_max_draws=config["sampling"]["curate_max_draws"],
    script:
        "../scripts/sample_synthetic.py"
