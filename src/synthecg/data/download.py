"""What to fetch for each dataset: index files first, then the records the config selects.

Which records are selected depends only on the dataset's index files (PTB-XL's
ptbxl_database.csv; Chapman's RECORDS listings and headers), the config and the seed, never on
which downloads happened to succeed:

* a definitive failure (the release has no such file, or not with these bytes; see
  `physionet.is_definitive`) removes the record, and the next record of its class in the same
  seeded order takes its place, so a per-class budget is met wherever the data exist;
* any other failure (server errors, dropped connections, timeouts) stops the download once every
  other file of the round is fetched, so that a rerun fetches only what is missing.

`download_dataset` returns the record catalogue (every record the dataset offers, with its class
or the reason it has none, whether it is selected, and why it could not be fetched), the manifest
(what the data is: each verified file's SHA-256 and size, the same from any copy of the release)
and the location (where the verified files lie and where they came from this time).
"""

import logging
from collections import Counter
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from synthecg.data.labels import CATALOGUE_COLUMNS, ClassMap, chapman_catalogue_row, ptbxl_catalogue
from synthecg.data.physionet import CHECKSUMS_FILE, SOURCES, Mirror, checked_relpath, is_definitive
from synthecg.data.splits import ptbxl_split, select_per_class
from synthecg.errors import DownloadError, PipelineError

log = logging.getLogger("synthecg")

# File extensions of one record's signal, besides its header (.hea).
SIGNAL_EXTENSION = {"ptbxl": ".dat", "chapman": ".mat"}
CHAPMAN_HEADER_BATCH = 256
LISTED_FAILURES = 10  # a failed download names this many files in its message; the log has all


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
    backoff: float = 1.0,
) -> tuple[pd.DataFrame, dict, dict]:
    if dataset not in SOURCES:
        raise PipelineError(f"unknown dataset {dataset!r}; choose from {sorted(SOURCES)}")
    try:
        mirror = Mirror(base, SOURCES[dataset], cache_root, workers=workers, retries=retries, backoff=backoff)
    except DownloadError as error:  # SHA256SUMS.txt
        stop_on_transient(dataset, None, {CHECKSUMS_FILE: error})
        raise
    budget = max_records_per_class
    headers = None
    if dataset == "ptbxl":
        catalogue = _ptbxl_catalogue(mirror, class_map, sampling_rate)
    else:
        headers = ChapmanHeaders(mirror, class_map, seed)
        catalogue = headers.read_until(budget)
    unavailable: dict[int, DownloadError] = {}  # catalogue row -> the definitive failure of one of its files
    tried: set[int] = set()
    while True:  # select, fetch, and select again until the selection holds only fetched records
        selected = select_per_class(catalogue, budget, seed, split_fractions, unavailable)
        new = [index for index in catalogue.index[selected] if index not in tried]
        if not new:
            break
        files = {index: _record_files(dataset, catalogue.at[index, "record_path"]) for index in new}
        failures = mirror.fetch_many([f for pair in files.values() for f in pair], f"{dataset} records")
        stop_on_transient(dataset, mirror, failures)
        tried.update(new)
        for index, pair in files.items():
            failed = [failures[relpath] for relpath in pair if relpath in failures]
            if failed:
                unavailable[index] = failed[0]
        if headers is not None and any(index in unavailable for index in new):
            catalogue = headers.read_until(budget, unavailable)  # replacements may lie further on

    catalogue["selected"] = selected
    catalogue["download_error"] = ""
    catalogue["download_reason"] = ""
    for index, error in unavailable.items():
        catalogue.loc[index, ["download_error", "download_reason"]] = [str(error), error.reason]
    counts = catalogue[selected].groupby("label").size().to_dict()
    log.info(
        "%s: records per class %s; %d selected records replaced because their files do not exist in the release",
        dataset, counts, len(unavailable),
    )
    manifest = {
        "dataset": dataset,
        "title": mirror.source.title,
        "release": mirror.source.path,
        "selected_per_class": counts,
        "files": mirror.verified_files(),
    }
    return catalogue, manifest, mirror.location_record()


def _record_files(dataset: str, record_path: str) -> list[str]:
    return [record_path + ".hea", record_path + SIGNAL_EXTENSION[dataset]]


def stop_on_transient(dataset: str, mirror: Mirror | None, failures: Mapping[str, DownloadError]) -> None:
    """Raise if any failure is not definitive: a server error says nothing about the record."""
    stopped = [error for error in failures.values() if not is_definitive(error)]
    if not stopped:
        return
    listed = "\n  ".join(str(error) for error in stopped[:LISTED_FAILURES])
    unlisted = len(stopped) - LISTED_FAILURES
    more = f"\n  ... and {unlisted} more (see the log)" if unlisted > 0 else ""
    kept = f" in {mirror.root}" if mirror is not None and mirror.remote else ""
    raise DownloadError(
        f"{dataset}: {len(stopped)} file(s) could not be fetched, for reasons that are not about the "
        "files themselves (server errors, dropped connections, timeouts, refusals), so the download "
        f"stops rather than drop their records:\n  {listed}{more}\n"
        f"Every file verified so far is kept{kept}. Rerun the same command (Snakemake also reruns the "
        "job itself: config key download.job_retries): only the files not yet verified are fetched, "
        "and partial ones are continued.",
        reason="transient",
    )


def _fetch_index(dataset: str, mirror: Mirror, relpath: str) -> Path:
    """An index file: nothing can be selected without it, so any failure stops the download."""
    try:
        return mirror.fetch(relpath)
    except DownloadError as error:
        stop_on_transient(dataset, mirror, {relpath: error})
        raise


def _warn_unknown_codes(dataset: str, class_map: ClassMap, known: set[str], listing: Path) -> None:
    unknown = sorted(set(class_map.code_to_class.get(dataset, {})) - known)
    if unknown:
        log.warning("config key classes: %s codes %s are not listed in %s (typo?)", dataset, unknown, listing)


def _ptbxl_catalogue(mirror: Mirror, class_map: ClassMap, sampling_rate: int) -> pd.DataFrame:
    database = _fetch_index("ptbxl", mirror, "ptbxl_database.csv")
    statements = _fetch_index("ptbxl", mirror, "scp_statements.csv")
    known = set(pd.read_csv(statements, index_col=0).index.astype(str))
    _warn_unknown_codes("ptbxl", class_map, known, statements)
    catalogue = ptbxl_catalogue(database, class_map, sampling_rate)
    catalogue["record_path"] = [checked_relpath(p, str(database)) for p in catalogue["record_path"]]
    catalogue["split"] = catalogue["fold"].map(ptbxl_split)
    return catalogue


def _chapman_record_paths(mirror: Mirror) -> list[str]:
    """Every record the RECORDS listings name, as `WFDBRecords/NN/NNN/JSxxxxx`."""
    top = _fetch_index("chapman", mirror, "RECORDS")
    folders = [
        checked_relpath(line, str(top)) for line in top.read_text().splitlines() if line.strip()
    ]
    listings = [f"{folder}/RECORDS" for folder in folders]
    failures = mirror.fetch_many(listings, "chapman listings")
    stop_on_transient("chapman", mirror, failures)
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


class ChapmanHeaders:
    """Chapman/Ningbo's labels live in its 45,152 headers: they are read in one seeded order,
    batch by batch, only as far as the budgets need. The order depends on the seed and the
    RECORDS listings alone, so the records a budget reaches are the same on every run."""

    def __init__(self, mirror: Mirror, class_map: ClassMap, seed: int):
        conditions = _fetch_index("chapman", mirror, "ConditionNames_SNOMED-CT.csv")
        known = set(pd.read_csv(conditions, encoding="utf-8-sig", dtype=str)["Snomed_CT"])
        _warn_unknown_codes("chapman", class_map, known, conditions)
        paths = _chapman_record_paths(mirror)
        self.order = [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))]
        self.mirror = mirror
        self.class_map = class_map
        self.wanted = set(class_map.code_to_class.get("chapman", {}).values())
        self.rows: list[dict] = []

    def read_until(self, budget: int | None, unavailable: Collection = ()) -> pd.DataFrame:
        """The catalogue of the headers read, after reading on until every class has `budget`
        records outside `unavailable` (row numbers), or every header is read."""
        while len(self.rows) < len(self.order) and not self._enough(budget, unavailable):
            batch = self.order[len(self.rows) : len(self.rows) + CHAPMAN_HEADER_BATCH]
            failures = self.mirror.fetch_many([path + ".hea" for path in batch], "chapman headers")
            stop_on_transient("chapman", self.mirror, failures)
            self.rows += [
                _chapman_row(self.mirror, path, self.class_map, failures.get(path + ".hea")) for path in batch
            ]
        return pd.DataFrame(self.rows, columns=CATALOGUE_COLUMNS)

    def _enough(self, budget: int | None, unavailable: Collection) -> bool:
        if budget is None:
            return False
        found = Counter(row["label"] for number, row in enumerate(self.rows) if number not in unavailable)
        return all(found[name] >= budget for name in self.wanted)


def _chapman_row(mirror: Mirror, path: str, class_map: ClassMap, failure: DownloadError | None) -> dict:
    row = chapman_catalogue_row(path, [], class_map)
    if failure is not None:
        return {**row, "reason": failure.reason, "detail": str(failure)}
    try:
        header = wfdb.rdheader(str(mirror.root / path))
    except Exception as error:  # wfdb raises bare ValueErrors and more on a malformed header
        return {**row, "reason": "unreadable_header", "detail": f"{mirror.source.path}/{path}.hea: {error}"}
    return chapman_catalogue_row(path, header.comments or [], class_map)


def verified_root(manifest: Mapping, location: Mapping) -> Path:
    """The folder holding a download's files, once each file the manifest lists is found there
    with its verified size: a cache deleted or a local copy moved since the download must stop
    the job, not turn into records excluded as unreadable."""
    root = Path(location["root"])
    for relpath, entry in manifest["files"].items():
        path = root / relpath
        size = path.stat().st_size if path.is_file() else None
        if size != entry["bytes"]:
            found = "is missing" if size is None else f"has {size} bytes"
            raise PipelineError(
                f"{path} {found}, but the download verified {entry['bytes']} bytes there; fetch it "
                "again with `snakemake download --forcerun download_dataset`"
            )
    return root
