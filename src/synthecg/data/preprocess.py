"""From a downloaded dataset to `results/data/{dataset}.h5` and its QC table, and the merged set.

Records are read and checked in worker processes (`threads` of them) and streamed into the
HDF5 file in catalogue order, so the output is the same whatever the number of workers.
"""

import logging
import multiprocessing
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd

from synthecg.data.labels import ClassMap
from synthecg.data.records import SignalSpec, read_record
from synthecg.data.splits import SPLITS, ptbxl_split, stratified_patient_split
from synthecg.data.store import (
    STANDARD_LEADS,
    DatasetWriter,
    RunningStats,
    encode_record,
    metadata,
    open_store,
)
from synthecg.errors import PipelineError, RecordError
from synthecg.io import write_csv_atomically

log = logging.getLogger("synthecg")

QC_COLUMNS = ["dataset", "record_id", "reason", "detail"]
CHAPMAN_SOURCE_FS = 500


def read_catalogue(path: str | Path) -> pd.DataFrame:
    try:
        catalogue = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise PipelineError(f"{path}: cannot read the record catalogue ({error}); rerun the download step")
    catalogue["selected"] = catalogue["selected"] == "True"
    return catalogue


def signal_spec(dataset: str, sampling_rate: int, flat_lead_std_mv: float) -> SignalSpec:
    # PTB-XL ships both rates (records100/records500); Chapman/Ningbo is 500 Hz only.
    source_fs = sampling_rate if dataset == "ptbxl" else CHAPMAN_SOURCE_FS
    return SignalSpec(source_fs=source_fs, fs=sampling_rate, flat_lead_std_mv=flat_lead_std_mv)


def assign_splits(dataset: str, usable: pd.DataFrame, fractions: Mapping[str, float], seed: int) -> pd.Series:
    if dataset == "ptbxl":
        return usable["fold"].astype(int).map(ptbxl_split)
    return stratified_patient_split(usable, fractions, seed)


def _read_one(task: tuple[str, SignalSpec]) -> tuple[bytes, RunningStats] | RecordError:
    """Read, check, compress and summarise one record (in a worker process)."""
    path, spec = task
    try:
        x = read_record(path, spec)
    except RecordError as error:
        return error
    return encode_record(x), RunningStats.of(x)


def _read_all(paths: Sequence[str], spec: SignalSpec, threads: int) -> Iterator[tuple | RecordError]:
    """Read records in order, in `threads` processes (wfdb's parsing holds the GIL)."""
    tasks = [(path, spec) for path in paths]
    if threads <= 1 or len(tasks) < 2:
        yield from map(_read_one, tasks)
        return
    chunk = max(1, min(32, len(tasks) // (threads * 4)))
    with multiprocessing.get_context("fork" if os.name == "posix" else "spawn").Pool(threads) as pool:
        yield from pool.imap(_read_one, tasks, chunksize=chunk)


def preprocess_dataset(
    dataset: str,
    catalogue: pd.DataFrame,
    root: Path,
    out_h5: Path,
    out_qc: Path,
    class_map: ClassMap,
    spec: SignalSpec,
    split_fractions: Mapping[str, float],
    seed: int,
    threads: int = 1,
    attrs: Mapping | None = None,
) -> dict[str, int]:
    """Write the HDF5 file and QC table; returns the number of records per split."""
    qc = [
        (dataset, row.record_id, row.reason, row.detail or row.codes)
        for row in catalogue[catalogue["reason"] != ""].itertuples()
    ]
    # Records whose files the release does not have (their places went to the next records).
    failed = catalogue[catalogue["download_error"] != ""]
    qc += [(dataset, r.record_id, r.download_reason, r.download_error) for r in failed.itertuples()]
    usable = catalogue[catalogue["selected"] & (catalogue["download_error"] == "")].copy()
    if usable.empty:
        raise PipelineError(f"{dataset}: no record could be downloaded and labelled; see the download log")
    usable["split"] = assign_splits(dataset, usable, split_fractions, seed).to_numpy()

    stats = RunningStats()
    per_class = {split: dict.fromkeys(class_map.classes, 0) for split in SPLITS}
    with DatasetWriter(out_h5, spec.samples, SPLITS) as writer:
        paths = [str(root / p) for p in usable["record_path"]]
        for row, result in zip(usable.itertuples(), _read_all(paths, spec, threads)):
            if isinstance(result, RecordError):
                qc.append((dataset, row.record_id, result.reason, result.detail))
                continue
            chunk, record_stats = result
            if row.split == "train":
                stats = stats.merge(record_stats)
            writer.append_encoded(row.split, chunk, class_map.index(row.label), row.record_id, row.patient_id, dataset)
            per_class[row.split][row.label] += 1
        if stats.count == 0:
            raise PipelineError(f"{dataset}: no usable training record is left after QC; see {out_qc}")
        writer.finish(
            {
                **(attrs or {}),
                "dataset": dataset,
                "classes": list(class_map.classes),
                "leads": list(STANDARD_LEADS),
                "fs": spec.fs,
                "seconds": spec.seconds,
                "units": "mV",
                "norm_mean": stats.mean,
                "norm_std": stats.std,
                "norm_count": stats.count,
                "records_per_class": per_class,
            }
        )
        write_qc(qc, out_qc)
    _warn_empty_classes(dataset, per_class)
    return dict(writer.counts)


def write_qc(rows: Sequence[tuple], path: Path) -> None:
    table = pd.DataFrame(rows, columns=QC_COLUMNS).sort_values(["reason", "record_id"], kind="stable")
    write_csv_atomically(table, path)
    counts = table["reason"].value_counts().to_dict()
    log.info("QC: %d records excluded %s -> %s", len(table), counts, path)


def _warn_empty_classes(dataset: str, per_class: Mapping[str, Mapping[str, int]]) -> None:
    for split, counts in per_class.items():
        empty = [name for name, n in counts.items() if n == 0]
        if empty:
            log.warning("%s: split %s has no record of classes %s", dataset, split, empty)


def merge_datasets(inputs: Mapping[str, Path], out_h5: Path, attrs: Mapping | None = None) -> dict[str, int]:
    """The union of several preprocessed sets, split by split, normalisation refitted on the
    union of their training splits (exactly, from the stored per-lead statistics)."""
    metas = {name: metadata(path) for name, path in inputs.items()}
    first_name, first = next(iter(metas.items()))
    for name, meta in metas.items():
        for key in ("classes", "leads", "fs", "seconds", "units"):
            if meta[key] != first[key]:
                raise PipelineError(
                    f"cannot merge {inputs[name]} with {inputs[first_name]}: their {key!r} differ "
                    f"({meta[key]} vs {first[key]}); preprocess both with the same config"
                )
    stats = RunningStats()
    per_class = {split: dict.fromkeys(first["classes"], 0) for split in SPLITS}
    samples = first["fs"] * first["seconds"]
    with DatasetWriter(out_h5, samples, SPLITS) as writer:
        for name, path in inputs.items():
            stats = stats.merge(RunningStats.from_attrs(metas[name]))
            with open_store(path) as handle:
                for split in SPLITS:
                    group = handle[split]
                    n = group["x"].shape[0]
                    for start in range(0, n, 1024):
                        stop = min(n, start + 1024)
                        writer.append_block(
                            split,
                            group["x"][start:stop],
                            group["y"][start:stop],
                            group["record_id"].asstr()[start:stop].tolist(),
                            group["patient_id"].asstr()[start:stop].tolist(),
                            group["source"].asstr()[start:stop].tolist(),
                        )
                    for class_name, count in metas[name]["records_per_class"][split].items():
                        per_class[split][class_name] += count
        writer.finish(
            {
                **(attrs or {}),
                "dataset": "merged",
                "merged_from": list(inputs),
                **{key: first[key] for key in ("classes", "leads", "fs", "seconds", "units")},
                "norm_mean": stats.mean,
                "norm_std": stats.std,
                "norm_count": stats.count,
                "records_per_class": per_class,
            }
        )
    _warn_empty_classes("merged", per_class)
    return dict(writer.counts)
