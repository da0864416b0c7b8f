"""What to fetch for each dataset: index files first, then the records the config selects.

`download_dataset` returns the record catalogue (every record the dataset offers, with its
class or the reason it has none, and whether it was selected and fetched) and the manifest
of every file touched.
"""

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from synthecg.data.labels import ClassMap, chapman_catalogue_row, ptbxl_catalogue
from synthecg.data.physionet import SOURCES, Mirror, checked_relpath
from synthecg.data.splits import ptbxl_split, select_per_class
from synthecg.errors import DownloadError, PipelineError

log = logging.getLogger("synthecg")

# File extensions of one record's signal, besides its header (.hea).
SIGNAL_EXTENSION = {"ptbxl": ".dat", "chapman": ".mat"}
CHAPMAN_HEADER_BATCH = 256


def download_dataset(
    dataset: str,
    base: str,
    cache_root: Path,
    class_map: ClassMap,
    max_records_per_class: int | None,
    sampling_rate: int,
    seed: int,
    split_fractions: Mapping[str, float],
    workers: int = 8,
    retries: int = 4,
) -> tuple[pd.DataFrame, dict]:
    if dataset not in SOURCES:
        raise PipelineError(f"unknown dataset {dataset!r}; choose from {sorted(SOURCES)}")
    mirror = Mirror(base, SOURCES[dataset], cache_root, workers=workers, retries=retries)
    if dataset == "ptbxl":
        catalogue = _ptbxl_catalogue(mirror, class_map, sampling_rate)
    else:
        catalogue = _chapman_catalogue(mirror, class_map, max_records_per_class, seed)
    catalogue["selected"] = select_per_class(catalogue, max_records_per_class, seed, split_fractions)
    catalogue["download_error"] = ""
    catalogue["download_reason"] = ""
    selected = catalogue[catalogue["selected"]]
    files = {
        row.Index: [row.record_path + ".hea", row.record_path + SIGNAL_EXTENSION[dataset]]
        for row in selected.itertuples()
    }
    failures = mirror.fetch_many([f for pair in files.values() for f in pair], f"{dataset} records")
    for index, pair in files.items():
        for relpath in pair:
            if relpath in failures:
                catalogue.loc[index, "download_error"] = str(failures[relpath])
                catalogue.loc[index, "download_reason"] = failures[relpath].reason
    counts = catalogue[catalogue["selected"]].groupby("label").size().to_dict()
    log.info("%s: selected records per class %s; %d failed to download", dataset, counts, len(failures))
    manifest = mirror.manifest()
    manifest["selected_per_class"] = counts
    return catalogue, manifest


def _warn_unknown_codes(dataset: str, class_map: ClassMap, known: set[str], listing: Path) -> None:
    unknown = sorted(set(class_map.code_to_class.get(dataset, {})) - known)
    if unknown:
        log.warning("config key classes: %s codes %s are not listed in %s (typo?)", dataset, unknown, listing)


def _ptbxl_catalogue(mirror: Mirror, class_map: ClassMap, sampling_rate: int) -> pd.DataFrame:
    database = mirror.fetch("ptbxl_database.csv")
    statements = mirror.fetch("scp_statements.csv")
    known = set(pd.read_csv(statements, index_col=0).index.astype(str))
    _warn_unknown_codes("ptbxl", class_map, known, statements)
    catalogue = ptbxl_catalogue(database, class_map, sampling_rate)
    catalogue["record_path"] = [checked_relpath(p, str(database)) for p in catalogue["record_path"]]
    catalogue["split"] = catalogue["fold"].map(ptbxl_split)
    return catalogue


def _chapman_record_paths(mirror: Mirror) -> list[str]:
    """Every record the RECORDS listings name, as `WFDBRecords/NN/NNN/JSxxxxx`."""
    top = mirror.fetch("RECORDS")
    folders = [
        checked_relpath(line, str(top)) for line in top.read_text().splitlines() if line.strip()
    ]
    listings = [f"{folder}/RECORDS" for folder in folders]
    failures = mirror.fetch_many(listings, "chapman listings")
    if failures:
        raise DownloadError(f"cannot list every Chapman folder: {next(iter(failures.values()))}")
    paths = []
    for folder, listing in zip(folders, listings):
        for line in (mirror.root / listing).read_text().splitlines():
            if line.strip():
                name = checked_relpath(line, str(mirror.root / listing))
                if "/" in name:
                    raise DownloadError(f"{mirror.root / listing}: {line!r} is not a plain record name")
                paths.append(f"{folder}/{name}")
    return paths


def _chapman_catalogue(
    mirror: Mirror, class_map: ClassMap, budget: int | None, seed: int
) -> pd.DataFrame:
    """Read headers in a seeded random order until every class has its budget (or all are read).

    Labels live in the headers, so with a budget only a fraction of the 45,152 headers is
    fetched; the order depends on the seed alone, so the selection is reproducible.
    """
    conditions = mirror.fetch("ConditionNames_SNOMED-CT.csv")
    known = set(pd.read_csv(conditions, encoding="utf-8-sig", dtype=str)["Snomed_CT"])
    _warn_unknown_codes("chapman", class_map, known, conditions)
    paths = _chapman_record_paths(mirror)
    order = [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))]
    wanted = {c for c in class_map.code_to_class.get("chapman", {}).values()}
    rows: list[dict] = []
    for start in range(0, len(order), CHAPMAN_HEADER_BATCH):
        batch = order[start : start + CHAPMAN_HEADER_BATCH]
        failures = mirror.fetch_many([p + ".hea" for p in batch], "chapman headers")
        for path in batch:
            rows.append(_chapman_row(mirror, path, class_map, failures.get(path + ".hea")))
        if budget is not None:
            found = pd.Series([r["label"] for r in rows]).value_counts()
            if all(found.get(c, 0) >= budget for c in wanted):
                break
    return pd.DataFrame(rows)


def _chapman_row(mirror: Mirror, path: str, class_map: ClassMap, failure: DownloadError | None) -> dict:
    row = chapman_catalogue_row(path, [], class_map)
    if failure is not None:
        return {**row, "reason": failure.reason, "detail": str(failure)}
    try:
        header = wfdb.rdheader(str(mirror.root / path))
    except Exception as error:  # wfdb raises bare ValueErrors and more on a malformed header
        return {**row, "reason": "unreadable_header", "detail": f"{mirror.root / path}.hea: {error}"}
    return chapman_catalogue_row(path, header.comments or [], class_map)
