"""Preprocessing throughput against a bare `wfdb.rdrecord` loop over the same records.

    .venv/bin/python benchmarks/preprocess_throughput.py [--physionet ../shared/data/physionet] [--threads 2]

Prints records/s of the bare read (one core), of the pipeline's preprocessing with 1 and with
`--threads` workers, and the cost per core relative to the bare read (goal: at most 1.5).
Each figure is the best of `--repeats` runs.
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

import wfdb
import yaml

from synthecg.data.download import download_dataset
from synthecg.data.labels import ClassMap
from synthecg.data.preprocess import preprocess_dataset, signal_spec

REPO = Path(__file__).resolve().parents[1]


def best_of(repeats, run):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--physionet", default=str(REPO.parent / "shared/data/physionet"))
    parser.add_argument("--dataset", default="ptbxl", choices=["ptbxl", "chapman"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    class_map = ClassMap.from_config(config["classes"])
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        catalogue, manifest, location = download_dataset(
            args.dataset, args.physionet, scratch, class_map, None, 100, 0, config["split_fractions"]
        )
        root = Path(location["root"])
        usable = catalogue[catalogue["selected"] & (catalogue["download_error"] == "")]
        paths = [str(root / p) for p in usable["record_path"]]
        n = len(paths)

        bare = best_of(args.repeats, lambda: [wfdb.rdrecord(p) for p in paths])
        spec = signal_spec(args.dataset, 100, config["preprocess"]["flat_lead_std_mv"])

        def pipeline(threads):
            return lambda: preprocess_dataset(
                args.dataset, catalogue, root, scratch / "out.h5", scratch / "qc.csv", class_map, spec,
                config["split_fractions"], 0, threads=threads,
            )

        one = best_of(args.repeats, pipeline(1))
        many = best_of(args.repeats, pipeline(args.threads))

    print(f"{args.dataset}: {n} records at 100 Hz, best of {args.repeats}")
    print(f"bare wfdb.rdrecord loop (1 core):   {n / bare:8.1f} records/s")
    print(f"pipeline preprocessing, 1 thread:   {n / one:8.1f} records/s  cost per core {one / bare:.2f}x bare")
    print(
        f"pipeline preprocessing, {args.threads} threads:  {n / many:8.1f} records/s  "
        f"cost per core {many * args.threads / bare:.2f}x bare, speed-up {one / many:.2f}x"
    )


if __name__ == "__main__":
    main()
