"""Table arithmetic on hand-made runs: grouping, mean ± std over seeds, missing values, layout."""

import json
import math
import zlib

import numpy as np
import pandas as pd
import pytest

from synthecg.data.store import records_digest
from synthecg.errors import PipelineError
from synthecg.evaluation import plots
from synthecg.evaluation.metrics import classification_metrics
from synthecg.evaluation.tables import (
    CLASSICAL,
    REAL_ONLY,
    SCRATCH,
    augmentation_summary,
    collect_fidelity,
    collect_runs,
    comparisons,
    comparisons_markdown,
    curation_shortfalls,
    merged_markdown,
    merged_summary,
    fidelity_markdown,
    fidelity_summary,
    format_mean_std,
    per_class_markdown,
    per_class_summary,
    read_runs,
    to_markdown,
    transfer_summary,
    quality_table,
    widen,
    write_tables,
)


def run(root, dataset, experiment, generator, setting, seed, macro_f1, macro_auroc=0.9):
    path = root / "classifier" / dataset / experiment / generator / setting / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"macro_f1": macro_f1, "macro_auroc": macro_auroc, "accuracy": 0.5,
                                "balanced_accuracy": 0.5}))
    return path


@pytest.fixture
def runs(tmp_path):
    paths = [
        run(tmp_path, "ptbxl", "real", "none", "all", 0, 0.6),
        run(tmp_path, "ptbxl", "real", "none", "all", 1, 0.8),
        run(tmp_path, "ptbxl", "augment", "diffwave", "r0.5", 0, 0.7),
        run(tmp_path, "ptbxl", "augment", "diffwave", "r0.5", 1, 0.9, macro_auroc=None),
        run(tmp_path, "ptbxl", "augment", "diffwave", "r1", 0, 0.5),
        run(tmp_path, "chapman", "real", "none", "all", 0, 0.4),
        run(tmp_path, "ptbxl", "finetune", "diffwave", "f0.1", 0, 0.3),
        run(tmp_path, "ptbxl", "finetune", "diffwave", "f0.1", 1, 0.5),
        run(tmp_path, "ptbxl", "finetune", "timevqvae", "f0.1", 0, 0.2),
    ]
    return paths


def cell(summary, **keys):
    selected = summary
    for key, value in keys.items():
        selected = selected[selected[key] == value]
    assert len(selected) == 1, keys
    return selected.iloc[0]


def test_augmentation_rows_are_real_only_then_each_generator_and_ratio_with_mean_and_sample_std(runs):
    summary = augmentation_summary(collect_runs(runs))
    real = cell(summary, generator=REAL_ONLY, dataset="ptbxl", metric="macro_f1")
    assert real["mean"] == pytest.approx(0.7) and real["std"] == pytest.approx(math.sqrt(0.02)) and real["n"] == 2
    half = cell(summary, generator="diffwave", ratio=0.5, dataset="ptbxl", metric="macro_f1")
    assert half["mean"] == pytest.approx(0.8) and half["n"] == 2
    # A missing AUROC is skipped, not counted as 0: one seed left, so no std.
    auroc = cell(summary, generator="diffwave", ratio=0.5, dataset="ptbxl", metric="macro_auroc")
    assert auroc["mean"] == pytest.approx(0.9) and auroc["n"] == 1 and pd.isna(auroc["std"])
    assert cell(summary, generator="diffwave", ratio=1.0, dataset="ptbxl", metric="macro_f1")["n"] == 1
    assert cell(summary, generator=REAL_ONLY, dataset="chapman", metric="macro_f1")["mean"] == pytest.approx(0.4)
    assert not (summary.generator == "timevqvae").any()  # fine-tuning runs belong to the transfer table


def test_transfer_rows_are_generator_by_fraction_with_the_real_only_reference(runs):
    summary = transfer_summary(collect_runs(runs))
    assert cell(summary, generator="diffwave", fraction=0.1, dataset="ptbxl", metric="macro_f1")["mean"] == pytest.approx(0.4)
    assert cell(summary, generator="timevqvae", fraction=0.1, dataset="ptbxl", metric="macro_f1")["n"] == 1
    assert cell(summary, generator=REAL_ONLY, fraction=1.0, dataset="ptbxl", metric="macro_f1")["mean"] == pytest.approx(0.7)


def test_wide_csv_and_markdown_put_datasets_and_metrics_in_columns(runs):
    summary = augmentation_summary(collect_runs(runs))
    wide = widen(summary, ["generator", "ratio"], ["dataset", "metric"])
    assert list(wide.columns[:5]) == ["generator", "ratio", "ptbxl/macro_f1/mean", "ptbxl/macro_f1/std", "ptbxl/macro_f1/n"]
    assert list(wide.generator) == [REAL_ONLY, "diffwave", "diffwave"]
    assert wide.loc[0, "ptbxl/macro_f1/mean"] == pytest.approx(0.7)
    assert pd.isna(wide.loc[2, "chapman/macro_f1/mean"])  # no chapman augmentation run
    markdown = to_markdown(summary, ["generator", "ratio"], ["dataset", "metric"]).splitlines()
    assert markdown[0].startswith("| generator | ratio | ptbxl macro_f1 | ptbxl macro_auroc |")
    assert markdown[2].startswith(f"| {REAL_ONLY} | 0 | 0.700 ± 0.141 |")
    assert "| diffwave | 1 | 0.500 |" in markdown[4] and markdown[4].rstrip().endswith("– |")


def test_mean_std_formatting():
    assert format_mean_std(0.81234, 0.01321) == "0.812 ± 0.013"
    assert format_mean_std(0.8, float("nan")) == "0.800"
    assert format_mean_std(float("nan"), float("nan")) == "–"
    assert format_mean_std(12345.6, 10.0) == "1.23e+04 ± 10.000"


def floored(value, floor, low, high, n=40, **extra):
    return {"value": value, "floor": floor, "floor_interval": [low, high], "n": n, **extra}


def fidelity_report(tmp_path, generator, fids):
    """A closeness report as synthecg.evaluation.fidelity writes it: FID per seed (floor 5 [3, 8])."""
    report = {
        "dataset": "ptbxl", "generator": generator,
        "by_seed": {str(s): {"fid": floored(f, 5.0, 3.0, 8.0), "mmd2": floored(0.01, 0.0, -0.01, 0.02, p=0.4),
                             "linear_probe_score": None,  # too few records
                             "tstr_macro_f1": {"value": 0.4, "floor": 0.7, "floor_interval": [0.6, 0.8], "n": 30},
                             "trts_macro_f1": {"value": 0.65, "floor": 0.7, "floor_interval": [0.6, 0.8], "n": 30}}
                    for s, f in enumerate(fids)},
        "signals": {"cnn_score": floored(0.45, 0.03, 0.0, 0.1), "amplitude_difference": floored(0.05, 0.06, 0.04, 0.09),
                    "log_spectrum_difference": floored(0.2, 0.1, 0.08, 0.13)},
        "privacy": {"representation": "median beats", "exact_copies": {"value": 3, "floor": 0, "n": 600},
                    "dcr_share": floored(0.56, 0.5, 0.45, 0.55, p=0.01), "dcr_tail_share": floored(0.06, 0.05, 0.0, 0.1, p=0.3)},
        "heart_rate_bpm": {
            "SB": {"real": {}, "synthetic": {}, "wasserstein_bpm": 4.0,
                   "against_floor": {"wasserstein_bpm": floored(4.0, 3.0, 1.0, 6.0, n=12),
                                     "detectable_gap": floored(-0.4, 0.0, -0.1, 0.1, n=12)}},
            "AFIB": {"real": {}, "synthetic": {}, "wasserstein_bpm": 9.0,  # too few records to judge by
                     "against_floor": {"wasserstein_bpm": floored(30.0, 3.0, 1.0, 6.0, n=5), "detectable_gap": None}},
            "GSVT": {"real": {}, "synthetic": {}, "wasserstein_bpm": None,
                     "against_floor": {"wasserstein_bpm": None, "detectable_gap": None}},
        },
    }
    path = tmp_path / f"{generator}.json"
    path.write_text(json.dumps(report))
    return path


def test_fidelity_table_has_one_row_per_value_its_floor_and_a_verdict(tmp_path):
    long = collect_fidelity([fidelity_report(tmp_path, "diffwave", [10.0, 20.0, 30.0])])
    assert (long.metric == "fid").sum() == 3 and (long.metric == "cnn_score").sum() == 1  # signals: once, not per seed
    summary = fidelity_summary(long)
    fid = cell(summary, metric="fid")
    assert fid["mean"] == pytest.approx(20.0) and fid["std"] == pytest.approx(10.0) and fid["n"] == 3
    assert fid["floor"] == 5.0 and fid["better"] == "lower" and fid["verdict"] == "beyond floor"
    assert fid["excess"] == pytest.approx((20 - 5) / (8 - 5))  # in floor-interval widths on the worse side
    cnn = cell(summary, metric="cnn_score")
    assert cnn["n"] == 0 and pd.isna(cnn["std"]) and cnn["records"] == 40 and cnn["verdict"] == "beyond floor"
    assert cell(summary, metric="amplitude_difference")["verdict"] == "within floor"
    assert cell(summary, metric="amplitude_difference")["excess"] < 0  # better than the floor's centre
    # Higher is better: TSTR under TRTR's interval is beyond the floor, TRTS inside it is not.
    assert cell(summary, metric="tstr_macro_f1")["verdict"] == "beyond floor"
    assert cell(summary, metric="trts_macro_f1")["verdict"] == "within floor"
    # A permutation test decides where there is one.
    assert cell(summary, metric="dcr_share")["verdict"] == "beyond floor"
    assert cell(summary, metric="dcr_tail_share")["verdict"] == "within floor"
    assert cell(summary, metric="mmd2")["p"] == 0.4 and cell(summary, metric="mmd2")["verdict"] == "within floor"
    copies = cell(summary, metric="exact_copies")
    assert copies["mean"] == 3 and copies["verdict"] == "beyond floor" and np.isinf(copies["excess"])
    assert cell(summary, metric="heart_rate_wasserstein_bpm/SB")["verdict"] == "within floor"
    assert cell(summary, metric="detectable_rhythm_gap/SB")["verdict"] == "beyond floor"
    assert cell(summary, metric="heart_rate_wasserstein_bpm/AFIB")["verdict"] == "N < 10"
    missing = cell(summary, metric="heart_rate_wasserstein_bpm/GSVT")
    assert pd.isna(missing["mean"]) and missing["verdict"] == "–"
    assert cell(summary, metric="linear_probe_score")["verdict"] == "–"

    markdown = fidelity_markdown(summary).splitlines()
    assert markdown[0] == "| dataset | generator | measure | better | value | floor [95 % range] | p | N | seeds | verdict |"
    assert "| ptbxl | diffwave | fid | lower | 20.000 ± 10.000 | 5.000 [3.000, 8.000] | – | 40 | 3 | beyond floor |" in markdown
    assert "| ptbxl | diffwave | exact_copies | lower | 3 | 0.000 | – | 600 | – | beyond floor |" in markdown
    plots.fidelity_heatmap(summary, tmp_path / "heatmap.png")
    assert (tmp_path / "heatmap.png").stat().st_size > 0


def test_write_tables_writes_every_file_and_rejects_a_stray_path(runs, tmp_path):
    out = {"runs": tmp_path / "t/runs.csv", "cells": tmp_path / "t/cells.csv"} | {
        f"{n}_{kind}": tmp_path / f"t/{n}.{kind}"
        for n in ("quality", "augmentation", "transfer", "fidelity", "per_class", "comparisons", "merged_vs_single")
        for kind in ("csv", "md")
    }
    write_tables(runs, [fidelity_report(tmp_path, "diffwave", [1.0])], out, [quality_report(tmp_path, "diffwave")])
    assert all(path.exists() for path in out.values())
    assert len(pd.read_csv(out["runs"])) == len(runs) * 4
    fidelity = pd.read_csv(out["fidelity_csv"])  # one row per measure (two per class for heart rate)
    assert len(fidelity) == len(set(fidelity.metric)) == 17 and {"floor", "better", "verdict"} <= set(fidelity.columns)
    stray = tmp_path / "elsewhere.json"
    stray.write_text("{}")
    with pytest.raises(PipelineError, match="elsewhere.json: not a classifier run"):
        collect_runs([stray])
    broken = runs[0]
    broken.write_text("{not json")
    with pytest.raises(PipelineError, match="metrics.json: cannot read"):
        collect_runs([broken])


def quality_report(root, generator, sb_passes=False):
    path = root / "quality" / "ptbxl" / f"{generator}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"synthetic": {"n": 100, "detectable": 0.95, "fits_class": 0.9}, "real": {"fits_class": 0.85},
             "shuffled_label_floor": 0.1, "amplitude_ratio_median": 1.1}
    path.write_text(json.dumps({
        "dataset": "ptbxl", "generator": generator, "limb_lead_residual_median": {"synthetic": 0.0},
        "per_class": {"GSVT": {**entry, "passes": True},
                      "SB": {**entry, "real": None, "shuffled_label_floor": None, "passes": sb_passes}},
    }))
    return path


def test_the_quality_table_has_a_row_per_class_and_says_which_fail(tmp_path):
    table = quality_table([quality_report(tmp_path, "diffwave")])
    assert table[["generator", "class", "passes"]].values.tolist() == [["diffwave", "GSVT", True], ["diffwave", "SB", False]]
    assert table.loc[1, "real_fits_class"] is None or pd.isna(table.loc[1, "real_fits_class"])


def predicted_run(root, dataset, experiment, generator, setting, seed, skill, y, records=None):
    """A run scored by classification_metrics on planted predictions: intervals and predictions stored
    (and the digest of its test records, given their ids)."""
    rng = np.random.default_rng(zlib.crc32(f"{experiment}/{generator}/{setting}/{seed}".encode()))
    logits = rng.normal(size=(len(y), 3))
    logits[np.arange(len(y)), y] += skill
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    metrics = classification_metrics(y, probabilities, ["SR", "AFIB", "SB"])
    if records is not None:
        metrics["test_records_sha256"] = records_digest(records)
    path = root / "classifier" / dataset / experiment / generator / setting / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(metrics))
    return path


@pytest.fixture
def controls(tmp_path):
    """Three seeds of every experiment and control, scored on one test split of 3 classes."""
    y = np.repeat([0, 1, 2], [120, 40, 40])
    cells = [("real", "none", "all", 2.0), ("augment", "diffwave", "r1", 2.5), ("augment", "classical", "r1", 2.2),
             ("balance", "diffwave", "all", 2.1), ("synthetic", "diffwave", "all", 1.0),
             ("synthetic", "timevqvae", "all", 0.8), ("finetune", "diffwave", "f0.1", 1.8),
             ("scratch", "none", "f0.1", 1.2)]
    return [predicted_run(tmp_path / "controls", "ptbxl", *cell[:3], seed, cell[3], y) for cell in cells
            for seed in range(3)]


def test_one_seed_cells_show_the_runs_own_interval_and_several_seeds_that_of_their_mean(controls):
    classifier = read_runs(controls)
    summary = augmentation_summary(classifier.runs, classifier.resamples)
    stored = json.loads(controls[0].read_text())["intervals"]["macro_f1"]  # real, seed 0
    one_seed = augmentation_summary(classifier.runs[classifier.runs.seed == 0], classifier.resamples)
    real = cell(one_seed, generator=REAL_ONLY, metric="macro_f1")
    assert real["n"] == 1 and [real["low"], real["high"]] == pytest.approx(stored, abs=1e-3)
    for metric in ("macro_f1", "macro_auroc"):
        three = cell(summary, generator=REAL_ONLY, metric=metric)
        assert three["n"] == 3 and three["low"] < three["mean"] < three["high"]
    assert summary[summary.metric == "accuracy"][["low", "high"]].isna().all().all()  # no interval computed
    wide = widen(summary, ["generator", "ratio"], ["dataset", "metric"])
    assert {"ptbxl/macro_f1/low", "ptbxl/macro_auroc/high"} <= set(wide.columns)
    assert "ptbxl/accuracy/low" not in wide.columns


def test_control_rows_appear_when_their_runs_exist(controls, runs):
    classifier = read_runs(controls)
    augmentation = augmentation_summary(classifier.runs, classifier.resamples)
    assert list(dict.fromkeys(augmentation.generator)) == [REAL_ONLY, "diffwave", CLASSICAL, "diffwave (balance)"]
    assert pd.isna(cell(augmentation, generator="diffwave (balance)", metric="macro_f1")["ratio"])
    transfer = transfer_summary(classifier.runs, classifier.resamples)
    assert list(dict.fromkeys(transfer.generator)) == ["diffwave", SCRATCH, REAL_ONLY]
    assert cell(transfer, generator=SCRATCH, metric="macro_f1")["fraction"] == pytest.approx(0.1)
    f1 = augmentation[augmentation.metric == "macro_f1"]
    markdown = to_markdown(f1, ["generator", "ratio"], ["dataset", "metric"], detail=True, note="note")
    assert "| diffwave (balance) | – |" in markdown and " n=3 |" in markdown and markdown.endswith("\nnote\n")
    # Without controls (the fixture of hand-made runs): no control rows and no comparison against one.
    plain = collect_runs(runs)
    shown = set(transfer_summary(plain).generator) | set(augmentation_summary(plain).generator)
    assert not {SCRATCH, CLASSICAL, "diffwave (balance)"} & shown
    assert set(comparisons(plain).comparison) == {"augment vs real only"}


def test_comparisons_pair_each_arm_with_its_baseline(controls):
    classifier = read_runs(controls)
    pairs = [("augment vs real only", "diffwave r1", REAL_ONLY),
             ("augment vs real only", "classical r1", REAL_ONLY),
             ("augment vs classical", "diffwave r1", "classical r1"),
             ("balance vs real only", "diffwave balance", REAL_ONLY),
             ("finetune vs scratch", "diffwave f0.1", "scratch f0.1"),
             ("generator vs generator (TSTR)", "diffwave synthetic only", "timevqvae synthetic only")]
    every = [f"{arm} vs {baseline}" for _, arm, baseline in pairs]
    table = comparisons(classifier.runs, classifier.resamples, primary=every)
    f1 = table[table.metric == "macro_f1"]
    assert list(f1[["comparison", "arm", "baseline"]].itertuples(index=False, name=None)) == pairs
    assert (table.n == 3).all() and (table.p_holm >= table.p).all() and (table.family == "primary").all()
    assert (table.test == "seeds and test records").all()
    assert (table.low <= table.mean_difference).all() and (table.mean_difference <= table.high).all()
    # Holm runs within a metric: its family has 6 members here.
    assert table.loc[table.p.idxmin(), "p_holm"] == pytest.approx(min(1, 6 * table.p.min()))


def test_only_the_primary_family_is_holm_corrected_the_rest_is_exploratory(controls):
    classifier = read_runs(controls)
    primary = ["diffwave r1 vs real only", "diffwave f0.1 vs scratch f0.1", "diffwave r2 vs real only"]
    table = comparisons(classifier.runs, classifier.resamples, primary=primary)
    chosen = table[table.family == "primary"]
    assert set(chosen.arm + " vs " + chosen.baseline) == set(primary[:2])  # r2 was never run
    for _, family in chosen.groupby("metric"):  # Holm over the two primary comparisons of each metric
        assert family.p_holm.max() == pytest.approx(min(1, max(2 * family.p.min(), family.p.max())))
    rest = table[table.family == "exploratory"]
    assert len(rest) == len(table) - 4 and rest.p_holm.isna().all()
    assert all(v.endswith("(exploratory)") for v in rest.verdict) and not chosen.verdict.str.contains("explor").any()
    # An exploratory verdict reads the unadjusted p; the same comparison in a family reads Holm's.
    for verdict, p in zip(rest.verdict, rest.p):
        assert verdict.startswith("no supported") == (p >= 0.05)
    markdown = comparisons_markdown(table, primary=primary)
    rows = [line for line in markdown.splitlines() if line.startswith("| ptbxl")]
    assert all("| primary |" in row for row in rows[:4]) and "| exploratory |" in rows[4]  # primary first
    assert "Primary comparisons without runs (check the spelling against arm and baseline): diffwave r2 vs real only." in markdown
    assert "without runs" not in comparisons_markdown(table, primary=primary[:2])


def test_a_planted_gain_is_better_a_null_one_is_not_and_one_seed_is_not_tested(tmp_path):
    noise = [0.004, -0.003, 0.001]
    paths = [run(tmp_path, "ptbxl", "real", "none", "all", s, 0.70 + 0.03 * s) for s in range(3)]
    paths += [run(tmp_path, "ptbxl", "augment", "diffwave", "r1", s, 0.75 + 0.03 * s + noise[s]) for s in range(3)]
    paths += [run(tmp_path, "ptbxl", "augment", "timevqvae", "r1", s, 0.70 + 0.03 * s + noise[s]) for s in range(3)]
    paths += [run(tmp_path, "chapman", "real", "none", "all", 0, 0.6),
              run(tmp_path, "chapman", "augment", "diffwave", "r1", 0, 0.9)]
    primary = ["diffwave r1 vs real only", "timevqvae r1 vs real only"]
    table = comparisons(collect_runs(paths), primary=primary).set_index(["dataset", "metric", "arm"])
    # No stored predictions: the test is the t-test over seeds, and says so.
    assert (table.test == "seeds only").all() and table.p.equals(table.p_seeds)
    assert table.loc[("ptbxl", "macro_f1", "diffwave r1"), "verdict"] == "better"
    assert table.loc[("ptbxl", "macro_f1", "timevqvae r1"), "verdict"] == "no supported difference"
    one_seed = table.loc[("chapman", "macro_f1", "diffwave r1")]
    assert one_seed["verdict"] == "n < 2: no test" and one_seed["n"] == 1 and pd.isna(one_seed["p_holm"])
    assert "n < 2: no test" in comparisons_markdown(table.reset_index())


def split_of(source, y):
    """Labels and record ids of a source's test split."""
    return {"y": y, "records": [f"{source}-{i}" for i in range(len(y))]}


def merged_run(root, seed, skills, parts, experiment="real", generator="none", setting="all"):
    """A merged-set run scored on the concatenated test parts, with each source's own scores."""
    probabilities, labels, sources = [], [], []
    for source, split in parts.items():
        path = predicted_run(root / "scratchpad" / source, "x", experiment, generator, setting, seed, skills[source],
                             split["y"])
        probabilities += json.loads(path.read_text())["test_probabilities"]
        labels += list(split["y"])
        sources += [source] * len(split["y"])
    metrics = classification_metrics(np.array(labels), np.array(probabilities), ["SR", "AFIB", "SB"])
    metrics["test_sources"] = sources
    metrics["by_source"] = {}
    for source, split in parts.items():
        mask = np.array(sources) == source
        metrics["by_source"][source] = classification_metrics(np.array(labels)[mask], np.array(probabilities)[mask],
                                                              ["SR", "AFIB", "SB"])
        metrics["by_source"][source]["test_records_sha256"] = records_digest(split["records"])
    path = root / "classifier" / "merged" / experiment / generator / setting / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(metrics))
    return path


def test_merged_runs_are_compared_with_single_runs_on_the_same_test_records(tmp_path):
    parts = {"ptbxl": split_of("ptbxl", np.repeat([0, 1, 2], [90, 30, 30])),
             "chapman": split_of("chapman", np.repeat([0, 1, 2], [40, 40, 40]))}
    paths = [predicted_run(tmp_path, source, "real", "none", "all", seed, 1.5, split["y"], split["records"])
             for source, split in parts.items() for seed in range(3)]
    # Merging helps on PTB-XL's records (planted: much sharper predictions there), not on Chapman's.
    paths += [merged_run(tmp_path, seed, {"ptbxl": 4.0, "chapman": 1.5}, parts) for seed in range(3)]
    paths += [predicted_run(tmp_path, "ptbxl", "shuffled", "none", "all", 0, 0.0, parts["ptbxl"]["y"],
                            parts["ptbxl"]["records"])]
    classifier = read_runs(paths)
    table = merged_summary(classifier.runs, classifier.merged_parts, classifier.resamples).set_index(["dataset", "metric"])
    assert set(table.index) == {(s, m) for s in parts for m in ("macro_f1", "macro_auroc")}  # shuffled: no arm
    ptbxl = table.loc[("ptbxl", "macro_f1")]
    assert ptbxl["arm"] == REAL_ONLY and ptbxl["n_single"] == ptbxl["n_merged"] == ptbxl["n"] == 3
    assert ptbxl["mean_merged"] - ptbxl["mean_single"] == pytest.approx(ptbxl["mean_difference"])
    assert ptbxl["low_merged"] < ptbxl["mean_merged"] < ptbxl["high_merged"]
    assert ptbxl["low_difference"] > 0 and ptbxl["verdict"] == "better"
    # Chapman's part: the merged model's predictions there are the single model's, seed for seed
    # (a pairing across seeds would leave differences of zero mean but not of zero spread).
    chapman = table.loc[("chapman", "macro_f1")]
    assert chapman["mean_difference"] == pytest.approx(0) and chapman["std_difference"] == pytest.approx(0)
    assert chapman["p"] == 1 and chapman["verdict"] == "no supported difference"
    markdown = merged_markdown(table.reset_index())
    assert markdown.startswith("| test records | metric | cell | single-dataset model | merged model |")
    assert "| ptbxl | macro_f1 | real only |" in markdown and "better" in markdown
    # Holm runs over this table's family only: 2 sources × 1 cell per metric, Chapman's p being 1.
    assert ptbxl["p_holm"] == pytest.approx(min(1, 2 * ptbxl["p"]))
    assert set(comparisons(classifier.runs).comparison) == {"real only vs shuffled labels"}


def test_a_merged_part_that_is_not_the_single_test_split_is_refused(tmp_path):
    ptbxl = split_of("ptbxl", np.repeat([0, 1, 2], [30, 10, 10]))
    parts = {"ptbxl": ptbxl, "chapman": split_of("chapman", np.repeat([0, 1, 2], [10, 10, 10]))}
    single = predicted_run(tmp_path, "ptbxl", "real", "none", "all", 0, 1.5, ptbxl["y"], ptbxl["records"])
    # The same labels in the same order, but two SR records swapped: other records, by digest.
    swapped = {**ptbxl, "records": [ptbxl["records"][1], ptbxl["records"][0], *ptbxl["records"][2:]]}
    other = merged_run(tmp_path / "other", 0, {"ptbxl": 1.5, "chapman": 1.5}, {**parts, "ptbxl": swapped})
    with pytest.raises(PipelineError, match="merged/real/none/all/seed0/metrics.json: its ptbxl test records differ"):
        read_runs([single, other])
    # Scored before the records were recorded: left out, and the Markdown says which and why.
    merged = merged_run(tmp_path, 0, {"ptbxl": 1.5, "chapman": 1.5}, parts)
    assert len(read_runs([single, merged]).merged_parts) == 2 * 4  # two sources, four metrics
    complete = json.loads(merged.read_text())
    for missing, why in (("test_sources", "scored before each test record's source was recorded"),
                         ("test_records_sha256", "its ptbxl part cannot be checked against the ptbxl runs")):
        metrics = json.loads(json.dumps(complete))  # each pass starts from the complete run
        metrics.pop("test_sources") if missing == "test_sources" else metrics["by_source"]["ptbxl"].pop(missing)
        merged.write_text(json.dumps(metrics))
        classifier = read_runs([single, merged])
        table = merged_summary(classifier.runs, classifier.merged_parts, classifier.resamples)
        assert table.empty and list(classifier.unverified_merged) == [str(merged)]
        assert classifier.unverified_merged[str(merged)].startswith(why)
        markdown = merged_markdown(table, unverified=classifier.unverified_merged)
        assert markdown.startswith("no merged-vs-single comparison") and "Merged-set runs left out (1)" in markdown
    empty = read_runs([single])
    assert merged_summary(empty.runs, empty.merged_parts, empty.resamples).empty


def test_per_class_table_has_f1_and_recall_per_class(controls):
    classifier = read_runs(controls)
    table = per_class_summary(classifier.per_class)
    row = table[(table.experiment == "real") & (table["class"] == "AFIB")].iloc[0]
    recalls = [json.loads(p.read_text())["per_class_recall"]["AFIB"] for p in controls[:3]]
    assert row["recall_mean"] == pytest.approx(np.mean(recalls)) and row["recall_n"] == 3
    assert row["f1_std"] == pytest.approx(np.std([json.loads(p.read_text())["per_class_f1"]["AFIB"]
                                                  for p in controls[:3]], ddof=1))
    assert len(table) == 8 * 3  # every cell of the grid, each class
    markdown = per_class_markdown(table)
    assert markdown.startswith("| dataset | experiment | generator | setting | SR f1 | SR recall |")
    assert per_class_markdown(per_class_summary(read_runs([]).per_class)).startswith("no classifier run")


def test_the_plots_draw_the_tables_intervals_with_and_without_controls(controls, runs, tmp_path):
    out = {"runs": tmp_path / "t/runs.csv", "cells": tmp_path / "t/cells.csv"} | {
        f"{n}_{kind}": tmp_path / f"t/{n}.{kind}"
        for n in ("quality", "augmentation", "transfer", "fidelity", "per_class", "comparisons", "merged_vs_single")
        for kind in ("csv", "md")
    }
    for name, paths in (("controls", controls), ("plain", runs)):
        write_tables(paths, [fidelity_report(tmp_path, "diffwave", [1.0])], out)
        cells, compared = pd.read_csv(out["cells"]), pd.read_csv(out["comparisons_csv"])
        plots.transfer_curves(cells, tmp_path / f"{name}_transfer.png")
        plots.augmentation_gains(compared, tmp_path / f"{name}_gain.png")
        assert (tmp_path / f"{name}_transfer.png").stat().st_size > 0 and (tmp_path / f"{name}_gain.png").exists()
    plots.augmentation_gains(compared.iloc[:0], tmp_path / "empty_gain.png")  # no runs: a note, not a crash
    assert (tmp_path / "empty_gain.png").exists()


def test_curated_arms_are_compared_with_their_uncurated_set_and_shortfalls_are_named(tmp_path):
    """A generator's curated set ('diffwave-curated') is paired with the same cell of its uncurated set,
    and a curated run that trained on fewer records of a class (too few fitted) is named under the table."""
    y = np.repeat([0, 1, 2], [120, 40, 40])
    cells = [("real", "none", "all", 2.0), ("augment", "diffwave", "r1", 2.0), ("augment", "diffwave-curated", "r1", 3.0),
             ("synthetic", "diffwave", "all", 1.0), ("synthetic", "diffwave-curated", "all", 1.5),
             ("synthetic", "timevqvae", "all", 0.8)]
    paths = [predicted_run(tmp_path, "ptbxl", *cell[:3], seed, cell[3], y) for cell in cells for seed in range(3)]
    for path in paths:  # what each run trained on: the curated augment arm is 30 SB records short
        metrics = json.loads(path.read_text())
        curated_augment = "augment/diffwave-curated" in path.as_posix()
        metrics["train_records_per_class"] = {"SR": 200, "AFIB": 60, "SB": 30 if curated_augment else 60}
        path.write_text(json.dumps(metrics))
    classifier = read_runs(paths)
    table = comparisons(classifier.runs, classifier.resamples)
    f1 = table[table.metric == "macro_f1"]
    curated = f1[f1.comparison == "curated vs uncurated"]
    assert list(zip(curated.arm, curated.baseline)) == [("diffwave-curated r1", "diffwave r1"),
                                                        ("diffwave-curated synthetic only", "diffwave synthetic only")]
    assert curated.iloc[0]["mean_difference"] > 0  # the planted gain of the curated augment arm
    tstr = f1[f1.comparison == "generator vs generator (TSTR)"]
    assert list(zip(tstr.arm, tstr.baseline)) == [("diffwave synthetic only", "timevqvae synthetic only")]
    shortfalls = curation_shortfalls(classifier.train_counts)
    assert shortfalls == [f"ptbxl/augment/diffwave-curated/r1/seed{s}: SB 30 fewer" for s in range(3)]
    assert "ptbxl/augment/diffwave-curated/r1/seed0: SB 30 fewer" in comparisons_markdown(table, shortfalls=shortfalls)


def test_tables_from_the_runs_stored_resamples_equal_the_tables_computed_from_their_predictions(controls, tmp_path):
    """Each run stores its scores on the shared resamples; the tables take them as they are, and a
    run stored without them (older files) gets the same numbers computed from its predictions."""
    stripped = []
    for path in controls:
        metrics = json.loads(path.read_text())
        assert len(metrics["resampled"]["macro_f1"]) == 2000 and "method" in metrics["resampled"]
        metrics.pop("resampled")
        copy = tmp_path / "stripped" / path.relative_to(tmp_path / "controls")
        copy.parent.mkdir(parents=True)
        copy.write_text(json.dumps(metrics))
        stripped.append(copy)
    stored, computed = read_runs(controls), read_runs(stripped)
    for kind in ("comparisons", "augmentation_summary"):
        a = comparisons(stored.runs, stored.resamples) if kind == "comparisons" else augmentation_summary(stored.runs, stored.resamples)
        b = comparisons(computed.runs, computed.resamples) if kind == "comparisons" else augmentation_summary(computed.runs, computed.resamples)
        pd.testing.assert_frame_equal(a.drop(columns=["run"], errors="ignore"), b.drop(columns=["run"], errors="ignore"))
    # A stored set made another way (other resamples) is not taken: the scores are computed again.
    wrong = json.loads(controls[0].read_text())
    wrong["resampled"]["method"] = "something else"
    wrong["resampled"]["macro_f1"] = [0.0] * 2000
    controls[0].write_text(json.dumps(wrong))
    again = read_runs(controls)
    key = next(k for k in again.resamples._scores if "real/none/all/seed0" in str(k))
    assert again.resamples._scores[key]["macro_f1"].mean() > 0.1
