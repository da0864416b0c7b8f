"""The R-peak heart rate on made-up beats of known rate and on real PTB-XL records of the mirror."""

import ast

import numpy as np
import pandas as pd
import pytest

from conftest import MIRROR
from synthecg.data.records import SignalSpec, read_record
from synthecg.evaluation.heart_rate import heart_rate_bpm, heart_rate_by_class, r_peaks

PTBXL = MIRROR / "ptb-xl" / "1.0.3"


def beats(bpm: float, fs: int = 100, seconds: int = 10, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """12 leads of narrow Gaussian 'QRS' spikes at a fixed rate, some leads inverted, plus noise."""
    t = np.arange(fs * seconds) / fs
    centres = np.arange(0.3, seconds - 0.2, 60 / bpm)
    spikes = sum(np.exp(-0.5 * ((t - c) / 0.015) ** 2) for c in centres)
    signs = np.where(np.arange(12) % 3 == 0, -1.0, 1.0)[:, None]
    return signs * spikes + noise * np.random.default_rng(seed).normal(size=(12, len(t)))


@pytest.mark.parametrize("bpm", [45, 75, 120, 180])
def test_heart_rate_of_regular_beats_is_their_rate(bpm):
    assert heart_rate_bpm(beats(bpm), 100) == pytest.approx(bpm, rel=0.02)
    assert heart_rate_bpm(beats(bpm, fs=500), 500) == pytest.approx(bpm, rel=0.02)


def test_a_flat_or_beatless_record_has_no_heart_rate():
    assert np.isnan(heart_rate_bpm(np.zeros((12, 1000)), 100))
    assert len(r_peaks(np.zeros((12, 1000)), 100)) == 0


def test_real_bradycardia_and_tachycardia_records_fall_on_their_side_of_60_and_100_bpm():
    table = pd.read_csv(PTBXL / "ptbxl_database.csv", index_col=0)
    table = table[[(PTBXL / f"{name}.hea").exists() for name in table.filename_lr]]
    codes = table.scp_codes.map(lambda text: set(ast.literal_eval(text)))
    spec = SignalSpec(source_fs=100, fs=100)
    rate = lambda names: np.array([heart_rate_bpm(read_record(PTBXL / n, spec), 100) for n in names])  # noqa: E731
    bradycardia = rate(table.filename_lr[codes.map(lambda c: "SBRAD" in c)])
    tachycardia = rate(table.filename_lr[codes.map(lambda c: "STACH" in c)])
    assert len(bradycardia) >= 3 and len(tachycardia) >= 2
    assert (bradycardia < 60).all() and (tachycardia > 100).all()


def test_per_class_report_compares_distributions_and_marks_what_is_missing():
    real = np.stack([beats(60, seed=i) for i in range(4)] + [beats(150, seed=i) for i in range(4)])
    synthetic = np.stack([beats(60, seed=10 + i) for i in range(3)] + [np.zeros((12, 1000))] * 2)
    report = heart_rate_by_class(real, np.repeat([0, 1], 4), synthetic, np.array([0, 0, 0, 1, 1]), ["SR", "GSVT", "SB"], 100)
    assert set(report) == {"SR", "GSVT"}  # SB has no record on either side
    assert report["SR"]["wasserstein_bpm"] < 1.5
    assert report["SR"]["real"]["mean"] == pytest.approx(60, rel=0.02)
    assert report["GSVT"]["synthetic"] == {"n": 2, "n_detected": 0}
    assert report["GSVT"]["wasserstein_bpm"] is None
