"""A PhysioNet-layout mirror at the real releases' sizes, made from the shared mirror's real records.

    .venv/bin/python benchmarks/scale_mirror.py --out /tmp/mirror-full
    .venv/bin/python benchmarks/scale_mirror.py --out /tmp/mirror-quarter \\
        --ptbxl-records 5450 --arrhythmia-records 11288

A benchmark fixture for the paper preset's data stages (issue 21): never commit it, never write
it under results/. The folder it writes is laid out like https://physionet.org/files/:

* `ptb-xl/1.0.3/`: `ptbxl_database.csv` with `--ptbxl-records` rows (release: 21,799),
  `records100/NNN00/NNNNN_lr.{hea,dat}` for each row, `RECORDS`, the source's
  `scp_statements.csv` and `LICENSE.txt`. No `records500/`: the pipeline at its default
  `sampling_rate: 100` (the paper preset keeps it) fetches only `filename_lr`; the
  `filename_hr` column is still filled, as in PhysioNet's CSV.
* `ecg-arrhythmia/1.0.0/`: `--arrhythmia-records` records (release: 45,152) as
  `WFDBRecords/NN/NNN/JSnnnnn.{hea,mat}`, 100 records a subfolder, the `RECORDS` listing of
  subfolders and one `RECORDS` of record names in each subfolder (what the download reads), and
  the source's `ConditionNames_SNOMED-CT.csv`.
* `SHA256SUMS.txt` in each version folder, listing every file there.

Every signal file holds a real record's bytes: the shared mirror's `.dat`/`.mat` files, hard
linked where the filesystem allows (else copied), so the mirror costs little disk beyond its
headers. Each header is the source record's header with the record name and signal file names
rewritten, so it names its own data file and `wfdb.rdrecord` reads it as the source record.

Labels, folds and patients:
* PTB-XL: each row is a source row drawn at random (so `scp_codes`, `strat_fold`, age, sex...
  keep the shared mirror's proportions, which were chosen to follow the release's) under a new
  `ecg_id`, and a `patient_id` of its own. Ids run from 1 with gaps in the release's proportion
  (21,799 rows over ids 1-21,837).
* ecg-arrhythmia: the shared mirror's 16 records carry no sinus rhythm, so with
  `--arrhythmia-labels release` (the default) each record's rhythm is drawn from the published
  rhythm counts of the Chapman-Shaoxing part (Zheng et al., Sci Data 7:48, 2020, 10,646 records:
  SB 3,889, SR 1,826, AFIB 1,780, ST 1,568, SVT 587, AF 445, SI 399, AT 121, AVNRT 16, AVRT 8,
  SAAWR 7; no rhythm table of the Ningbo part was found, so the same proportions stand for the
  whole release). The `#Dx:` line gets that rhythm code plus the source's non-rhythm codes; the
  signal is a source record of that rhythm when the shared mirror has one (ST, SB, AFIB, AT),
  else any source record, so an SR-labelled record may show a tachycardia: fine for timing
  the pipeline, not for judging a classifier. `--arrhythmia-labels source` keeps the source
  headers' codes. Names follow the release: Chapman records JS00001-JS10646 with gaps in the
  release's proportion (10,247 records, 399 gaps), then Ningbo records numbered on without gaps
  (to JS45551 at full size); subfolder NNN holds the ranks 100 x (NNN - 10) onwards, in folder
  NN = NNN // 10 (JS00001 -> 01/010, JS23074 -> 23/236, as in the release). The database has
  no patient ids: the pipeline takes each record as its own patient.

Besides the two version folders, the output root holds `scale_mirror.json` (what was written,
with the seed and sizes) and `scale_mirror_sources.csv` (which source record each new record
copies). Prints counts, bytes (apparent, and new on disk with hard links counted once) and
seconds.
"""

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from synthecg.data.physionet import sha256_of as sha256_file  # noqa: E402  (the download's own checksum)

PTBXL = "ptb-xl/1.0.3"
ARRHYTHMIA = "ecg-arrhythmia/1.0.0"
CHECKSUMS = "SHA256SUMS.txt"
MARKER = "scale_mirror.json"

# PTB-XL 1.0.3: 21,799 records over ecg_ids 1-21,837 (1.0.2 and 1.0.3 dropped 38).
PTBXL_RELEASE_RECORDS = 21_799
PTBXL_RELEASE_IDS = 21_837
# ecg-arrhythmia 1.0.0: Chapman-Shaoxing 10,247 records over JS00001-JS10646, then Ningbo
# JS10647-JS45551 (34,905 records, no gaps); 45,152 in all.
ARRHYTHMIA_RELEASE_RECORDS = 45_152
CHAPMAN_RELEASE_RECORDS = 10_247
CHAPMAN_RELEASE_IDS = 10_646
RECORDS_PER_SUBFOLDER = 100
FIRST_SUBFOLDER = 10

# Rhythm counts of the 10,646 Chapman-Shaoxing records (Zheng et al. 2020, Sci Data 7:48), by
# SNOMED-CT code as ecg-arrhythmia writes them in `#Dx:`.
PUBLISHED_RHYTHMS = {
    "426177001": 3889,  # SB, sinus bradycardia
    "426783006": 1826,  # SR, sinus rhythm
    "164889003": 1780,  # AFIB, atrial fibrillation
    "427084000": 1568,  # ST, sinus tachycardia
    "426761007": 587,  # SVT, supraventricular tachycardia
    "164890007": 445,  # AF, atrial flutter
    "427393009": 399,  # SI, sinus irregularity
    "713422000": 121,  # AT, atrial tachycardia
    "233896004": 16,  # AVNRT
    "233897008": 8,  # AVRT
    "195101003": 7,  # SAAWR, sinus atrium to atrial wandering rhythm
}


@dataclass
class Tally:
    """What was written: files and bytes per kind, and each file's SHA-256 per version folder."""

    files: Counter = field(default_factory=Counter)
    apparent_bytes: Counter = field(default_factory=Counter)  # every file at its size
    new_bytes: Counter = field(default_factory=Counter)  # written or copied (links cost nothing)
    linked: int = 0
    copied: int = 0
    checksums: dict = field(default_factory=dict)  # version folder -> {relpath: sha256}


class MirrorWriter:
    """Writes files into the output mirror, linking signal files and hashing each content once."""

    def __init__(self, out: Path, link: bool = True):
        self.out = out
        self.link = link
        self.tally = Tally()
        self._source_digest: dict[Path, str] = {}
        self._made_dirs: set[Path] = set()

    def _dest(self, version: str, relpath: str) -> Path:
        dest = self.out / version / relpath
        if dest.parent not in self._made_dirs:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(dest.parent)
        return dest

    def write_bytes(self, version: str, relpath: str, data: bytes, kind: str) -> None:
        self._dest(version, relpath).write_bytes(data)
        self._count(version, relpath, hashlib.sha256(data).hexdigest(), len(data), kind, new=True)

    def place(self, version: str, relpath: str, source: Path, kind: str) -> None:
        """`source`'s bytes at `relpath`: a hard link where possible (same content, same
        SHA-256, so it is hashed once per source file), else a copy."""
        dest = self._dest(version, relpath)
        linked = False
        if self.link:
            try:
                os.link(source, dest)
                linked = True
            except OSError:  # another filesystem, too many links, no permission
                pass
        if not linked:
            shutil.copyfile(source, dest)
        if source not in self._source_digest:
            self._source_digest[source] = sha256_file(source)
        self.tally.linked += linked
        self.tally.copied += not linked
        size = source.stat().st_size
        self._count(version, relpath, self._source_digest[source], size, kind, new=not linked)

    def _count(self, version: str, relpath: str, digest: str, size: int, kind: str, new: bool) -> None:
        self.tally.checksums.setdefault(version, {})[relpath] = digest
        self.tally.files[kind] += 1
        self.tally.apparent_bytes[kind] += size
        if new:
            self.tally.new_bytes[kind] += size

    def write_checksums(self, version: str) -> None:
        """SHA256SUMS.txt in PhysioNet's format: `<sha256>  <path>` for every other file."""
        entries = self.tally.checksums[version]
        text = "".join(f"{entries[path]}  {path}\n" for path in sorted(entries))
        (self.out / version / CHECKSUMS).write_text(text)
        size = len(text.encode())
        self.tally.files["listings"] += 1
        self.tally.apparent_bytes["listings"] += size
        self.tally.new_bytes["listings"] += size


def renamed_header(text: str, new_name: str, dx: list[str] | None = None) -> str:
    """A WFDB header with its record renamed: the record line's name and each signal line's
    file name (`<old>.<ext>` -> `<new>.<ext>`); line endings kept. `dx` replaces the `#Dx:`
    comment's codes when given."""
    lines = text.splitlines(keepends=True)
    record_line = lines[0].split(" ", 1)
    old_name = record_line[0]
    n_signals = int(record_line[1].split()[0])
    lines[0] = new_name + " " + record_line[1]
    for number in range(1, 1 + n_signals):
        file_name, rest = lines[number].split(" ", 1)
        stem, dot, extension = file_name.partition(".")
        if stem != old_name:
            raise ValueError(f"signal line {number} names {file_name!r}, not a file of record {old_name!r}")
        lines[number] = f"{new_name}{dot}{extension} {rest}"
    if dx is not None:
        for number, line in enumerate(lines):
            key, _, value = line.partition(":")
            if key.strip().lower() == "#dx":
                ending = line[len(line.rstrip("\r\n")) :]
                lines[number] = f"{key}: {','.join(dx)}{ending}"
                break
        else:
            raise ValueError(f"header of {old_name!r} has no #Dx line")
    return "".join(lines)


def header_codes(text: str) -> list[str]:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "#dx":
            return [code.strip() for code in value.split(",") if code.strip()]
    return []


def ids_with_gaps(count: int, gaps: int, rng: np.random.Generator, first: int = 1) -> np.ndarray:
    """`count` increasing ids from `first` over `count + gaps` numbers, `gaps` of them left out
    at random (never `first`)."""
    span = count + gaps
    dropped = rng.choice(np.arange(first + 1, first + span), size=gaps, replace=False) if gaps else []
    keep = np.ones(span, dtype=bool)
    keep[np.asarray(dropped, dtype=int) - first] = False
    return np.arange(first, first + span)[keep]


# -- PTB-XL ---------------------------------------------------------------------------------------
def ptbxl_folder(ecg_id: int) -> str:
    return f"{ecg_id // 1000 * 1000:05d}"


def write_ptbxl(writer: MirrorWriter, source: Path, count: int, rng: np.random.Generator) -> list[tuple]:
    """The PTB-XL version folder; returns (new record path, source record path) pairs."""
    root = source / PTBXL
    with open(root / "ptbxl_database.csv", newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        columns = next(reader)
        rows = [row for row in reader]
    column = {name: columns.index(name) for name in ("ecg_id", "patient_id", "filename_lr", "filename_hr")}
    rows = [row for row in rows if (root / (row[column["filename_lr"]] + ".hea")).is_file()]
    if not rows:
        raise SystemExit(f"{root}/ptbxl_database.csv: no row has its records100 files in {root}")

    gaps = round(count * (PTBXL_RELEASE_IDS - PTBXL_RELEASE_RECORDS) / PTBXL_RELEASE_RECORDS)
    ecg_ids = ids_with_gaps(count, gaps, rng)
    drawn = rng.integers(len(rows), size=count)
    patients = rng.permutation(count) + 1  # one patient per record, in no particular order

    table = io.StringIO()
    out_csv = csv.writer(table, lineterminator="\n")
    out_csv.writerow(columns)
    listing, pairs = [], []
    headers: dict[str, str] = {}
    for ecg_id, source_row, patient in zip(ecg_ids, drawn, patients):
        row = list(rows[source_row])
        source_path = row[column["filename_lr"]]
        name = f"{ecg_id:05d}"
        new_path = f"records100/{ptbxl_folder(ecg_id)}/{name}_lr"
        row[column["ecg_id"]] = str(ecg_id)
        row[column["patient_id"]] = f"{patient}.0"
        row[column["filename_lr"]] = new_path
        row[column["filename_hr"]] = f"records500/{ptbxl_folder(ecg_id)}/{name}_hr"
        out_csv.writerow(row)
        if source_path not in headers:
            headers[source_path] = (root / (source_path + ".hea")).read_bytes().decode("utf-8")
        header = renamed_header(headers[source_path], f"{name}_lr")
        writer.write_bytes(PTBXL, new_path + ".hea", header.encode(), "headers")
        writer.place(PTBXL, new_path + ".dat", root / (source_path + ".dat"), "signals")
        listing.append(new_path)
        pairs.append((PTBXL, new_path, source_path))

    writer.write_bytes(PTBXL, "ptbxl_database.csv", table.getvalue().encode(), "listings")
    writer.write_bytes(PTBXL, "RECORDS", "".join(f"{path}\n" for path in listing).encode(), "listings")
    for name in ("scp_statements.csv", "LICENSE.txt"):
        if (root / name).is_file():
            writer.place(PTBXL, name, root / name, "listings")
    writer.write_checksums(PTBXL)
    return pairs


# -- ecg-arrhythmia -------------------------------------------------------------------------------
def arrhythmia_names(count: int, rng: np.random.Generator) -> list[str]:
    """Record paths `WFDBRecords/NN/NNN/JSnnnnn` in the release's numbering and folders."""
    chapman = round(count * CHAPMAN_RELEASE_RECORDS / ARRHYTHMIA_RELEASE_RECORDS)
    gaps = round(chapman * (CHAPMAN_RELEASE_IDS - CHAPMAN_RELEASE_RECORDS) / CHAPMAN_RELEASE_RECORDS)
    ids = list(ids_with_gaps(chapman, gaps, rng))
    next_id = chapman + gaps + 1
    ids += range(next_id, next_id + count - chapman)
    if ids and ids[-1] > 99_999:
        raise SystemExit(f"--arrhythmia-records {count}: more than JS99999 does not fit the release's names")
    paths = []
    for rank, number in enumerate(ids):
        subfolder = FIRST_SUBFOLDER + rank // RECORDS_PER_SUBFOLDER
        paths.append(f"WFDBRecords/{subfolder // 10:02d}/{subfolder:03d}/JS{number:05d}")
    return paths


def write_arrhythmia(
    writer: MirrorWriter, source: Path, count: int, rng: np.random.Generator, labels: str
) -> list[tuple]:
    root = source / ARRHYTHMIA
    sources = sorted(path.with_suffix("") for path in (root / "WFDBRecords").glob("*/*/*.hea"))
    if not sources:
        raise SystemExit(f"{root}/WFDBRecords: no records (*/*/*.hea) to copy")
    headers = {path: path.with_suffix(".hea").read_bytes().decode("utf-8") for path in sources}
    codes = {path: header_codes(headers[path]) for path in sources}

    rhythms = list(PUBLISHED_RHYTHMS)
    weights = np.array([PUBLISHED_RHYTHMS[code] for code in rhythms], dtype=float)
    by_rhythm = {code: [path for path in sources if code in codes[path]] for code in rhythms}

    paths = arrhythmia_names(count, rng)
    listings: dict[str, list[str]] = {}
    pairs = []
    drawn_rhythms = rng.choice(len(rhythms), size=count, p=weights / weights.sum())
    drawn_any = rng.integers(len(sources), size=count)
    drawn_within = rng.random(size=count)
    for new_path, rhythm_index, any_index, within in zip(paths, drawn_rhythms, drawn_any, drawn_within):
        folder, name = new_path.rsplit("/", 1)
        if labels == "release":
            rhythm = rhythms[rhythm_index]
            matching = by_rhythm[rhythm]
            source_path = matching[int(within * len(matching))] if matching else sources[any_index]
            dx = [rhythm] + [code for code in codes[source_path] if code not in PUBLISHED_RHYTHMS]
        else:
            source_path = sources[any_index]
            dx = None
        header = renamed_header(headers[source_path], name, dx)
        writer.write_bytes(ARRHYTHMIA, new_path + ".hea", header.encode(), "headers")
        writer.place(ARRHYTHMIA, new_path + ".mat", source_path.with_suffix(".mat"), "signals")
        listings.setdefault(folder, []).append(name)
        pairs.append((ARRHYTHMIA, new_path, str(source_path.relative_to(root))))

    for folder, names in listings.items():
        writer.write_bytes(ARRHYTHMIA, f"{folder}/RECORDS", "".join(f"{n}\n" for n in names).encode(), "listings")
    top = "".join(f"{folder}/\n" for folder in listings)
    writer.write_bytes(ARRHYTHMIA, "RECORDS", top.encode(), "listings")
    name = "ConditionNames_SNOMED-CT.csv"
    if (root / name).is_file():
        writer.place(ARRHYTHMIA, name, root / name, "listings")
    writer.write_checksums(ARRHYTHMIA)
    return pairs


# -- the whole mirror ------------------------------------------------------------------------------
def build_mirror(
    out: Path,
    source: Path,
    ptbxl_records: int = PTBXL_RELEASE_RECORDS,
    arrhythmia_records: int = ARRHYTHMIA_RELEASE_RECORDS,
    seed: int = 0,
    arrhythmia_labels: str = "release",
    link: bool = True,
) -> dict:
    """Write the mirror into `out` (which must be missing or empty); returns its summary."""
    out, source = Path(out), Path(source)
    for version in (PTBXL, ARRHYTHMIA):
        if not (source / version).is_dir():
            raise SystemExit(f"--source {source}: no {version}/ there; point it at ../shared/data/physionet")
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"--out {out} is not empty; give a new folder (or --force to replace a mirror made here)")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # One generator per dataset, so that either size can change without moving the other's draws.
    ptbxl_rng, arrhythmia_rng = (np.random.default_rng([seed, n]) for n in range(2))
    writer = MirrorWriter(out, link=link)
    pairs = write_ptbxl(writer, source, ptbxl_records, ptbxl_rng)
    pairs += write_arrhythmia(writer, source, arrhythmia_records, arrhythmia_rng, arrhythmia_labels)
    with open(out / "scale_mirror_sources.csv", "w", newline="") as handle:
        table = csv.writer(handle, lineterminator="\n")
        table.writerow(["release", "record_path", "source_record_path"])
        table.writerows(pairs)
    tally = writer.tally
    summary = {
        "what": "benchmark fixture (benchmarks/scale_mirror.py): real signals under new names; never commit it",
        "source": str(source.resolve()),
        "seed": seed,
        "ptbxl_records": ptbxl_records,
        "arrhythmia_records": arrhythmia_records,
        "arrhythmia_labels": arrhythmia_labels,
        "files": dict(tally.files),
        "files_total": sum(tally.files.values()),
        "apparent_bytes": sum(tally.apparent_bytes.values()),
        "new_bytes": sum(tally.new_bytes.values()),
        "apparent_bytes_by_kind": dict(tally.apparent_bytes),
        "new_bytes_by_kind": dict(tally.new_bytes),
        "files_linked": tally.linked,
        "files_copied": tally.copied,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / MARKER).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="folder to write (missing or empty)")
    parser.add_argument("--ptbxl-records", type=int, default=PTBXL_RELEASE_RECORDS)
    parser.add_argument("--arrhythmia-records", type=int, default=ARRHYTHMIA_RELEASE_RECORDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared/data/physionet")
    parser.add_argument("--arrhythmia-labels", choices=["release", "source"], default="release")
    parser.add_argument("--copy", action="store_true", help="copy signal files instead of hard-linking them")
    parser.add_argument("--force", action="store_true", help=f"replace --out if it holds a mirror made here ({MARKER})")
    args = parser.parse_args(argv)
    if args.force and args.out.exists():
        if not (args.out / MARKER).is_file():
            raise SystemExit(f"--force: {args.out} has no {MARKER}; not deleting a folder this script did not write")
        shutil.rmtree(args.out)
    summary = build_mirror(
        args.out, args.source, args.ptbxl_records, args.arrhythmia_records,
        args.seed, args.arrhythmia_labels, link=not args.copy,
    )
    mib = 1 << 20
    print(f"wrote {args.out}: PTB-XL {summary['ptbxl_records']:,} records, "
          f"ecg-arrhythmia {summary['arrhythmia_records']:,} records, {summary['files_total']:,} files")
    for kind, files in sorted(summary["files"].items()):
        print(f"  {kind:9s} {files:8,d} files  {summary['apparent_bytes_by_kind'][kind] / mib:9.1f} MiB apparent"
              f"  {summary['new_bytes_by_kind'].get(kind, 0) / mib:9.1f} MiB new")
    print(f"  total: {summary['apparent_bytes'] / mib:.1f} MiB apparent, {summary['new_bytes'] / mib:.1f} MiB "
          f"written or copied ({summary['files_linked']:,} files hard-linked, "
          f"{summary['files_copied']:,} copied), {summary['seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
