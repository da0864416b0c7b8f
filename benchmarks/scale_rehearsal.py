"""The paper preset's data stages at scale, from a mirror served on 127.0.0.1: time, memory, disk.

    .venv/bin/python benchmarks/scale_mirror.py --out /tmp/mirror-quarter \\
        --ptbxl-records 5450 --arrhythmia-records 11288
    nice -n 10 .venv/bin/python benchmarks/scale_rehearsal.py --mirror /tmp/mirror-quarter \\
        --workdir /tmp/rehearsal-quarter

or, building a small mirror inside the scratch folder first:

    nice -n 10 .venv/bin/python benchmarks/scale_rehearsal.py --workdir /tmp/rehearsal-small \\
        --ptbxl-records 2000 --arrhythmia-records 2000

Serves the mirror (benchmarks/scale_mirror.py) with a throwaway HTTP server, as the tests do,
and runs Snakemake on `--target` (default `preprocess`: download, preprocess and merge) in
`--workdir` with config.yaml merged key by key with `--preset` (default presets/paper.yaml, as
Snakemake merges config files) and `physionet_url` set to the server. Then prints one line per
job from Snakemake's own benchmark files (results/benchmarks/): records, wall and CPU seconds,
peak RSS against the mem_mb the job was given here ("none": the rule declares none, and a local
run sets no default) and the mem_mb profiles/slurm would ask for it, the disk its outputs take;
and the disk of all the run's results. The workdir is kept (results/, the log, and
rehearsal.tsv with the table); delete it when done. Snakemake samples a job's memory (summed
over its process tree: forked workers count their shared pages again in RSS, not in PSS) every
0.5 s for 15 s, then every 30 s, so a short peak in a long job can be missed.
"""

import argparse
import copy
import functools
import http.server
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_mirror  # noqa: E402  (a sibling script, not a package)

from synthecg.data.physionet import SOURCES  # noqa: E402


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A static file server for `directory` on a free port of 127.0.0.1, in a daemon thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def merge(base: dict, update: dict) -> dict:
    """Config files merged key by key, as Snakemake merges several --configfile."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def slurm_mem_mb() -> tuple[int | None, dict[str, int]]:
    """profiles/slurm's default mem_mb and any per-rule mem_mb of its set-resources."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    default = (profile.get("default-resources") or {}).get("mem_mb")
    per_rule = {rule: res["mem_mb"] for rule, res in (profile.get("set-resources") or {}).items() if "mem_mb" in res}
    return default, per_rule


def given_resources(log_text: str) -> dict[tuple[str, str], str]:
    """{(rule, wildcards): resources line} from Snakemake's job announcements."""
    given = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", log_text):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if not rule:
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        given[(rule.group(1), wildcards.group(1) if wildcards else "")] = resources.group(1) if resources else ""
    return given


def job_table(workdir: Path, log_text: str) -> pd.DataFrame:
    """One row per benchmark file: the job, its records, wall/CPU s, peak RSS, the mem_mb it was
    given here and would ask on SLURM, and the disk its outputs take (Snakemake's io_out counts
    only what reached the disk before the job ended, so the outputs are measured instead)."""
    given = given_resources(log_text)
    slurm_default, slurm_rules = slurm_mem_mb()
    stage_rule = {"download": "download_dataset", "preprocess": "preprocess_dataset"}
    results = workdir / "results"
    selected = {}
    for catalogue in results.glob("physionet/*/records.csv"):
        selected[catalogue.parent.name] = int(pd.read_csv(catalogue, usecols=["selected"])["selected"].sum())
    rows = []
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        bench = pd.read_csv(path, sep="\t").iloc[-1]
        stage, name = path.parent.name, path.stem
        rule = "merge_datasets" if name == "merged" else stage_rule.get(stage, stage)
        wildcards = "" if rule == "merge_datasets" else f"source={name}"
        here = re.search(r"\bmem_mb=(\d+)", given.get((rule, wildcards), ""))
        if rule == "download_dataset":
            outputs = [results / "physionet/files" / SOURCES[name].path, results / "physionet" / name]
        elif rule == "preprocess_dataset":
            outputs = [results / f"data/{name}.h5", results / "data" / name]
        else:
            outputs = [results / f"data/{name}.h5"]
        rows.append(
            {
                "job": f"{rule} {name}",
                "records": sum(selected.values()) if rule == "merge_datasets" else selected.get(name),
                "wall_s": round(float(bench["s"]), 1),
                "cpu_s": round(float(bench.get("cpu_time", float("nan"))), 1),
                "max_rss_mb": round(float(bench["max_rss"]), 1),
                "max_pss_mb": round(float(bench.get("max_pss", float("nan"))), 1),
                "mem_mb_local": int(here.group(1)) if here else "none",
                "mem_mb_slurm": slurm_rules.get(rule, slurm_default),
                "outputs_mb": round(sum(disk_mb(p) for p in outputs), 1),
            }
        )
    return pd.DataFrame(rows)


def disk_mb(path: Path) -> float:
    """Space taken under `path`, each hard-linked file once (du)."""
    if not path.exists():
        return 0.0
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, type=Path, help="scratch folder for results/ (outside the repo)")
    parser.add_argument("--mirror", type=Path, help="a mirror from scale_mirror.py; else one is built in --workdir")
    parser.add_argument("--ptbxl-records", type=int, default=2000, help="size of the mirror built without --mirror")
    parser.add_argument("--arrhythmia-records", type=int, default=2000)
    parser.add_argument("--preset", type=Path, default=REPO / "presets/paper.yaml")
    parser.add_argument("--target", default="preprocess")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)

    workdir = args.workdir.resolve()
    if workdir == REPO or REPO in workdir.parents:
        raise SystemExit(f"--workdir {workdir}: put the rehearsal's outputs outside the repository (e.g. /tmp)")
    if (workdir / "results").exists():
        raise SystemExit(f"--workdir {workdir} already holds results/; give a new folder")
    workdir.mkdir(parents=True, exist_ok=True)
    mirror = args.mirror
    if mirror is None:
        mirror = workdir / "physionet"
        summary = scale_mirror.build_mirror(mirror, REPO.parent / "shared/data/physionet",
                                            args.ptbxl_records, args.arrhythmia_records)
        print(f"built {mirror}: {args.ptbxl_records:,} + {args.arrhythmia_records:,} records in {summary['seconds']} s")

    server, url = serve(mirror)
    config = merge(yaml.safe_load((REPO / "config.yaml").read_text()), yaml.safe_load(args.preset.read_text()))
    config["physionet_url"] = url
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [
        str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"), "--cores", str(args.cores), args.target,
    ]
    started = time.perf_counter()
    with open(workdir / "snakemake.log", "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.perf_counter() - started
    server.shutdown()
    log_text = (workdir / "snakemake.log").read_text()

    table = job_table(workdir, log_text)
    table.to_csv(workdir / "rehearsal.tsv", sep="\t", index=False)
    print(f"snakemake {args.target} with {args.preset.name} from {mirror} ({url}): exit {result.returncode}, "
          f"{seconds:.0f} s wall, {args.cores} cores")
    print(table.to_string(index=False) if len(table) else "(no benchmark files)")
    results = workdir / "results"
    print(f"disk: downloaded files {disk_mb(results / 'physionet/files'):.0f} MB, "
          f"data {disk_mb(results / 'data'):.0f} MB, all results {disk_mb(results):.0f} MB")
    if result.returncode:
        print(f"snakemake failed; see {workdir / 'snakemake.log'}:\n{log_text[-3000:]}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
