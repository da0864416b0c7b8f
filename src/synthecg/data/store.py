"""The HDF5 layout shared by real and synthetic ECG sets (DESIGN §2).

```
/{split}/x          float32 [N, 12, T]  mV, one record per chunk, compressed
/{split}/y          int64   [N]         index into attrs["classes"]
/{split}/record_id  str     [N]
/{split}/patient_id str     [N]
/{split}/source     str     [N]         dataset each record comes from
attrs: classes, leads, fs, seconds, units, norm_mean/norm_std/norm_count [12], ...
```

Signals are stored in physical units (mV), exactly as read, for real and synthetic sets
alike; the per-lead normalisation fitted on the training split is stored beside them and
applied by `load_split(..., normalised=True)`. One place applies it, nothing is rounded
twice, and a synthetic set written in mV reads the same way as the real one.

Files are written to a temporary name and renamed into place only when complete, so an
interrupted job never leaves a file that looks finished.
"""

import hashlib
import json
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from synthecg.errors import PipelineError
from synthecg.io import partial_path

LAYOUT_VERSION = 1
STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
STRING = h5py.string_dtype()
FLUSH_EVERY = 256  # records buffered per split before a write
GZIP_LEVEL = 1  # float32 ECG compresses ~1.4x at any level; 1 is the cheapest


def encode_record(x: np.ndarray) -> bytes:
    """One [12, T] record compressed exactly as the file's shuffle + gzip filters would.

    Lets worker processes do the compressing, which is most of the cost of writing, while
    the one process that owns the file only copies bytes in (`DatasetWriter.append_encoded`).
    """
    record = np.ascontiguousarray(x, dtype="<f4")
    shuffled = record.view(np.uint8).reshape(-1, record.itemsize).T.tobytes()  # HDF5 byte shuffle
    return zlib.compress(shuffled, GZIP_LEVEL)


@dataclass
class RunningStats:
    """Per-lead mean and variance over records of shape [leads, samples], merged exactly
    (Chan et al.) so that workers and datasets can be combined without a second pass."""

    count: int = 0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(len(STANDARD_LEADS)))
    m2: np.ndarray = field(default_factory=lambda: np.zeros(len(STANDARD_LEADS)))

    @classmethod
    def of(cls, x: np.ndarray) -> "RunningStats":
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=-1)
        return cls(x.shape[-1], mean, ((x - mean[:, None]) ** 2).sum(axis=-1))

    @classmethod
    def from_attrs(cls, attrs: Mapping) -> "RunningStats":
        count = int(attrs["norm_count"])
        return cls(count, np.asarray(attrs["norm_mean"], float), np.asarray(attrs["norm_std"], float) ** 2 * count)

    def merge(self, other: "RunningStats") -> "RunningStats":
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        total = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / total
        m2 = self.m2 + other.m2 + delta**2 * self.count * other.count / total
        return RunningStats(total, mean, m2)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.count, 1))


class DatasetWriter:
    """Stream records into one HDF5 file, split by split; the file appears only on success.

    Use as a context manager; call `finish(attrs)` inside the block to write the attributes.
    """

    def __init__(self, path: str | Path, n_samples: int, splits: Sequence[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = partial_path(self.path)
        self.n_samples = n_samples
        self.splits = tuple(splits)
        self.counts = dict.fromkeys(self.splits, 0)
        self.pending_x = {split: [] for split in self.splits}  # written every FLUSH_EVERY records
        self.strings = {split: {"record_id": [], "patient_id": [], "source": []} for split in self.splits}
        self.ys = {split: [] for split in self.splits}
        self.file: h5py.File | None = None
        self.finished = False

    def __enter__(self) -> "DatasetWriter":
        self.file = h5py.File(self.temporary, "w", track_order=True)
        for split in self.splits:
            self.file.create_dataset(
                f"{split}/x",
                shape=(0, len(STANDARD_LEADS), self.n_samples),
                maxshape=(None, len(STANDARD_LEADS), self.n_samples),
                dtype=np.float32,
                chunks=(1, len(STANDARD_LEADS), self.n_samples),
                compression="gzip",
                compression_opts=GZIP_LEVEL,
                shuffle=True,
            )
        return self

    def append(self, split: str, x: np.ndarray, y: int, record_id: str, patient_id: str, source: str) -> None:
        """Add one record: x is float32 [12, T] in mV."""
        self.pending_x[split].append(x)
        self._append_labels(split, y, record_id, patient_id, source)
        if len(self.pending_x[split]) >= FLUSH_EVERY:
            self._flush(split)

    def append_encoded(self, split: str, chunk: bytes, y: int, record_id: str, patient_id: str, source: str) -> None:
        """Add one record already compressed by `encode_record`."""
        self._flush(split)
        dataset = self.file[f"{split}/x"]
        index = dataset.shape[0]
        dataset.resize(index + 1, axis=0)
        dataset.id.write_direct_chunk((index, 0, 0), chunk)
        self.counts[split] = index + 1
        self._append_labels(split, y, record_id, patient_id, source)

    def _append_labels(self, split: str, y: int, record_id: str, patient_id: str, source: str) -> None:
        self.ys[split].append(y)
        strings = self.strings[split]
        strings["record_id"].append(record_id)
        strings["patient_id"].append(patient_id)
        strings["source"].append(source)

    def append_block(self, split: str, x: np.ndarray, y, record_id, patient_id, source) -> None:
        """Add many records at once: x is float32 [N, 12, T] in mV."""
        self._flush(split)
        self._write_x(split, np.asarray(x, dtype=np.float32))
        self.ys[split].extend(int(v) for v in y)
        self.strings[split]["record_id"].extend(record_id)
        self.strings[split]["patient_id"].extend(patient_id)
        self.strings[split]["source"].extend(source)

    def _flush(self, split: str) -> None:
        if self.pending_x[split]:
            self._write_x(split, np.stack(self.pending_x[split]))
            self.pending_x[split].clear()

    def _write_x(self, split: str, x: np.ndarray) -> None:
        dataset = self.file[f"{split}/x"]
        start = dataset.shape[0]
        dataset.resize(start + len(x), axis=0)
        dataset[start:] = x
        self.counts[split] = start + len(x)

    def finish(self, attrs: Mapping) -> None:
        for split in self.splits:
            self._flush(split)
            group = self.file[split]
            group.create_dataset("y", data=np.asarray(self.ys[split], dtype=np.int64))
            for name, values in self.strings[split].items():
                group.create_dataset(name, data=np.asarray(values, dtype=object), dtype=STRING)
        for key, value in {**attrs, "layout_version": LAYOUT_VERSION}.items():
            self.file.attrs[key] = _attr(value)
        self.finished = True

    def __exit__(self, exc_type, exc, tb) -> None:
        self.file.close()
        if exc_type is None and self.finished:
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)


def _attr(value):
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
        return np.asarray(value, dtype=object).astype(STRING)
    return value


# -- reading ---------------------------------------------------------------------------------
REQUIRED_ATTRS = ("classes", "leads", "fs", "seconds", "units")


def open_store(path: str | Path) -> h5py.File:
    """Open an ECG HDF5 file read-only, checking it has the layout above."""
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise PipelineError(f"{path}: cannot open as HDF5 ({error}); delete it and rerun the stage that made it")
    missing = [key for key in REQUIRED_ATTRS if key not in handle.attrs]
    if missing:
        handle.close()
        raise PipelineError(f"{path}: not an ECG set of this pipeline (attributes {missing} missing)")
    return handle


def metadata(path: str | Path) -> dict:
    """All attributes, with string arrays as lists and JSON attributes decoded."""
    with open_store(path) as handle:
        result = {}
        for key, value in handle.attrs.items():
            if isinstance(value, np.ndarray):
                value = [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
            elif isinstance(value, str) and value[:1] in "{[":
                value = json.loads(value)
            elif isinstance(value, np.generic):
                value = value.item()
            result[key] = value
        result["splits"] = {name: int(group["x"].shape[0]) for name, group in handle.items()}
        return result


def load_split(path: str | Path, split: str, normalised: bool = False) -> dict[str, np.ndarray]:
    """Read one split into memory: x [N, 12, T] float32 (mV, or normalised per lead), y,
    record_id, patient_id and source."""
    with open_store(path) as handle:
        group = _split(handle, path, split)
        data = {"x": group["x"][...], "y": group["y"][...]}
        for name in ("record_id", "patient_id", "source"):
            data[name] = group[name].asstr()[...] if name in group else np.array([], dtype=object)
        if normalised:
            normalise(data["x"], handle.attrs, out=data["x"])  # in place: no second copy of the split
    return data


def _split(handle: h5py.File, path: str | Path, split: str) -> h5py.Group:
    if split not in handle:
        raise PipelineError(f"{path}: has no split {split!r} (it has {sorted(handle)})")
    return handle[split]


def load_labels(path: str | Path, split: str) -> np.ndarray:
    """The labels of one split, without its records."""
    with open_store(path) as handle:
        return _split(handle, path, split)["y"][...]


READ_BLOCK = 1024  # records decompressed at a time when reading a selection of a split


def load_rows(path: str | Path, split: str, rows: np.ndarray, normalised: bool = False,
              out: np.ndarray | None = None) -> np.ndarray:
    """Records `rows` (indices into the split, in any order) as float32 [len(rows), 12, T], mV or
    normalised, into `out` if given. Memory is the selection plus one block of READ_BLOCK records,
    whatever the file's size: a job that judges a few hundred records of a set of 100,000 holds
    those, not the set. Blocks with few selected records are read record by record (one chunk each)."""
    rows = np.asarray(rows, dtype=np.int64)
    with open_store(path) as handle:
        x = _split(handle, path, split)["x"]
        if len(rows) and (rows.min() < 0 or rows.max() >= len(x)):
            raise PipelineError(f"{path}: rows up to {rows.max()} asked of split {split!r}, which holds {len(x)}")
        if out is None:
            out = np.empty((len(rows), *x.shape[1:]), np.float32)
        order = np.argsort(rows, kind="stable")
        in_order = rows[order]
        for start in range(0, len(x), READ_BLOCK):
            lo, hi = np.searchsorted(in_order, [start, start + READ_BLOCK])
            if lo == hi:
                continue
            wanted = order[lo:hi]
            if hi - lo >= READ_BLOCK // 8:
                out[wanted] = x[start : start + READ_BLOCK][rows[wanted] - start]
            else:
                for i in wanted:
                    out[i] = x[rows[i]]
        if normalised:
            normalise(out, handle.attrs, out=out)
    return out


def records_digest(record_ids) -> str:
    """SHA-256 of record ids in order: equal digests mean the same records in the same order."""
    return hashlib.sha256("\n".join(map(str, record_ids)).encode()).hexdigest()


# -- normalised and physical units -----------------------------------------------------------
def _norm(meta: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """The real set's per-lead training mean and std, shaped to broadcast over [N, leads, T]."""
    return (np.asarray(meta["norm_mean"], np.float32)[None, :, None],
            np.asarray(meta["norm_std"], np.float32)[None, :, None])


def normalise(x_mv: np.ndarray, meta: Mapping, out: np.ndarray | None = None) -> np.ndarray:
    """Records in mV [N, leads, T] -> normalised with the real set's statistics (`meta`: its
    metadata); `out=x_mv` normalises in place (the same float32 values)."""
    mean, std = _norm(meta)
    if out is None:
        return (x_mv - mean) / std
    np.subtract(x_mv, mean, out=out)
    return np.divide(out, std, out=out)


def to_millivolts(x_normalised: np.ndarray, meta: Mapping) -> np.ndarray:
    """The inverse of `normalise`."""
    mean, std = _norm(meta)
    return x_normalised * std + mean


def load_synthetic(paths: Sequence[Path], real_meta: Mapping, rows: np.ndarray | None = None,
                   out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The union of synthetic sets (stored in mV), normalised with the real set's training
    statistics: (x, y). `rows` (indices into the files concatenated in order; `synthetic_labels`
    gives their labels) reads only those records, in that order; `out` is where x goes. Memory:
    the records returned and one block, never a second copy."""
    labels = synthetic_labels(paths, real_meta)
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows, dtype=np.int64)
    leads, samples = len(real_meta["leads"]), round(real_meta["fs"] * real_meta["seconds"])
    if out is None:
        out = np.empty((len(rows), leads, samples), np.float32)
    offset = 0
    for path in paths:
        size = metadata(path)["splits"]["synthetic"]
        mine = np.flatnonzero((rows >= offset) & (rows < offset + size))
        if len(mine) and mine[-1] - mine[0] + 1 == len(mine):  # a run of `out`: read straight into it
            load_rows(path, "synthetic", rows[mine] - offset, out=out[mine[0] : mine[-1] + 1])
        elif len(mine):
            out[mine] = load_rows(path, "synthetic", rows[mine] - offset)
        offset += size
    return normalise(out, real_meta, out=out), labels[rows]


def synthetic_labels(paths: Sequence[Path], real_meta: Mapping) -> np.ndarray:
    """The labels of synthetic sets concatenated in order, each set checked against the real data's
    classes, leads, rate and length."""
    labels = []
    for path in paths:
        meta = metadata(path)
        for key in ("classes", "leads", "fs", "seconds"):
            if meta[key] != real_meta[key]:
                raise PipelineError(f"{path}: its {key} {meta[key]} differ from the real data's {real_meta[key]}")
        labels.append(load_labels(path, "synthetic"))
    return np.concatenate(labels) if labels else np.zeros(0, np.int64)
