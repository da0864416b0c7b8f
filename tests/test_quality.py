"""The per-class generator-quality report on real mirror records: its null, and the bad cases it must flag."""

import numpy as np
import pytest

from synthecg.data.store import STANDARD_LEADS, DatasetWriter, RunningStats
from synthecg.errors import PipelineError
from synthecg.evaluation.fidelity import read_synthetic_rhythms, synthetic_rhythms
from synthecg.evaluation.quality import generator_quality, nearest_correlation, real_reference
from synthecg.evaluation.rhythm import analyse_records

CLASSES = ["SR", "SB", "AFIB", "GSVT"]


@pytest.fixture(scope="module")
def halves(real_ptbxl_records):
    """Two disjoint halves of the real records (alternate records per class): 'synthetic' and held-out."""
    x, names = real_ptbxl_records
    y = np.array([CLASSES.index(name) for name in names])
    first = np.zeros(len(y), bool)
    for c in range(len(CLASSES)):
        first[np.flatnonzero(y == c)[::2]] = True
    return (x[first], y[first]), (x[~first], y[~first])


def quality(synthetic, heldout, train=(None, None)):
    reference = real_reference(*heldout, 100, STANDARD_LEADS, *train)
    return generator_quality(*synthetic, reference, CLASSES, 100, STANDARD_LEADS)


def test_real_records_as_the_generator_pass_every_class(halves):
    report = quality(*halves)
    for name in CLASSES:  # each share within three standard errors of the other half's
        synthetic, real = report["per_class"][name]["synthetic"], report["per_class"][name]["real"]
        for share in ("detectable", "fits_class"):
            p = (synthetic[share] + real[share]) / 2
            standard_error = np.sqrt(max(p * (1 - p), 0.05) * (1 / synthetic["n"] + 1 / real["n"]))
            assert abs(synthetic[share] - real[share]) <= 3 * standard_error, (name, share)
        assert report["per_class"][name]["amplitude_ratio_median"] == pytest.approx(1, abs=0.25), name
    assert report["limb_lead_residual_median"]["synthetic"] < 0.02
    assert all(0.75 < ratio < 1.25 for ratio in report["band_power_ratio"].values())


def test_shuffled_labels_fail_the_classes_a_rhythm_defines(halves):
    (x, y), heldout = halves
    shuffled = np.random.default_rng(0).permutation(y)
    report = quality((x, shuffled), heldout)
    for name in ("SB", "AFIB", "GSVT"):
        entry = report["per_class"][name]
        assert not entry["passes"], name
        assert entry["synthetic"]["fits_class"] < entry["real"]["fits_class"] - 0.3, name
        assert entry["shuffled_label_floor"] < 0.35, name


def test_noise_scaled_and_inconsistent_records_fail(halves):
    (x, y), heldout = halves
    x, y = x[::3], y[::3]  # enough records per class to fail, in a third of the time
    noise = np.random.default_rng(0).normal(0, x.std(), x.shape)
    report = quality((noise, y), heldout)
    assert not any(entry["passes"] for entry in report["per_class"].values())
    assert all(entry["synthetic"]["detectable"] < 0.1 for entry in report["per_class"].values())
    loud = quality((3 * x, y), heldout)
    assert not loud["passes_all_classes"] and loud["amplitude_ratio"]["II"] == pytest.approx(3, rel=0.2)
    swapped = x.copy()
    swapped[:, 2:6] = swapped[::-1, 2:6]  # limb leads of other records
    assert quality((swapped, y), heldout)["limb_lead_residual_median"]["synthetic"] > 0.5


def test_copies_of_training_records_have_a_nearest_correlation_of_one(halves):
    (x, _), (train, _) = halves
    copies = train[:20] * 1.1 + 0.05  # rescaled and offset copies are still copies
    assert nearest_correlation(copies, train) == pytest.approx(np.ones(20))
    assert np.median(nearest_correlation(x, train)) < 0.9  # real records of other people


def test_the_report_shows_how_near_synthetic_and_held_out_records_are_to_training_records(halves):
    (x, y), (train, train_y) = halves
    x, y, train, train_y = x[::4], y[::4], train[::4], train_y[::4]
    copied = quality((train[:len(x)] * 1.0, train_y[:len(x)]), (x, y), (train, train_y))
    assert copied["nearest_train_correlation_median"]["synthetic"] == pytest.approx(1.0)
    assert copied["nearest_train_correlation_median"]["real_heldout"] < 0.9
    assert copied["n_real"] == {"heldout": len(x), "train": len(train)}


def write_records(path, splits):
    stats = RunningStats()
    with DatasetWriter(path, 1000, tuple(splits)) as writer:
        for split, (x, y) in splits.items():
            for i, (record, label) in enumerate(zip(x, y)):
                writer.append(split, record, int(label), f"{split}{i}", f"p{i}", "ptbxl")
                stats = stats.merge(RunningStats.of(record))
        writer.finish({"classes": CLASSES, "leads": list(STANDARD_LEADS), "fs": 100, "seconds": 10, "units": "mV",
                       "dataset": "ptbxl", "norm_mean": stats.mean, "norm_std": stats.std, "norm_count": stats.count})


def test_the_synthetic_rhythm_table_reads_the_records_it_names_and_refuses_another_set(halves, tmp_path):
    """The one rhythm reading the quality and closeness reports share: a per-class draw from the
    synthetic files concatenated in order, each row the rhythm of the record its index names."""
    (x, y), (real_x, real_y) = halves
    write_records(tmp_path / "real.h5", {"train": (real_x, real_y)})
    middle = len(y) // 2
    write_records(tmp_path / "rep_a.h5", {"synthetic": (x[:middle], y[:middle])})
    write_records(tmp_path / "rep_b.h5", {"synthetic": (x[middle:], y[middle:])})
    table = synthetic_rhythms(tmp_path / "real.h5", [tmp_path / "rep_a.h5", tmp_path / "rep_b.h5"], max_per_class=3)
    assert table.groupby("label").size().max() <= 3 and set(table["label"]) == set(y)
    assert (table["record"] >= middle).any()  # the draw reaches the second file
    table.to_csv(tmp_path / "rhythm.csv", index=False)
    keep, rhythm = read_synthetic_rhythms(tmp_path / "rhythm.csv", y)
    expected = analyse_records(x[keep], 100, STANDARD_LEADS)
    np.testing.assert_allclose(rhythm["heart_rate_bpm"], expected["heart_rate_bpm"], rtol=1e-4)
    assert rhythm["detected"].dtype == bool and list(rhythm["detected"]) == list(expected["detected"])
    with pytest.raises(PipelineError, match="rhythm.csv: its records are not those of the synthetic set"):
        read_synthetic_rhythms(tmp_path / "rhythm.csv", (y + 1) % len(CLASSES))  # another set's labels


def test_the_generators_label_floor_shows_whether_the_class_label_carries_the_rhythm(halves):
    """Real records as the generator: each rhythm class's records fit it far more often than they
    would with the other classes' beats. With their labels shuffled, they fit it about as often as
    that floor: a generator whose label carries no rhythm (an undertrained one beating slowly and
    irregularly in every class 'fits' SB and AFIB) is seen as such. The floor is taken among
    detectable records, so a class the detectors read less often is not mistaken for one without
    rhythm: hiding half of SB's beats (flat records) scales the floor with the detectable share,
    and the fitting share stays well above it."""
    (x, y), heldout = halves
    report = quality((x, y), heldout)
    shuffled = quality((x, np.random.default_rng(1).permutation(y)), heldout)
    for name in ("SB", "AFIB", "GSVT"):
        entry = report["per_class"][name]
        assert entry["synthetic"]["fits_class"] > entry["generator_label_floor"] + 0.5, name
        entry = shuffled["per_class"][name]
        n, p = entry["synthetic"]["n"], entry["generator_label_floor"]
        assert abs(entry["synthetic"]["fits_class"] - p) <= 3 * np.sqrt(max(p * (1 - p), 0.01) / n) + 0.02, name
    sb = np.flatnonzero(y == CLASSES.index("SB"))
    flattened = x.copy()
    flattened[sb[::2]] = 0.0  # no rhythm to detect in half of SB's records
    entry = quality((flattened, y), heldout)["per_class"]["SB"]
    full = report["per_class"]["SB"]
    assert entry["synthetic"]["detectable"] < 0.6 * full["synthetic"]["detectable"]
    ratio = entry["generator_label_floor"] / full["generator_label_floor"]
    assert ratio == pytest.approx(entry["synthetic"]["detectable"] / full["synthetic"]["detectable"], rel=1e-9)
    assert entry["synthetic"]["fits_class"] > entry["generator_label_floor"] + 0.3
