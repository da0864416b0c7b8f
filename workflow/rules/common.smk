# Config validation and every helper the stage files use. Nothing here runs a job.
import os
import sys
from pathlib import Path

# The synthecg package of this checkout: importable here and, through PYTHONPATH, in every job's
# Python (conda environments and cluster jobs included) without installing it there.
SRC = str(Path(workflow.current_basedir).parents[1] / "src")
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join([SRC, *filter(None, [os.environ.get("PYTHONPATH")])])
)

from synthecg.config import validate_config
from synthecg.errors import PipelineError
from synthecg.hardware import nvidia_gpu_visible

try:
    validate_config(
        config, Path(workflow.current_basedir).parent / "schemas" / "config.schema.yaml"
    )
except PipelineError as error:
    raise WorkflowError(str(error)) from None

SOURCE_DATASETS = config["datasets"]
# The merged set needs both sources; a generator is never trained on it.
DATASETS = SOURCE_DATASETS + (["merged"] if len(SOURCE_DATASETS) > 1 else [])
PHYSIONET_CACHE = "results/physionet/files"
GENERATORS = config["generators"]["names"]
# Independently trained (and sampled) copies of each generator; classifier seed s uses replicate
# s mod REPLICATES, so with as many replicates as seeds the spread over seeds covers the
# generator's training and sampling as well as the classifier's. Quality, closeness and sample
# plots judge replicate 0.
REPLICATES = config["generators"]["replicates"]


EXPERIMENTS = config["experiments"]
# Each generator's curated set (only records whose rhythm fits their class) is a synthetic set of
# its own, "{generator}-curated", for the arms that use synthetic records.
CURATED = [f"{g}-curated" for g in GENERATORS] if EXPERIMENTS["curated"] else []
ARM_GENERATORS = GENERATORS + CURATED


def gpu_request(device):
    """The `gpu` resource of a job whose torch device setting is `device` (see config key gpu_jobs)."""
    if config["gpu_jobs"] != "auto":
        return int(config["gpu_jobs"] == "always")
    return int(device == "cuda" or (device == "auto" and nvidia_gpu_visible()))


# `gpu` says that a job uses a GPU (executors such as SLURM's read it); `gpu_slots` how much of
# one card it takes, against the slots a local profile offers (config key gpu_slots).
GENERATOR_GPU = gpu_request(config["generators"]["training"]["device"])
CLASSIFIER_GPU = gpu_request(EXPERIMENTS["device"])
GENERATOR_GPU_SLOTS = GENERATOR_GPU * config["gpu_slots"]["generators"]
CLASSIFIER_GPU_SLOTS = CLASSIFIER_GPU * config["gpu_slots"]["classifiers"]


def preprocess_mem_mb(wildcards, threads):
    """Memory of one preprocessing job in MB: the process writing the HDF5 file, and one reader
    process per thread. At the releases' full size with 2 threads its peak was 790 MB (Chapman,
    RSS summed over the processes, as Snakemake measures it; docs/scale.md); this is twice that.
    """
    return 1000 + 300 * threads


def memory_for(*inputs, base_mb, per_mb=2.0):
    """mem_mb of a job that holds the records of its named `inputs` (those the rule has) in
    memory: `base_mb` (Python, torch, working arrays) plus `per_mb` per MB of those HDF5 files,
    whose float32 records take ~1.4x their compressed size once read. Inputs not there yet count
    0; Snakemake evaluates it again when it schedules the job. Checked at the releases' size by
    benchmarks/scale_rehearsal.py --jobs (docs/benchmarks.md)."""

    def mem_mb(wildcards, input):
        named = [getattr(input, name) for name in inputs if hasattr(input, name)]
        files = [
            f for item in named for f in ([item] if isinstance(item, str) else item)
        ]
        return int(
            base_mb
            + per_mb * sum(os.path.getsize(f) for f in files if os.path.exists(f)) / 1e6
        )

    return mem_mb


# A classifier run holds its real set (every split) and the synthetic records it trains on.
CLASSIFIER_MEMORY = memory_for("real", "synthetic", base_mb=1500)


def augmented_memory(wildcards, input):
    """An augment or classical run at ratio r trains on (1 + r) x the real training records
    (0.8 of the set, ~1.4x their compressed size as float32) beside the validation and test
    splits: memory by the real set's size, not by the synthetic files it draws from."""
    per_mb = 1.4 * (1 + float(wildcards.ratio)) + 0.4
    return memory_for("real", base_mb=1500, per_mb=per_mb)(wildcards, input)


wildcard_constraints:
    source="|".join(SOURCE_DATASETS),
    dataset="|".join(DATASETS),
    generator="|".join(GENERATORS),
    ratio=r"[0-9.]+",
    fraction=r"[0-9.]+",
    seed=r"\d+",
    replicate=r"\d+",


def downloaded_files():
    return expand("results/physionet/{source}/manifest.json", source=SOURCE_DATASETS)


def preprocessed_files():
    return expand("results/data/{dataset}.h5", dataset=DATASETS) + expand(
        "results/data/{source}/qc.csv", source=SOURCE_DATASETS
    )


def merge_inputs(wildcards):
    return {source: f"results/data/{source}.h5" for source in SOURCE_DATASETS}


def source_rhythms(wildcards):
    return {
        source: f"results/quality/{source}/real_rhythm.csv"
        for source in SOURCE_DATASETS
    }


def generator_files():
    return expand(
        "results/generators/{source}/{generator}/rep{replicate}/model.pt",
        source=SOURCE_DATASETS,
        generator=GENERATORS,
        replicate=range(REPLICATES),
    )


def synthetic_files():
    return expand(
        "results/synthetic/{source}/{generator}/rep{replicate}.h5",
        source=SOURCE_DATASETS,
        generator=GENERATORS,
        replicate=range(REPLICATES),
    )


def replicate_of(wildcards):
    """The generator replicate a job's synthetic records come from: its classifier seed's, or 0."""
    return int(wildcards.seed) % REPLICATES if "seed" in wildcards.keys() else 0


def first_synthetic(wildcards):
    """Replicate 0's synthetic records of a source: what quality reports and sample plots judge."""
    return f"results/synthetic/{wildcards.source}/{wildcards.generator}/rep0.h5"


def generator_settings(wildcards):
    """Only this generator's own settings, so changing another's does not retrain it."""
    return config["generators"].get(wildcards.generator, {})


def generator_checkpoint(wildcards):
    return f"results/generators/{wildcards.source}/{wildcards.generator}/rep{wildcards.replicate}/checkpoint.pt"


def classifier_files():
    """metrics.json of every cell of the experiment grid: the arms of experiments.arms."""
    arms = EXPERIMENTS["arms"]
    ratios = [f"r{r}" for r in EXPERIMENTS["augment_ratios"]]
    fractions = EXPERIMENTS["finetune_fractions"]
    # (experiment in the path, generators, settings) per arm; a control of no generator is "none".
    cells = {
        "real": ("real", ["none"], ["all"]),
        "shuffled": ("shuffled", ["none"], ["all"]),
        "augment": ("augment", ARM_GENERATORS, ratios),
        "classical": ("augment", ["classical"], ratios),
        "balance": ("balance", ARM_GENERATORS, ["all"]),
        "synthetic": ("synthetic", ARM_GENERATORS, ["all"]),
        "finetune": ("finetune", ARM_GENERATORS, [f"f{f}" for f in fractions]),
        # An untrained network needs no run: scratch starts at the first real record.
        "scratch": ("scratch", ["none"], [f"f{f}" for f in fractions if f > 0]),
    }
    run = "results/classifier/{dataset}/{experiment}/{generator}/{setting}/seed{seed}/metrics.json"
    files = []
    for arm in arms:
        experiment, generators, settings = cells[arm]
        files += expand(
            run,
            dataset=DATASETS,
            experiment=experiment,
            generator=generators,
            setting=settings,
            seed=EXPERIMENTS["seeds"],
        )
    return files


def synthetic_for(wildcards):
    """The synthetic sets a dataset's classifiers use (the replicate paired with their seed; 0 for
    closeness reports and plots): the merged set takes both sources'."""
    sources = SOURCE_DATASETS if wildcards.dataset == "merged" else [wildcards.dataset]
    replicate = replicate_of(wildcards)
    return [
        f"results/synthetic/{s}/{wildcards.generator}/rep{replicate}.h5"
        for s in sources
    ]


def fidelity_files():
    return expand(
        "results/fidelity/{dataset}/{generator}.json",
        dataset=DATASETS,
        generator=GENERATORS,
    )


def quality_files():
    return expand(
        "results/quality/{source}/{generator}.json",
        source=SOURCE_DATASETS,
        generator=GENERATORS,
    )


def real_classifier_models(wildcards):
    """The classifiers trained on real data only, one per seed: their features embed records for FID and MMD."""
    return expand(
        "results/classifier/{dataset}/real/none/all/seed{seed}/model.pt",
        dataset=wildcards.dataset,
        seed=EXPERIMENTS["seeds"],
    )


def first_real_classifier_model(wildcards):
    """The real-data classifier of the first seed: its feature space is the one the embedding plot shows."""
    return real_classifier_models(wildcards)[0]


def tstr_metrics(wildcards):
    """The synthetic-only classifiers' test metrics (TSTR), one per seed."""
    return expand(
        "results/classifier/{dataset}/synthetic/{generator}/all/seed{seed}/metrics.json",
        dataset=wildcards.dataset,
        generator=wildcards.generator,
        seed=EXPERIMENTS["seeds"],
    )


TABLES = [
    "quality",
    "augmentation",
    "transfer",
    "fidelity",
    "per_class",
    "comparisons",
    "merged_vs_single",
]


def table_files():
    return expand("results/tables/{table}.{kind}", table=TABLES, kind=["csv", "md"])


def plot_files():
    return [
        "results/plots/transfer.png",
        "results/plots/augmentation_gain.png",
        "results/plots/fidelity_heatmap.png",
        "results/plots/heart_rate.png",
        "results/plots/generator_loss.png",
        *expand("results/plots/confusion/{dataset}.png", dataset=DATASETS),
        *expand(
            "results/plots/samples/{source}/{generator}.png",
            source=SOURCE_DATASETS,
            generator=GENERATORS,
        ),
        *expand(
            "results/plots/embedding/{dataset}/{generator}.png",
            dataset=DATASETS,
            generator=GENERATORS,
        ),
    ]


def confusion_inputs(wildcards):
    """Per dataset: the real-only runs and each generator's synthetic-only (TSTR) runs, every seed."""
    run = "results/classifier/{dataset}/{experiment}/{generator}/all/seed{seed}/metrics.json"
    seeds = EXPERIMENTS["seeds"]
    inputs = {
        "real": expand(
            run,
            dataset=wildcards.dataset,
            experiment="real",
            generator="none",
            seed=seeds,
        )
    }
    for generator in GENERATORS:
        inputs[generator] = expand(
            run,
            dataset=wildcards.dataset,
            experiment="synthetic",
            generator=generator,
            seed=seeds,
        )
    return inputs


def loss_curves():
    return expand(
        "results/generators/{source}/{generator}/rep0/loss.csv",
        source=SOURCE_DATASETS,
        generator=GENERATORS,
    )
