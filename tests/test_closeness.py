"""Distribution measures against their floors: the formulas, then each measure's null (two disjoint halves
of the mirror's real records sit within the floor's range) and its alarm (noise; label-shuffled records
for the per-class heart rate)."""

import numpy as np
import pytest
import torch

from synthecg.classifier.resnet1d_wang import ResNet1dWang
from synthecg.data.store import STANDARD_LEADS
from synthecg.evaluation.closeness import (
    against_floor,
    amplitude_difference,
    class_counts,
    frechet_distance,
    log_spectrum_difference,
    median_bandwidth,
    mmd2,
    mmd2_permutation_p,
)
from synthecg.evaluation.discriminators import chance_interval, cnn_score, linear_probe_score
from synthecg.evaluation.rhythm import analyse_records, rate_against_floor

CLASSES = ["SR", "SB", "AFIB", "GSVT"]
rng = np.random.default_rng(0)


def test_fid_matches_the_closed_form_for_shifted_gaussians():
    embeddings = rng.normal(size=(400, 8))
    assert frechet_distance(embeddings, embeddings) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(embeddings, embeddings + 3.0) == pytest.approx(8 * 9.0, rel=1e-6)


def test_fid_of_one_distribution_falls_with_n_and_the_floor_at_that_n_follows_it():
    # The bias the issue measured: identical 128-d Gaussians read ~83 at N = 100 and ~8.5 at N = 1000.
    same = rng.normal(size=(4000, 128))
    fid = lambda x, ref, _: frechet_distance(x, ref)  # noqa: E731
    small, large = (against_floor(fid, same[:2000], same[2000:], draws=3, max_records=n) for n in (100, 1000))
    assert small["n"] == 100 and large["n"] == 1000
    assert small["value"] > 5 * large["value"] > 5
    for result in (small, large):  # both sides share the bias, so the value sits at its floor
        assert result["floor_interval"][0] * 0.9 <= result["value"] <= result["floor_interval"][1] * 1.1


def test_mmd2_with_a_fixed_bandwidth_is_calibrated_and_grows_with_a_shift():
    reference = rng.normal(size=(300, 8))
    bandwidth = median_bandwidth(reference)  # from real records only: every generator shares it
    p_values = [mmd2_permutation_p(rng.normal(size=(60, 8)), reference[:60], bandwidth, permutations=100, seed=s)
                for s in range(20)]
    assert sum(p < 0.05 for p in p_values) <= 3  # uniform under the null: ~1 of 20 expected
    shifts = [mmd2(reference[:150] + shift, reference[150:], bandwidth) for shift in (0.0, 0.3, 1.0)]
    assert abs(shifts[0]) < 0.02 and shifts[0] < shifts[1] < shifts[2]
    assert mmd2_permutation_p(reference[:60] + 0.5, reference[60:120], bandwidth, permutations=100) < 0.05


def test_class_counts_match_both_sides_class_by_class():
    real_y, synthetic_y = np.repeat([0, 1, 2], [100, 10, 6]), np.repeat([0, 1, 2, 3], 150)
    assert class_counts(synthetic_y, real_y) == {0: 50, 1: 5, 2: 3}  # class 3: no real record to compare with
    assert sum(class_counts(synthetic_y, real_y, max_records=29).values()) <= 29


@pytest.fixture(scope="module")
def halves(real_ptbxl_records):
    """Two disjoint halves of the real records (alternate records per class): records normalised per
    lead, their labels, and the records in mV."""
    x_mv, names = real_ptbxl_records
    x = ((x_mv - x_mv.mean(axis=(0, 2), keepdims=True)) / x_mv.std(axis=(0, 2), keepdims=True)).astype(np.float32)
    y = np.array([CLASSES.index(name) for name in names])
    first = np.zeros(len(y), bool)
    for c in range(len(CLASSES)):
        first[np.flatnonzero(y == c)[::2]] = True
    return (x[first], y[first], x_mv[first]), (x[~first], y[~first], x_mv[~first])


@torch.no_grad()
def embedding(x: np.ndarray) -> np.ndarray:
    """The features of a small, seeded, untrained resnet1d_wang: a fixed map, enough to test the measures."""
    torch.manual_seed(0)
    return ResNet1dWang(12, len(CLASSES), filters=(16, 16, 16)).eval().embed(torch.from_numpy(x)).numpy()


def test_real_halves_sit_within_every_floor_and_noise_lies_beyond_it(halves):
    (x, y, _), (reference, reference_y, _) = halves
    noise = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)  # the real records' per-lead std
    loud = 1.5 * x  # DiffWave's quick-run amplitude: what amplitude measures (white noise of the records' std it cannot)
    bandwidth = median_bandwidth(embedding(reference))
    on_records = lambda measure: lambda a, b, _: measure(a, b)  # noqa: E731
    measures = {  # name: (measure, on embeddings?, its alarm, draws)
        "fid": (on_records(frechet_distance), True, noise, 10),
        "mmd2": (lambda a, b, _: mmd2(a, b, bandwidth), True, noise, 10),
        "linear_probe_score": (linear_probe_score, True, noise, 10),
        "cnn_score": (lambda a, b, r: cnn_score(a, b, r, epochs=10), False, noise, 2),
        "amplitude_difference": (on_records(amplitude_difference), False, loud, 10),
        "log_spectrum_difference": (on_records(log_spectrum_difference), False, noise, 10),
    }
    for name, (measure, embedded, alarm_records, draws) in measures.items():
        view = embedding if embedded else (lambda records: records)
        chance = chance_interval if name == "cnn_score" else None  # too slow to draw its spread
        compare = lambda records: against_floor(measure, view(records), view(reference), y, reference_y,  # noqa: E731
                                                draws=draws, null_interval=chance)
        null, alarm = compare(x), compare(alarm_records)
        assert null["n"] >= 20 and null["value"] <= null["floor_interval"][1], (name, null)
        assert alarm["value"] > alarm["floor_interval"][1], (name, alarm)


def test_heart_rate_per_class_flags_shuffled_labels_and_noise_but_not_real_records(halves):
    (_, y, x_mv), (_, reference_y, reference_mv) = halves
    rhythm = lambda records: analyse_records(records, 100, list(STANDARD_LEADS))  # noqa: E731
    real, other = rhythm(reference_mv), rhythm(x_mv)
    shuffled_y = np.random.default_rng(0).permutation(y)
    null = rate_against_floor(real, reference_y, other, y, CLASSES)
    shuffled = rate_against_floor(real, reference_y, other, shuffled_y, CLASSES)
    noise_mv = np.random.default_rng(2).normal(size=x_mv[::4].shape) * x_mv.std(axis=(0, 2), keepdims=True)
    noise = rate_against_floor(real, reference_y, rhythm(noise_mv), y[::4], CLASSES)
    for name in ("SB", "GSVT"):  # the classes a heart rate defines
        for entry in null[name].values():
            assert entry["floor_interval"][0] <= entry["value"] <= entry["floor_interval"][1], (name, entry)
        distance = shuffled[name]["wasserstein_bpm"]
        assert distance["value"] > distance["floor_interval"][1], (name, distance)
    for name, entry in noise.items():  # noise has no rhythm to read
        gap = entry["detectable_gap"]
        assert gap["value"] < gap["floor_interval"][0], (name, gap)
