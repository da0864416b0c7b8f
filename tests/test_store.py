import h5py
import numpy as np
import pytest

from synthecg.data import store
from synthecg.data.store import (
    STANDARD_LEADS,
    DatasetWriter,
    RunningStats,
    encode_record,
    load_labels,
    load_rows,
    load_split,
    load_synthetic,
    metadata,
    synthetic_labels,
)
from synthecg.errors import PipelineError

ATTRS = {"classes": ["A", "B"], "leads": list(STANDARD_LEADS), "fs": 10, "seconds": 10, "units": "mV"}


def write_small(path, n_train=5, n_test=2, seed=0):
    rng = np.random.default_rng(seed)
    stats = RunningStats()
    records = {"train": rng.normal(1.0, 2.0, (n_train, 12, 100)), "val": rng.normal(size=(0, 12, 100)),
               "test": rng.normal(size=(n_test, 12, 100))}
    with DatasetWriter(path, 100, ("train", "val", "test")) as writer:
        for split, xs in records.items():
            for i, x in enumerate(xs.astype(np.float32)):
                writer.append(split, x, i % 2, f"{split}{i}", f"p{i}", "toy")
                if split == "train":
                    stats = stats.merge(RunningStats.of(x))
        writer.finish({**ATTRS, "norm_mean": stats.mean, "norm_std": stats.std, "norm_count": stats.count})
    return records


def test_layout_matches_the_design(tmp_path):
    path = tmp_path / "set.h5"
    write_small(path)
    with h5py.File(path) as handle:
        x = handle["train/x"]
        assert x.dtype == np.float32 and x.shape == (5, 12, 100)
        assert x.chunks == (1, 12, 100) and x.compression == "gzip"
        assert handle["train/y"].dtype == np.int64
        assert handle["train/record_id"].asstr()[...].tolist() == [f"train{i}" for i in range(5)]
        assert handle["val/x"].shape == (0, 12, 100)
    meta = metadata(path)
    assert meta["classes"] == ["A", "B"] and meta["leads"] == list(STANDARD_LEADS)
    assert meta["splits"] == {"train": 5, "val": 0, "test": 2}


def test_values_round_trip_and_normalisation_uses_train_statistics(tmp_path):
    path = tmp_path / "set.h5"
    records = write_small(path)
    train = load_split(path, "train")
    np.testing.assert_array_equal(train["x"], records["train"].astype(np.float32))
    normalised = load_split(path, "train", normalised=True)["x"]
    np.testing.assert_allclose(normalised.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(normalised.std(axis=(0, 2)), 1, atol=1e-4)
    test = load_split(path, "test", normalised=True)["x"]  # val/test use the train statistics
    mean, std = train["x"].mean(axis=(0, 2)), train["x"].std(axis=(0, 2))
    np.testing.assert_allclose(test, (records["test"] - mean[:, None]) / std[:, None], atol=1e-4)


def test_running_stats_merge_exactly():
    rng = np.random.default_rng(1)
    parts = [rng.normal(i, i + 1, (12, 50 * (i + 1))) for i in range(4)]
    merged = RunningStats()
    for part in parts:
        merged = merged.merge(RunningStats.of(part))
    everything = np.concatenate(parts, axis=1)
    np.testing.assert_allclose(merged.mean, everything.mean(axis=1))
    np.testing.assert_allclose(merged.std, everything.std(axis=1))
    back = RunningStats.from_attrs({"norm_mean": merged.mean, "norm_std": merged.std, "norm_count": merged.count})
    np.testing.assert_allclose(back.m2, merged.m2)


def test_an_interrupted_write_leaves_nothing(tmp_path):
    path = tmp_path / "set.h5"
    with pytest.raises(RuntimeError):
        with DatasetWriter(path, 100, ("train",)) as writer:
            writer.append("train", np.zeros((12, 100), np.float32), 0, "r", "p", "toy")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_an_ecg_set_is_named(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(PipelineError, match=f"{junk}: cannot open as HDF5"):
        metadata(junk)
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["a"] = 1
    with pytest.raises(PipelineError, match="not an ECG set"):
        load_split(tmp_path / "other.h5", "train")


def test_records_compressed_in_workers_read_back_exactly(tmp_path):
    path = tmp_path / "set.h5"
    x = np.random.default_rng(2).normal(size=(3, 12, 100)).astype(np.float32)
    with DatasetWriter(path, 100, ("train",)) as writer:
        writer.append("train", x[0], 0, "a", "p", "toy")  # buffered, then flushed before the next
        writer.append_encoded("train", encode_record(x[1]), 1, "b", "p", "toy")
        writer.append_encoded("train", encode_record(x[2]), 0, "c", "p", "toy")
        writer.finish(ATTRS)
    data = load_split(path, "train")
    np.testing.assert_array_equal(data["x"], x)
    assert data["record_id"].tolist() == ["a", "b", "c"] and data["y"].tolist() == [0, 1, 0]


def write_synthetic(path, n, seed):
    """A synthetic set of n records (split "synthetic"), labels cycling over the two classes."""
    x = np.random.default_rng(seed).normal(size=(n, 12, 100)).astype(np.float32)
    with DatasetWriter(path, 100, ("synthetic",)) as writer:
        for i, record in enumerate(x):
            writer.append("synthetic", record, i % 2, f"s{i}", "", "toy")
        writer.finish({**ATTRS, "generator": "toy"})
    return x


def test_selected_rows_are_read_as_the_whole_split_holds_them(tmp_path, monkeypatch):
    """Dense blocks, sparse blocks (record by record), any order and repeats: the rows read are the
    split's rows, and normalised in place they equal the out-of-place normalisation bit for bit."""
    monkeypatch.setattr(store, "READ_BLOCK", 16)
    path = tmp_path / "set.h5"
    write_small(path, n_train=70)
    whole = load_split(path, "train")
    meta = metadata(path)
    for rows in (np.arange(70), np.array([3, 69, 3, 0, 40]), np.r_[np.arange(16, 32), 50]):
        np.testing.assert_array_equal(load_rows(path, "train", rows), whole["x"][rows])
        np.testing.assert_array_equal(load_rows(path, "train", rows, normalised=True),
                                      (whole["x"][rows] - store._norm(meta)[0]) / store._norm(meta)[1])
    np.testing.assert_array_equal(load_split(path, "train", normalised=True)["x"], store.normalise(whole["x"], meta))
    np.testing.assert_array_equal(load_labels(path, "train"), whole["y"])
    with pytest.raises(PipelineError, match="rows up to 70"):
        load_rows(path, "train", [70])


def test_synthetic_sets_read_by_rows_across_files_and_into_a_given_array(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "READ_BLOCK", 8)
    real = tmp_path / "real.h5"
    write_small(real)
    meta = metadata(real)
    parts = [write_synthetic(tmp_path / f"s{i}.h5", n, seed=i) for i, n in enumerate((30, 12))]
    paths = [tmp_path / "s0.h5", tmp_path / "s1.h5"]
    everything = store.normalise(np.concatenate(parts), meta)
    labels = np.r_[np.arange(30) % 2, np.arange(12) % 2]
    x, y = load_synthetic(paths, meta)
    np.testing.assert_array_equal(x, everything)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(synthetic_labels(paths, meta), labels)
    for rows in (np.array([41, 2, 30, 29]), np.arange(25, 35)):  # scattered and in both files; a run across them
        out = np.full((len(rows) + 2, 12, 100), np.nan, np.float32)
        x, y = load_synthetic(paths, meta, rows=rows, out=out[2:])
        assert np.shares_memory(x, out)
        np.testing.assert_array_equal(out[2:], everything[rows])
        np.testing.assert_array_equal(y, labels[rows])
        assert np.isnan(out[:2]).all()


def test_the_sample_plot_writes_its_png_and_leaves_the_sets_it_reads_untouched(tmp_path):
    from synthecg.evaluation.plots import sample_grid

    real, synthetic = tmp_path / "real.h5", tmp_path / "synthetic.h5"
    write_small(real)
    with h5py.File(real, "a") as handle:
        handle.attrs["dataset"] = "toy"
    write_synthetic(synthetic, 6, seed=0)
    before = {path: path.read_bytes() for path in (real, synthetic)}
    sample_grid(real, synthetic, tmp_path / "samples.png")
    assert (tmp_path / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(path.read_bytes() == data for path, data in before.items())
