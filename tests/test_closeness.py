import numpy as np
import pytest

from synthecg.evaluation.closeness import (
    discriminative_score,
    frechet_distance,
    memorisation,
    mmd_rbf,
    nearest_distances,
)

rng = np.random.default_rng(0)
EMBEDDINGS = rng.normal(size=(400, 8))


def test_fid_and_mmd_of_a_set_with_itself_are_zero_and_grow_with_noise():
    assert frechet_distance(EMBEDDINGS, EMBEDDINGS) == pytest.approx(0, abs=1e-6)
    assert abs(mmd_rbf(EMBEDDINGS, EMBEDDINGS)) < 1e-2
    fids, mmds = [], []
    for noise in (0.1, 0.5, 1.0, 2.0):
        noisy = EMBEDDINGS + noise * rng.normal(size=EMBEDDINGS.shape) + noise
        fids.append(frechet_distance(EMBEDDINGS, noisy))
        mmds.append(mmd_rbf(EMBEDDINGS, noisy))
    assert fids == sorted(fids) and fids[0] > 0
    assert mmds == sorted(mmds) and mmds[-1] > 10 * max(mmds[0], 1e-4)


def test_fid_matches_the_closed_form_for_shifted_gaussians():
    shifted = EMBEDDINGS + 3.0  # same covariance, mean moved by 3 in each of 8 dimensions
    assert frechet_distance(EMBEDDINGS, shifted) == pytest.approx(8 * 9.0, rel=1e-6)


def test_discriminative_score_is_chance_for_one_set_and_perfect_for_different_sets():
    records = rng.normal(size=(600, 12, 20))
    assert abs(discriminative_score(records[:300], records[300:]) - 0.5) < 0.1
    other = rng.normal(size=(300, 12, 20)) * 0.2 + 2.0
    assert discriminative_score(records[:300], other) > 0.95


def test_memorisation_flags_copies_of_training_records():
    train, holdout = rng.normal(size=(200, 12, 10)), rng.normal(size=(50, 12, 10))
    fresh = rng.normal(size=(40, 12, 10))
    honest = memorisation(fresh, train, holdout)
    assert honest["exact_copies"] == 0 and honest["share_closer_than_any_holdout"] < 0.1
    assert honest["share_expected_without_memorisation"] == pytest.approx(0.8)
    assert abs(honest["share_nearer_train_than_holdout"] - 0.8) < 0.15
    copied = np.concatenate([train[:30], fresh[:10]])
    leaky = memorisation(copied, train, holdout)
    assert leaky["exact_copies"] == 30 and leaky["share_closer_than_any_holdout"] >= 0.75
    assert leaky["median_synthetic_to_train"] < honest["median_synthetic_to_train"]
    # Noisy copies of training records: no exact copy, but nearer the training set than chance.
    echoes = memorisation(train[:40] + 0.3 * rng.normal(size=(40, 12, 10)), train, holdout)
    assert echoes["exact_copies"] == 0 and echoes["share_nearer_train_than_holdout"] > 0.95


def test_bland_records_near_the_mean_are_not_taken_for_memorisation():
    shares, naive = [], []
    for _ in range(20):
        train, holdout = rng.normal(size=(200, 12, 10)), rng.normal(size=(50, 12, 10))
        bland = 0.05 * rng.normal(size=(40, 12, 10))  # close to every record, seen or not
        report = memorisation(bland, train, holdout)
        shares.append(report["share_nearer_train_than_holdout"])
        naive.append(report["share_closer_than_any_holdout"])
    assert np.mean(naive) > 0.9  # the naive measure is fooled
    assert abs(np.mean(shares) - 0.8) < 0.15  # the paired one stays at chance


def test_nearest_distances_agree_with_brute_force():
    a, b = rng.normal(size=(7, 3, 4)), rng.normal(size=(300, 3, 4))
    brute = np.sqrt(((a.reshape(7, 1, -1) - b.reshape(1, 300, -1)) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(nearest_distances(a, b, block=3), brute, rtol=1e-6)
