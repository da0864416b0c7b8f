"""The classifier experiments through the Snakemake CLI on the mirror, and what reruns after a change."""

import json
import re

import pandas as pd
import pytest

from conftest import run_snakemake, write_config
from test_workflow_generators import TINY_GENERATORS

pytestmark = pytest.mark.integration

GENERATORS = {**TINY_GENERATORS, "names": ["diffwave"]}
EXPERIMENTS = {"seeds": [0], "augment_ratios": [0.5, 2], "finetune_fractions": [0, 1.0], "device": "auto"}
CLASSIFIER = {"filters": [4, 8, 8], "batch_size": 8, "max_epochs": 2, "patience": 1}


def configure(workdir, mirror, **changes):
    settings = dict(physionet_url=str(mirror), max_records_per_class=5, generators=GENERATORS,
                    sampling={"per_class": 4, "ratio_to_real": 2.0, "batch_size": 4, "seed": 0},
                    classifier=CLASSIFIER, experiments=EXPERIMENTS)
    write_config(workdir, **{**settings, **changes})


def planned_jobs(workdir) -> dict[str, int]:
    """Job counts per rule of a dry run of `classifiers` (the 'Job stats' table)."""
    output = run_snakemake(workdir, "classifiers", "--dry-run").stdout
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", output, re.M) if rule != "total"}


def cells(seeds, ratios, fractions, generators=1, datasets=3):
    per_seed = datasets * len(seeds)
    return {"classifier_real": per_seed,
            "classifier_shuffled": per_seed,
            "classifier_augment": per_seed * generators * len(ratios),
            "classifier_classical": per_seed * len(ratios),
            "classifier_balance": per_seed * generators,
            "classifier_synthetic": per_seed * generators,
            "classifier_finetune": per_seed * generators * len(fractions),
            "classifier_scratch": per_seed * len([f for f in fractions if f > 0])}


def test_every_cell_of_the_grid_gets_metrics_and_only_changed_cells_rerun(mirror, tmp_path):
    configure(tmp_path, mirror)
    run_snakemake(tmp_path, "classifiers")
    runs = sorted((tmp_path / "results/classifier").glob("*/*/*/*/seed*/metrics.json"))
    names = {str(p.relative_to(tmp_path / "results/classifier").parent) for p in runs}
    assert len(runs) == sum(cells([0], [0.5, 2], [0, 1.0]).values())
    for dataset in ("ptbxl", "chapman", "merged"):
        assert f"{dataset}/real/none/all/seed0" in names
        for generator in ("diffwave",):
            assert {f"{dataset}/augment/{generator}/r{r}/seed0" for r in (0.5, 2)} <= names
            assert {f"{dataset}/finetune/{generator}/f{f}/seed0" for f in (0, 1.0)} <= names
            assert f"{dataset}/balance/{generator}/all/seed0" in names
        assert {f"{dataset}/augment/classical/r{r}/seed0" for r in (0.5, 2)} <= names
        assert {f"{dataset}/shuffled/none/all/seed0", f"{dataset}/scratch/none/f1.0/seed0"} <= names
    metrics = json.loads((tmp_path / "results/classifier/merged/augment/diffwave/r2/seed0/metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1", "macro_auroc",
                "per_class_f1", "confusion_matrix", "epochs", "wall_time_s", "missing"):
        assert key in metrics
    # The merged set is augmented with both sources' samples (4 per trained class each).
    real = json.loads((tmp_path / "results/classifier/merged/real/none/all/seed0/metrics.json").read_text())
    added = {c: metrics["train_records_per_class"][c] - real["train_records_per_class"][c] for c in real["classes"]}
    assert all(n <= 2 * real["train_records_per_class"][c] for c, n in added.items()) and sum(added.values()) > 0
    # Its PTB-XL part is exactly PTB-XL's own test split: the same records in the same order.
    ptbxl = json.loads((tmp_path / "results/classifier/ptbxl/real/none/all/seed0/metrics.json").read_text())
    assert real["by_source"]["ptbxl"]["test_records_sha256"] == ptbxl["test_records_sha256"]
    assert real["by_source"]["ptbxl"]["n_test"] == ptbxl["n_test"] == real["test_sources"].count("ptbxl")
    # Chapman has no SR record at all: the metric is missing, with its reason, not 0.
    chapman = json.loads((tmp_path / "results/classifier/chapman/real/none/all/seed0/metrics.json").read_text())
    assert chapman["per_class_f1"]["SR"] is None and chapman["missing"]["per_class_f1.SR"]
    fraction_zero = json.loads((tmp_path / "results/classifier/ptbxl/finetune/diffwave/f0/seed0/metrics.json").read_text())
    pretrained = json.loads((tmp_path / "results/classifier/ptbxl/synthetic/diffwave/all/seed0/metrics.json").read_text())
    assert fraction_zero["accuracy"] == pretrained["accuracy"] and fraction_zero["epochs"] == 0

    run_snakemake(tmp_path, "all")
    for dataset in ("ptbxl", "chapman", "merged"):
        report = json.loads((tmp_path / f"results/fidelity/{dataset}/diffwave.json").read_text())
        scores = report["by_seed"]["0"]  # a measure is None where the quick run's held-out split is too small
        assert set(scores) >= {"fid", "mmd2", "linear_probe_score", "tstr_macro_f1", "trts_macro_f1"}
        assert all(scores[m] is None or scores[m]["value"] >= 0 for m in ("fid", "linear_probe_score"))
        assert report["generator"] == "diffwave" and report["n_synthetic"] > 0 and report["reference"] == "val+test"
        assert set(report["signals"]) == {"cnn_score", "amplitude_difference", "log_spectrum_difference"}
        assert report["privacy"]["exact_copies"]["value"] == 0
        assert report["heart_rate_bpm"] and all("wasserstein_bpm" in c for c in report["heart_rate_bpm"].values())
    tables = tmp_path / "results/tables"
    augmentation = pd.read_csv(tables / "augmentation.csv")
    assert list(augmentation.generator) == ["real only", "shuffled labels", "majority class", "diffwave", "diffwave",
                                            "classical", "classical", "diffwave (balance)"]
    assert augmentation["ptbxl/macro_f1/n"].tolist() == [1] * 8
    transfer = pd.read_csv(tables / "transfer.csv")
    assert set(zip(transfer.generator, transfer.fraction)) == {("diffwave", 0.0), ("diffwave", 1.0), ("scratch", 1.0),
                                                               ("real only", 1.0)}
    comparisons = pd.read_csv(tables / "comparisons.csv")
    assert {"real only vs shuffled labels", "augment vs classical", "finetune vs scratch"} <= set(comparisons.comparison)
    assert set(comparisons.verdict) == {"n < 2: no test"}  # one seed: nothing is claimed
    merged = pd.read_csv(tables / "merged_vs_single.csv")  # the merged model beside each dataset's own
    assert {("ptbxl", "real only"), ("ptbxl", "diffwave r2"), ("ptbxl", "diffwave f1.0")} <= set(zip(merged.dataset,
                                                                                                    merged.arm))
    assert set(merged.verdict) == {"n < 2: no test"} and "left out" not in (tables / "merged_vs_single.md").read_text()
    fidelity = pd.read_csv(tables / "fidelity.csv")  # one row per dataset, generator and measure
    assert list(dict.fromkeys(zip(fidelity.dataset, fidelity.generator))) == [(d, "diffwave") for d in
                                                                            ("ptbxl", "chapman", "merged")]
    assert (tables / "fidelity.md").read_text().startswith("| dataset | generator | measure | better | value |")
    plots = sorted(str(p.relative_to(tmp_path / "results/plots")) for p in (tmp_path / "results/plots").rglob("*.png"))
    assert plots == sorted(["transfer.png", "augmentation_gain.png", "fidelity_heatmap.png", "generator_loss.png",
                            "heart_rate.png",
                            *(f"confusion/{d}.png" for d in ("ptbxl", "chapman", "merged")),
                            *(f"samples/{d}/diffwave.png" for d in ("ptbxl", "chapman")),
                            *(f"embedding/{d}/diffwave.png" for d in ("ptbxl", "chapman", "merged"))])
    run_snakemake(tmp_path, "--report", "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "Transfer learning curves" in html and "augmentation_gain.png" in html
    assert planned_jobs(tmp_path) == {}  # nothing is stale
    configure(tmp_path, mirror, classifier={**CLASSIFIER, "max_epochs": 3})
    assert planned_jobs(tmp_path) == {**cells([0], [0.5, 2], [0, 1.0]), "classifiers": 1}
    configure(tmp_path, mirror, experiments={**EXPERIMENTS, "seeds": [0, 1]})
    assert planned_jobs(tmp_path) == {**cells([1], [0.5, 2], [0, 1.0]), "classifiers": 1}
    configure(tmp_path, mirror, experiments={**EXPERIMENTS, "augment_ratios": [0.5, 2, 1]})
    assert planned_jobs(tmp_path) == {"classifier_augment": 3, "classifier_classical": 3, "classifiers": 1}
    configure(tmp_path, mirror, experiments={**EXPERIMENTS, "classical_augmentation": {"jitter_std": 0.05}})
    assert planned_jobs(tmp_path) == {"classifier_classical": 6, "classifiers": 1}
    configure(tmp_path, mirror, experiments={**EXPERIMENTS, "balance_target": 100})
    assert planned_jobs(tmp_path) == {"classifier_balance": 3, "classifiers": 1}
    configure(tmp_path, mirror, experiments={**EXPERIMENTS, "arms": ["real", "synthetic", "finetune"]})
    assert planned_jobs(tmp_path) == {}  # fewer arms: nothing to run, nothing lost


def test_curated_sets_add_their_arms_and_one_curated_sampling_job_per_generator_and_source(mirror, tmp_path):
    """experiments.curated: every synthetic arm runs a second time on '{generator}-curated' (one
    sample_curated job per source and replicate; the merged set takes both sources' curated sets),
    and the uncurated jobs and controls stay as they are."""
    configure(tmp_path, mirror)
    plain = planned_jobs(tmp_path)
    configure(tmp_path, mirror, experiments={**EXPERIMENTS, "curated": True})
    curated = planned_jobs(tmp_path)
    doubled = cells([0], [0.5, 2], [0, 1.0], generators=2)
    for rule in ("classifier_augment", "classifier_balance", "classifier_synthetic", "classifier_finetune"):
        assert curated[rule] == doubled[rule] == 2 * plain[rule], rule
    for rule in ("classifier_real", "classifier_shuffled", "classifier_classical", "classifier_scratch",
                 "sample_synthetic", "train_generator"):
        assert curated[rule] == plain[rule], rule
    assert curated["sample_curated"] == 2 and "sample_curated" not in plain  # ptbxl and chapman, replicate 0


def test_a_curated_set_with_no_fitting_record_leaves_null_runs_and_the_tables_are_made(mirror, tmp_path):
    """Toy generators make no record that beats like its class: every curated set is empty. Its
    synthetic-only and fine-tuning runs are written with null scores and the reason, the augment runs
    train on the real records alone, and the tables still get made, naming the shortfalls."""
    configure(tmp_path, mirror, datasets=["ptbxl"], experiments={**EXPERIMENTS, "curated": True,
                                                                  "augment_ratios": [0.5], "finetune_fractions": [1.0]},
              sampling={"per_class": 4, "ratio_to_real": 2.0, "batch_size": 4, "seed": 0, "curate_max_draws": 1})
    run_snakemake(tmp_path, "tables")
    results = tmp_path / "results"
    curation = json.loads((results / "synthetic/ptbxl/diffwave-curated/rep0.json").read_text())["per_class"]
    assert all(entry["kept"] == 0 and entry["drawn"] >= 1 for entry in curation.values() if entry["wanted"])
    synthetic = json.loads((results / "classifier/ptbxl/synthetic/diffwave-curated/all/seed0/metrics.json").read_text())
    finetune = json.loads((results / "classifier/ptbxl/finetune/diffwave-curated/f1.0/seed0/metrics.json").read_text())
    assert synthetic["macro_f1"] is None and "holds no records" in synthetic["not_trained"]
    assert finetune["macro_f1"] is None and "was not trained" in finetune["not_trained"]
    comparisons = (results / "tables/comparisons.md").read_text()
    assert "curated vs uncurated" in comparisons and "ptbxl/augment/diffwave-curated/r0.5/seed0:" in comparisons
    assert "ptbxl/finetune/diffwave-curated/f1.0/seed0: not trained, no record fitted" in comparisons
