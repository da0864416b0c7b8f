"""The tables and plots over a preset's whole grid of classifier runs at the releases' test sizes, timed.

    .venv/bin/python benchmarks/tables_at_scale.py --workdir /tmp/tables-paper                # the paper grid
    .venv/bin/python benchmarks/tables_at_scale.py --workdir /tmp/t --preset presets/cpu.yaml --ptbxl-test 167
    .venv/bin/python benchmarks/tables_at_scale.py --workdir /tmp/tables-paper --report  # and `snakemake --report`

The grid is the one Snakemake plans: the classifier metrics.json files that `summarise_tables`
takes as input in a dry run of `tables` with the preset (705 for presets/paper.yaml). Each file is
written by the pipeline's own scoring (`evaluation.metrics.classification_metrics`: macro scores,
bootstrap intervals and the stored test predictions the tables resample) on planted predictions
over test splits of the given sizes (defaults: a tenth of the releases' records the paper preset
keeps, 1,980 PTB-XL and 4,370 Chapman records, with those datasets' rough class shares); a merged
run carries each source's part as `classifier.experiments.run_experiment` writes it (`by_source`,
`test_sources`, the parts' record digests equal to the single runs'). Writing them is not timed.
Then, timed, each in a fresh process with its peak memory: `tables.write_tables` (every table of
`summarise_tables`), and the plots whose work grows with the runs (transfer curves and
augmentation gains from its tables; the confusion matrices from every real and synthetic-only
run's metrics.json). The quality and closeness tables get no reports here: they hold a row per
generator and class or measure, not per run.

With --report, every other output of `all` gets a stand-in (each PNG a copy of the transfer plot, so
the report embeds images of a real plot's size; every other file empty: the report reads only the
files it shows, and the HDF5 files and models are never opened) and `snakemake --touch --forceall`
records each job's metadata, as a finished run leaves it (the report reads it for its statistics).
Then, timed like the rest, `snakemake --report results/report.html` as `make run` ends: the DAG of
`all`, the report's files (the tables written above, the plots drawn above at the pipeline's
paths) and every output's metadata. Goal (issue 21): tables, plots and report over the paper
preset's runs in at most 2 minutes.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from synthecg.data.store import records_digest  # noqa: E402
from synthecg.evaluation.metrics import classification_metrics  # noqa: E402

CLASSES = ["SR", "SB", "AFIB", "GSVT"]
CLASS_SHARES = {"ptbxl": [0.80, 0.03, 0.08, 0.09], "chapman": [0.19, 0.36, 0.18, 0.27]}  # rough, per release
RUN = re.compile(r"results/classifier/(?P<dataset>[^/]+)/(?P<experiment>[^/]+)/(?P<generator>[^/]+)/"
                 r"(?P<setting>[^/]+)/seed(?P<seed>\d+)/metrics\.json")


def snakemake(preset: Path, *args: str) -> list[str]:
    """A Snakemake command line over this repository's Snakefile with the preset."""
    return [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(REPO / "Snakefile"),
            "--configfile", str(preset), *args]


def dry_run(preset: Path, target: str) -> str:
    """What a dry run of `target` prints in an empty directory: every job of its DAG."""
    with __import__("tempfile").TemporaryDirectory() as empty:
        return subprocess.run(snakemake(preset, "-n", target, "--directory", empty), capture_output=True, text=True,
                              check=True).stdout


def planned_runs(preset: Path) -> list[str]:
    """The classifier metrics.json paths summarise_tables takes in a dry run of `tables`."""
    block = dry_run(preset, "tables").split("rule summarise_tables:", 1)[1]
    inputs = block.split("input:", 1)[1].split("\n", 1)[0]
    return [path for path in (p.strip() for p in inputs.split(",")) if RUN.fullmatch(path)]


def stand_ins(workdir: Path, preset: Path, png: Path) -> int:
    """Every output of `all` missing from `workdir` as a stand-in, then every job's metadata; how many were missing."""
    lines = dry_run(preset, "all").splitlines()
    outputs = {p.strip() for line in lines if line.startswith("    output: ") for p in line.split(":", 1)[1].split(",")}
    missing = [workdir / path for path in sorted(outputs) if not (workdir / path).exists()]
    for path in missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png.read_bytes() if path.suffix == ".png" else b"")
    # --forceall: each job touched in the DAG's order, so all are up to date and each has its metadata.
    touch = snakemake(preset, "--directory", str(workdir), "--touch", "--forceall", "--cores", "1", "all")
    done = subprocess.run(touch, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"snakemake --touch failed:\n{done.stderr[-3000:]}")
    return len(missing)


def test_split(dataset: str, sizes: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and record ids of a dataset's test split: the merged set's is its sources' in turn."""
    if dataset == "merged":
        parts = [test_split(source, sizes) for source in ("ptbxl", "chapman")]
        return np.concatenate([y for y, _ in parts]), np.concatenate([ids for _, ids in parts])
    n = sizes[dataset]
    counts = np.maximum(1, np.round(np.asarray(CLASS_SHARES[dataset]) * n).astype(int))
    y = np.repeat(np.arange(len(CLASSES)), counts)
    return y, np.array([f"{dataset}:{i}" for i in range(len(y))])


def write_run(path: Path, sizes: dict[str, int]) -> None:
    keys = RUN.search(path.as_posix()).groupdict()
    y, ids = test_split(keys["dataset"], sizes)
    rng = np.random.default_rng(zlib.crc32(path.as_posix().encode()))
    logits = rng.normal(size=(len(y), len(CLASSES)))
    logits[np.arange(len(y)), y] += rng.uniform(0.5, 2.5)  # some skill, its own per run
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    metrics = classification_metrics(y, probabilities, CLASSES)
    metrics["test_records_sha256"] = records_digest(ids)
    metrics["train_records_per_class"] = {name: 100 for name in CLASSES}
    if keys["dataset"] == "merged":  # as run_experiment scores a merged run on each source's part
        sources = np.array([record.split(":")[0] for record in ids])
        metrics["test_sources"] = sources.tolist()
        metrics["by_source"] = {}
        for source in ("ptbxl", "chapman"):
            part = sources == source
            scores = classification_metrics(y[part], probabilities[part], CLASSES, intervals=False)
            metrics["by_source"][source] = {key: scores[key] for key in ("n_test", "macro_f1", "macro_auroc", "accuracy",
                                                                         "balanced_accuracy", "per_class_f1", "missing")}
            metrics["by_source"][source]["test_records_sha256"] = records_digest(ids[part])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics))


def timed(code: str, workdir: Path) -> dict:
    """Wall seconds and peak RSS of `code` run in a fresh Python process in `workdir`."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": round(time.perf_counter() - started, 1), **report}


PROLOGUE = f"""
import json, resource, sys, time
sys.path.insert(0, {str(REPO / 'src')!r})
from pathlib import Path
started = time.perf_counter()
"""
EPILOGUE = """
print(json.dumps({"inside_s": round(time.perf_counter() - started, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--preset", type=Path, default=REPO / "presets/paper.yaml")
    parser.add_argument("--ptbxl-test", type=int, default=1980)
    parser.add_argument("--chapman-test", type=int, default=4370)
    parser.add_argument("--processes", type=int, default=2, help="processes writing the runs (not timed)")
    parser.add_argument("--report", action="store_true", help="also time `snakemake --report` over stand-ins")
    args = parser.parse_args()
    sizes = {"ptbxl": args.ptbxl_test, "chapman": args.chapman_test}
    paths = planned_runs(args.preset)
    started = time.perf_counter()
    targets = [args.workdir / path for path in paths]
    with ProcessPoolExecutor(args.processes) as pool:
        list(pool.map(write_run, targets, [sizes] * len(targets), chunksize=8))
    written_s = time.perf_counter() - started
    megabytes = sum(path.stat().st_size for path in targets) / 2**20
    tables = args.workdir / "results/tables"
    tables.mkdir(parents=True, exist_ok=True)
    (args.workdir / "results/plots/confusion").mkdir(parents=True, exist_ok=True)
    outputs = {name: str(tables / f"{stem}.{kind}") for stem in
               ("quality", "augmentation", "transfer", "fidelity", "per_class", "comparisons", "merged_vs_single")
               for kind, name in (("csv", f"{stem}_csv"), ("md", f"{stem}_md"))}
    outputs |= {"runs": str(tables / "runs.csv"), "cells": str(tables / "cells.csv")}
    primary = __import__("yaml").safe_load(args.preset.read_text()).get("experiments", {}).get("primary_comparisons", [])
    table_code = PROLOGUE + f"""
from synthecg.evaluation.tables import write_tables
write_tables([Path(p) for p in {[str(t) for t in targets]!r}], [], {{k: Path(v) for k, v in {outputs!r}.items()}},
             [], primary={primary!r})
""" + EPILOGUE
    plot_code = PROLOGUE + f"""
import pandas as pd
from synthecg.evaluation import plots
plots.transfer_curves(pd.read_csv({outputs['cells']!r}), Path('results/plots/transfer.png'))
plots.augmentation_gains(pd.read_csv({outputs['comparisons_csv']!r}), Path('results/plots/augmentation_gain.png'))
runs = {[str(t) for t in targets]!r}
for dataset in ('ptbxl', 'chapman', 'merged'):
    mine = {{}}
    for path in runs:
        parts = path.split('/results/classifier/')[1].split('/')
        if parts[0] == dataset and parts[1] in ('real', 'synthetic'):
            mine.setdefault(parts[1] if parts[1] == 'real' else parts[2], []).append(Path(path))
    if mine:
        plots.confusion_matrices(mine, Path(f'results/plots/confusion/{{dataset}}.png'), dataset)
""" + EPILOGUE
    rows = [("tables (write_tables)", timed(table_code, args.workdir)), ("plots (transfer, gains, confusion)",
                                                                        timed(plot_code, args.workdir))]
    if args.report:
        standing_in = stand_ins(args.workdir, args.preset, args.workdir / "results/plots/transfer.png")
        # In this process, not a child, so that the peak RSS is Snakemake's own.
        report_code = PROLOGUE + f"""
from snakemake.cli import main
try:
    main({snakemake(args.preset, "--directory", str(args.workdir), "--report", "results/report.html")[1:]!r})
except SystemExit as exit:
    if exit.code:
        raise
""" + EPILOGUE
        rows.append((f"report (snakemake --report; {standing_in} stand-ins)", timed(report_code, args.workdir)))
    total = sum(row["wall_s"] for _, row in rows)
    print(f"{len(paths)} runs of {args.preset.name} ({megabytes:.0f} MB of metrics.json; test splits "
          f"{sizes['ptbxl']:,} PTB-XL, {sizes['chapman']:,} Chapman, merged both), written in {written_s:.0f} s (untimed)")
    print("| step | wall s | of which inside | peak RSS MB |\n|---|---|---|---|")
    for label, row in rows:
        print(f"| {label} | {row['wall_s']} | {row['inside_s']} | {row['peak_rss_mb']:,} |")
    print(f"| total | {total:.1f} | | |  (goal: 120 s with the report; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
