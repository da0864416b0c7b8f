import h5py
import numpy as np
import pytest

from synthecg.data.store import STANDARD_LEADS, DatasetWriter, RunningStats, encode_record, load_split, metadata
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
