"""The rhythm reader: beats at known rates, the mirror's real records, and what must read as no rhythm."""

import numpy as np
import pandas as pd
import pytest
from scipy.signal import butter, sosfiltfilt

from synthecg.data.store import STANDARD_LEADS
from synthecg.evaluation.rhythm import analyse_records, fits_class, heart_rate_by_class, rhythm_by_class

LEADS = list(STANDARD_LEADS)


def beats(bpm: float, fs: int = 100, seconds: int = 10, noise: float = 0.02, seed: int = 0, jitter: float = 0.0):
    """12 leads of QRS-like biphasic spikes (1 mV) at a rate, some leads inverted, plus noise.

    `jitter` moves each beat by up to that share of the RR interval (an irregular rhythm)."""
    rng = np.random.default_rng(seed)
    t = np.arange(fs * seconds) / fs
    rr = 60 / bpm
    centres = np.arange(0.4, seconds - 0.3, rr) + rng.uniform(-jitter, jitter, len(np.arange(0.4, seconds - 0.3, rr))) * rr
    wave = sum(np.exp(-0.5 * ((t - c) / 0.012) ** 2) - 0.3 * np.exp(-0.5 * ((t - c - 0.03) / 0.015) ** 2)
               for c in centres)
    signs = np.where(np.arange(12) % 4 == 0, -1.0, 1.0)[:, None]
    return signs * wave + noise * rng.normal(size=(12, len(t)))


@pytest.mark.parametrize("bpm", [45, 75, 120, 170])
def test_regular_beats_read_their_rate_at_100_and_500_hz(bpm):
    for fs in (100, 500):
        rhythm = analyse_records(beats(bpm, fs=fs)[None], fs, LEADS).iloc[0]
        assert rhythm.detected
        assert rhythm.heart_rate_bpm == pytest.approx(bpm, rel=0.02)
        assert rhythm.rr_irregularity < 0.02


def test_jittered_beats_are_irregular_and_fit_afib_not_sr():
    rhythm = analyse_records(np.stack([beats(90, seed=s, jitter=0.25) for s in range(4)]), 100, LEADS)
    assert rhythm.detected.all() and (rhythm.rr_irregularity > 0.06).all()
    assert fits_class(rhythm, ["AFIB"] * 4).tolist() == [1.0] * 4
    assert fits_class(rhythm, ["SR"] * 4).tolist() == [0.0] * 4


def test_noise_flat_and_faint_records_have_no_rhythm():
    rng = np.random.default_rng(0)
    white = rng.normal(0, 1.0, (8, 12, 1000))
    low_passed = 3 * sosfiltfilt(butter(4, 15, fs=100, output="sos"), white, axis=-1)
    faint = beats(75)[None] * 0.05  # QRS of 0.05 mV: below what any ECG lead records
    records = np.concatenate([0.5 * white, 2 * white, low_passed, np.zeros((1, 12, 1000)), faint])
    rhythm = analyse_records(records, 100, LEADS)
    assert not rhythm.detected.any(), rhythm
    assert rhythm.heart_rate_bpm.isna().all()
    assert np.nansum(fits_class(rhythm, ["GSVT"] * len(records))) == 0


@pytest.fixture(scope="module")
def real_rhythm_records(real_ptbxl_records):
    """Every mirror record whose only rhythm class is SB or GSVT, in mV."""
    x, names = real_ptbxl_records
    keep = np.isin(names, ["SB", "GSVT"])
    return x[keep], names[keep]


def test_real_bradycardia_and_tachycardia_fall_on_their_side_of_60_and_100_bpm(real_rhythm_records):
    x, names = real_rhythm_records
    assert (names == "SB").sum() >= 10 and (names == "GSVT").sum() >= 10
    rhythm = analyse_records(x, 100, LEADS)
    assert rhythm.detected.mean() >= 0.9
    fits = fits_class(rhythm, names)
    assert np.mean(fits[names == "SB"]) >= 0.9 and np.mean(fits[names == "GSVT"]) >= 0.9
    # The floor: the same records with their labels swapped almost never fit.
    assert np.mean(fits_class(rhythm, np.where(names == "SB", "GSVT", "SB"))) <= 0.1


def test_a_baseline_step_does_not_hide_the_rhythm_of_real_records(real_rhythm_records):
    x = real_rhythm_records[0][:30]
    stepped = x.copy()
    stepped[:, :, 500:] += 5.0  # 5 mV, half-way through
    clean, step = analyse_records(x, 100, LEADS), analyse_records(stepped, 100, LEADS)
    assert step.detected.mean() >= clean.detected.mean() - 0.1
    both = clean.detected & step.detected
    assert np.allclose(clean.heart_rate_bpm[both], step.heart_rate_bpm[both], rtol=0.05)


def test_per_class_reports_give_shares_rates_and_distances():
    real = np.stack([beats(50, seed=i) for i in range(4)] + [beats(150, seed=i) for i in range(4)])
    synthetic = np.stack([beats(52, seed=10 + i) for i in range(3)] + [np.zeros((12, 1000))] * 2)
    real_y, synthetic_y = np.repeat([0, 1], 4), np.array([0, 0, 0, 1, 1])
    real_rhythm, synthetic_rhythm = analyse_records(real, 100, LEADS), analyse_records(synthetic, 100, LEADS)
    by_class = rhythm_by_class(synthetic_rhythm, synthetic_y, ["SB", "GSVT"])
    assert by_class["SB"] == pytest.approx({"n": 3, "detectable": 1.0, "fits_class": 1.0,
                                           "heart_rate_median_bpm": 52, "rr_irregularity_median": 0.0}, abs=1.5)
    assert by_class["GSVT"]["detectable"] == 0.0 and by_class["GSVT"]["heart_rate_median_bpm"] is None
    report = heart_rate_by_class(real_rhythm, real_y, synthetic_rhythm, synthetic_y, ["SB", "GSVT", "SR"])
    assert set(report) == {"SB", "GSVT"}  # SR has no record on either side
    assert report["SB"]["wasserstein_bpm"] == pytest.approx(2, abs=1)
    assert report["GSVT"]["synthetic"] == {"n": 2, "n_detected": 0, "detectable": 0.0}
    assert report["GSVT"]["wasserstein_bpm"] is None


def test_a_dataset_rhythm_table_round_trips_through_csv_split_by_split(tmp_path):
    from synthecg.data.store import DatasetWriter, RunningStats
    from synthecg.errors import PipelineError
    from synthecg.evaluation.rhythm import read_split_rhythm, split_rhythms

    records = {"train": [beats(50), np.zeros((12, 1000))], "test": [beats(130)]}
    with DatasetWriter(tmp_path / "d.h5", 1000, ("train", "val", "test")) as writer:
        for split, xs in records.items():
            for i, x in enumerate(xs):
                writer.append(split, x.astype(np.float32), 0, f"{split}{i}", "p", "toy")
        stats = RunningStats.of(records["train"][0])
        writer.finish({"classes": ["SB"], "leads": LEADS, "fs": 100, "seconds": 10, "units": "mV",
                       "norm_mean": stats.mean, "norm_std": stats.std, "norm_count": stats.count})
    split_rhythms(tmp_path / "d.h5").to_csv(tmp_path / "r.csv", index=False)
    # Read a record a block, in two worker processes: the same table, in the same order.
    pd.testing.assert_frame_equal(split_rhythms(tmp_path / "d.h5", processes=2, block=1), split_rhythms(tmp_path / "d.h5"))
    table = pd.read_csv(tmp_path / "r.csv")
    train = read_split_rhythm(table, "train", 2, "r.csv")
    assert train.detected.tolist() == [True, False] and train.heart_rate_bpm[0] == pytest.approx(50, rel=0.02)
    assert read_split_rhythm(table, "test", 1, "r.csv").heart_rate_bpm[0] == pytest.approx(130, rel=0.02)
    with pytest.raises(PipelineError, match="r.csv: has 1 rhythm rows for split 'test', the data 2 records"):
        read_split_rhythm(table, "test", 2, "r.csv")


def test_the_merged_sets_rhythm_table_is_its_sources_tables_without_reading_a_record_again(tmp_path):
    from synthecg.data.preprocess import merge_datasets
    from synthecg.data.store import DatasetWriter, RunningStats, metadata
    from synthecg.errors import PipelineError
    from synthecg.evaluation.rhythm import merged_split_rhythms, split_rhythms

    sources = {"a": {"train": [beats(50), np.zeros((12, 1000))], "test": [beats(130)]},
               "b": {"train": [beats(90, seed=1)], "val": [beats(70, seed=2)], "test": [beats(110, seed=3)]}}
    for name, records in sources.items():
        with DatasetWriter(tmp_path / f"{name}.h5", 1000, ("train", "val", "test")) as writer:
            for split, xs in records.items():
                for i, x in enumerate(xs):
                    writer.append(split, x.astype(np.float32), 0, f"{name}{split}{i}", "p", name)
            stats = RunningStats.of(records["train"][0])
            per_class = {split: {"SB": len(records.get(split, []))} for split in ("train", "val", "test")}
            writer.finish({"classes": ["SB"], "leads": LEADS, "fs": 100, "seconds": 10, "units": "mV",
                           "norm_mean": stats.mean, "norm_std": stats.std, "norm_count": stats.count,
                           "records_per_class": per_class})
        split_rhythms(tmp_path / f"{name}.h5").to_csv(tmp_path / f"{name}.csv", index=False)
    merge_datasets({name: tmp_path / f"{name}.h5" for name in sources}, tmp_path / "merged.h5")
    tables = {name: pd.read_csv(tmp_path / f"{name}.csv", dtype=str, keep_default_na=False) for name in sources}
    merged_split_rhythms(tables, metadata(tmp_path / "merged.h5")).to_csv(tmp_path / "merged.csv", index=False)
    split_rhythms(tmp_path / "merged.h5").to_csv(tmp_path / "read.csv", index=False)
    assert (tmp_path / "merged.csv").read_text() == (tmp_path / "read.csv").read_text()
    with pytest.raises(PipelineError, match="have 1 rows for split 'test', the merged set 2 records"):
        merged_split_rhythms({**tables, "b": tables["b"][tables["b"]["split"] != "test"]}, metadata(tmp_path / "merged.h5"))
