"""Copies and membership on the mirror's real records: the null (real held-out records are not flagged)
and the alarms (exact copies, copies shifted by 0.25 s, TimeDiffusion near proximity 1)."""

import numpy as np
import pytest
import torch

from synthecg.data.store import normalise, to_millivolts
from synthecg.evaluation.privacy import (
    COPY_RTOL,
    CopyIndex,
    count_below,
    dcr_statistics,
    exact_copies,
    median_beats,
    membership,
    nearest,
    nearest_distances,
)
from synthecg.generators.timediffusion import TimeDiffusion, TimeDiffusionConfig

CLASSES = ["SR", "SB", "AFIB", "GSVT"]
FS = 100


@pytest.fixture(scope="module")
def real(real_ptbxl_records):
    """The records normalised per lead (float32, as the pipeline reads them), their classes, the
    normalisation, and a per-class split: half training, a quarter held out, a quarter unseen queries."""
    x_mv, names = real_ptbxl_records
    meta = {"norm_mean": x_mv.mean(axis=(0, 2)), "norm_std": x_mv.std(axis=(0, 2))}
    x = normalise(x_mv.astype(np.float32), meta).astype(np.float32)
    y = np.array([CLASSES.index(name) for name in names])
    part = np.empty(len(y), int)
    rng = np.random.default_rng(0)
    for c in range(len(CLASSES)):
        rows = rng.permutation(np.flatnonzero(y == c))
        part[rows] = np.array([0, 0, 1, 2])[np.arange(len(rows)) % 4]
    return x, y, meta, {name: np.flatnonzero(part == i) for i, name in enumerate(("train", "holdout", "queries"))}


def test_exact_copies_of_real_records_are_found_after_float32_round_trips(real):
    x, _, meta, split = real
    train = x[split["train"]]
    rng = np.random.default_rng(1)
    source = rng.choice(len(train), min(40, len(train)), replace=False)
    round_trip = normalise(to_millivolts(train[source], meta).astype(np.float32), meta).astype(np.float32)
    for copies in (train[source].copy(), round_trip):
        distance, index = nearest(copies, train)
        assert (index == source).all()
        assert exact_copies(copies, train).all()
    assert nearest_distances(train[source], train).max() == 0.0  # recomputed exactly, no expansion residue
    unseen = x[np.concatenate([split["holdout"], split["queries"]])]
    assert not exact_copies(unseen, train).any()  # distinct real records are never copies


def test_the_copy_index_agrees_with_all_pairs_at_the_tolerance_edge():
    """Queries perturbed to just inside and just outside rtol·‖r‖ of a reference, plus unrelated
    ones: the index (sorted projections, then exact distances) calls exactly those all pairs call."""
    rng = np.random.default_rng(0)
    references = rng.normal(size=(400, 3, 50)).astype(np.float32)
    references[::7] *= 5  # some records much larger: the window must allow their wider bounds
    source = rng.choice(len(references), 60)
    direction = rng.normal(size=(60, 3, 50))
    direction /= np.linalg.norm(direction.reshape(60, -1), axis=1)[:, None, None]
    norms = np.linalg.norm(references[source].reshape(60, -1).astype(np.float64), axis=1)[:, None, None]
    scale = np.where(np.arange(60) % 2 == 0, 0.9, 1.1)[:, None, None]  # inside, outside
    near = references[source] + scale * COPY_RTOL * norms * direction
    queries = np.concatenate([near, rng.normal(size=(40, 3, 50))])
    flat_q, flat_r = queries.reshape(len(queries), -1), references.reshape(len(references), -1).astype(np.float64)
    distances = np.sqrt(((flat_q[:, None] - flat_r[None]) ** 2).sum(-1))
    brute = (distances <= COPY_RTOL * np.linalg.norm(flat_r, axis=1)[None]).any(1)
    assert brute[:60:2].all() and not brute[1:60:2].any() and not brute[60:].any()
    np.testing.assert_array_equal(CopyIndex(references, block=64).copies(queries), brute)


def test_dcr_statistics_are_the_expectations_over_training_subsamples():
    """The closed forms against drawing the subsamples: 20,000 training subsamples of the holdout's
    size, the share and tail share counted on each (ties and copies at distance 0 included)."""
    rng = np.random.default_rng(0)
    distances = rng.gamma(4.0, size=(30, 60)).round(1)  # rounded: ties between columns
    distances[:5, :3] = 0.0  # copies of training records
    train, holdout = np.arange(45), np.arange(45, 60)
    to_holdout = distances[:, holdout].min(1)
    threshold = np.percentile(to_holdout, 5)
    drawn = np.array([[(nearest < to_holdout).mean(), (nearest < threshold).mean()]
                      for nearest in (distances[:, rng.choice(train, 15, replace=False)].min(1) for _ in range(20_000))])
    np.testing.assert_allclose(dcr_statistics(distances, train, holdout), drawn.mean(0), atol=0.003)


def test_count_below_is_searchsorted_row_by_row_ties_and_ends_included():
    rng = np.random.default_rng(1)
    rows = np.sort(rng.integers(0, 6, size=(200, 17)).astype(float), axis=1)  # many ties
    values = rng.integers(-1, 8, size=200).astype(float)  # below, at and above every entry
    expected = [np.searchsorted(row, value) for row, value in zip(rows, values)]
    np.testing.assert_array_equal(count_below(rows, values), expected)


def test_nearest_distances_agree_with_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 3, 4)), rng.normal(size=(300, 3, 4))
    brute = np.sqrt(((a.reshape(7, 1, -1) - b.reshape(1, 300, -1)) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(nearest_distances(a, b, block=3), brute, rtol=1e-9)


@pytest.fixture(scope="module")
def beats(real):
    x, _, _, split = real
    return {name: median_beats(x[rows], FS) for name, rows in split.items()}


def test_real_unseen_records_are_flagged_no_more_often_than_the_tests_level(real):
    """Ten re-splits of the real records into training, held-out and unseen queries: under the null
    each p is uniform, so at most two of ten below 0.05 (binomial chance of more: 1 %), and the
    shares centre on their null."""
    x, y, _, _ = real
    beats = median_beats(x, FS)
    reports = []
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        part = np.empty(len(y), int)
        for c in range(len(CLASSES)):
            rows = rng.permutation(np.flatnonzero(y == c))
            part[rows] = np.array([0, 0, 1, 2])[np.arange(len(rows)) % 4]
        reports.append(membership(beats[part == 2], beats[part == 0], beats[part == 1], permutations=100, seed=seed))
    for name, chance in (("dcr_share", 0.5), ("dcr_tail_share", 0.05)):
        assert sum(r[name]["p"] < 0.05 for r in reports) <= 2, [r[name] for r in reports]
        assert np.mean([r[name]["value"] for r in reports]) == pytest.approx(chance, abs=0.06)
        assert np.median([r[name]["floor"] for r in reports]) == pytest.approx(chance, abs=0.03)


def shifted(x: np.ndarray, seconds: float = 0.25) -> np.ndarray:
    """Records moved later by `seconds`, the start filled with each lead's first value."""
    k = round(seconds * FS)
    return np.concatenate([np.repeat(x[..., :1], k, axis=-1), x[..., :-k]], axis=-1)


def near_copies_from_timediffusion(x: np.ndarray, y: np.ndarray, proximity: float = 0.9) -> np.ndarray:
    """TimeDiffusion seeded with the training records, briefly trained, sampled near `proximity`."""
    torch.manual_seed(0)
    config = TimeDiffusionConfig(hidden_channels=8, max_dilation_exponent=4, batch_size=16, max_seed_records=64,
                                 proximity=proximity, sampling_steps=4)
    model = TimeDiffusion(config, len(CLASSES), x.shape[1], x.shape[2], FS)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model.prepare(x, y)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(10):
        batch = torch.arange(step * 16, step * 16 + 16) % len(x)
        loss = model.loss(x[batch], y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.sample(y[: len(y) // 2], torch.Generator().manual_seed(0)).numpy()


def test_copies_shifted_copies_and_timediffusion_near_its_seeds_are_flagged(real, beats):
    x, y, _, split = real
    train = x[split["train"]]
    source = np.random.default_rng(2).choice(len(train), len(split["queries"]), replace=False)
    alarms = {
        "copies": train[source],
        "shifted by 0.25 s": shifted(train[source]),
        "TimeDiffusion, proximity 0.9": near_copies_from_timediffusion(train, y[split["train"]]),
    }
    for name, records in alarms.items():
        report = membership(median_beats(records, FS), beats["train"], beats["holdout"], permutations=200)
        for measure in ("dcr_share", "dcr_tail_share"):
            entry = report[measure]
            assert entry["p"] < 0.05 and entry["value"] > entry["floor_interval"][1], (name, measure, entry)


def test_the_privacy_flag_names_copies_and_passes_unseen_real_records(real):
    """The verdict the generators' goal uses (fidelity.privacy_flag): unseen real records pass;
    exact copies are named; copies shifted by a quarter second (no exact copy) are beyond the DCR floor."""
    from synthecg.evaluation.fidelity import privacy_flag, privacy_measures

    x, _, _, parts = real
    train, holdout, queries = (x[parts[name]] for name in ("train", "holdout", "queries"))
    assert privacy_flag(privacy_measures(queries, train, holdout, FS)) == ""
    copies = privacy_flag(privacy_measures(train[: len(queries)], train, holdout, FS))
    assert copies.startswith(f"{len(queries)} exact copies") and "dcr_share" in copies
    shifted = privacy_flag(privacy_measures(np.roll(train[: len(queries)], 25, axis=-1), train, holdout, FS))
    assert "exact copies" not in shifted and "dcr_share" in shifted
