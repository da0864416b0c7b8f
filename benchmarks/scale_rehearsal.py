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
job from Snakemake's own benchmark files (results/benchmarks/): records, threads, wall and CPU
seconds, peak RSS against the mem_mb the job was given here ("none": the rule declares none, and
a local run sets no default) and the mem_mb profiles/slurm would ask for it, the disk its
outputs take, and the issue's goals it breaks (flags: peak RSS above its mem_mb or 12 GB, wall
above 15 min for a job that is not a training); then the data stages' wall against 30 min and
the disk of all the run's results. The workdir is kept (results/, the log, and rehearsal.tsv
with the table); delete it when done. Snakemake samples a job's memory (summed over its process
tree: forked workers count their shared pages again in RSS, not in PSS) every 0.5 s for 15 s,
then every 30 s, so a short peak in a long job can be missed.

With `--jobs` (issue 21, item 2) it runs one job of every rule after the data stages at full data
size, the models shrunk to a few steps (REHEARSAL_MODELS over the preset: its data, splits and
sampling ratio unchanged), on the largest data each rule meets: every generator trained and
sampled on both sources (the merged set's classifiers take both sources' synthetic records), the
rhythm reader over every real record, and on the merged set each classifier arm once (its largest
ratio and fraction) with the quality, closeness and plot jobs of DOWNSTREAM_GENERATOR. The data
come from `--data-from`, an earlier rehearsal's workdir (its results/ hard-linked, its Snakemake
metadata copied, so the data stages do not run again), or are made first:

    nice -n 10 .venv/bin/python benchmarks/scale_rehearsal.py --mirror /tmp/mirror-quarter \
        --workdir /tmp/jobs-quarter --jobs --data-from /tmp/rehearsal-quarter

With `--resume-check` (issue 21, item 4) it runs `--target` uninterrupted in
`--workdir`/uninterrupted (or takes `--reference`, an earlier rehearsal's workdir), then again in
`--workdir`/resumed, killed (`--kill-signal`, default SIGINT as Ctrl-C sends it) once the
download cache holds `--kill-at` (default half) of the mirror's bytes, and rerun to the end. It
prints what the rerun asked the server for of the files verified before the kill, what each
download's location.json says of its files (fetched, cached), and whether the outputs
(results/data/, catalogues, manifests) are byte-identical to the uninterrupted run's; exit 1 if
anything was fetched or written again or differs:

    nice -n 10 .venv/bin/python benchmarks/scale_rehearsal.py --mirror /tmp/mirror-quarter \
        --workdir /tmp/resume-quarter --resume-check
"""

import argparse
import copy
import filecmp
import functools
import http.server
import json
import os
import re
import signal
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
    """Serves files without logging each request, and notes each GET's path in server.requests."""

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A static file server for `directory` on a free port of 127.0.0.1, in a daemon thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory)))
    server.requests = []
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


# The goals on a 2-core, 24 GB machine at full size (issue 21): the data stages within
# 30 min, every other job but the trainings within 15 min, no job above 12 GB, and each within
# the mem_mb its rule declares.
DATA_STAGES_GOAL_S = 30 * 60
JOB_GOAL_S = 15 * 60
JOB_MEMORY_GOAL_MB = 12_000
TRAINING_RULES = re.compile(r"train_generator|classifier_\w+")


# The rehearsal's models (--jobs): every generator and the classifier shrunk to a few steps, so that a
# job's time and memory are what the data cost it, not training. Sampling keeps the preset's count
# (ratio_to_real), so the synthetic sets are full size; DiffWave samples in 2 steps instead of 50.
# Two seeds: the closeness report reads every seed's real-only and synthetic-only classifiers.
REHEARSAL_MODELS = {
    "generators": {
        "replicates": 1,
        "training": {"checkpoint_every": 2, "log_every": 1},
        "resources": {"threads": 2},
        "diffwave": {"residual_layers": 2, "residual_channels": 8, "dilation_cycle": 2, "embedding_dim": 16,
                     "diffusion_steps": 10, "sampling_steps": 2, "batch_size": 8, "steps": 3},
        "timediffusion": {"hidden_channels": 8, "max_dilation_exponent": 3, "batch_size": 8, "steps": 3},
        "timevqvae": {"batch_size": 8, "steps": 3, "prior_steps": 3, "init_channels": 4, "hidden_channels": 8,
                      "n_resnet_blocks": 1, "prior_hidden_lf": 16, "prior_layers_lf": 1},
    },
    "classifier": {"filters": [8, 8, 8], "max_epochs": 1, "patience": 1},
    "experiments": {"seeds": [0, 1], "threads": 2},
}
DOWNSTREAM_GENERATOR = "diffwave"


def rehearsal_targets(config: dict) -> list[str]:
    """One job of every rule after the data stages, each on the largest data it meets in `config`
    (the preset with REHEARSAL_MODELS): the merged set's classifiers at the largest augmentation
    ratio and fine-tuning fraction, the closeness and plot jobs of DOWNSTREAM_GENERATOR. The
    aggregation over the whole grid (tables, the plots of cells.csv) is benchmarks/tables_at_scale.py's."""
    sources, generators = config["datasets"], config["generators"]["names"]
    dataset = "merged" if len(sources) > 1 else sources[0]
    largest_source = "chapman" if "chapman" in sources else sources[0]
    g = DOWNSTREAM_GENERATOR
    ratio = max(config["experiments"]["augment_ratios"])
    fraction = max(config["experiments"]["finetune_fractions"])
    run = f"results/classifier/{dataset}/{{}}/seed0/metrics.json"
    return [
        f"results/quality/{dataset}/real_rhythm.csv",
        *[f"results/synthetic/{source}/{name}/rep0.h5" for source in sources for name in generators],
        f"results/quality/{largest_source}/{g}.json",
        f"results/fidelity/{dataset}/{g}.json",
        f"results/plots/embedding/{dataset}/{g}.png",
        f"results/plots/samples/{largest_source}/{g}.png",
        "results/plots/generator_loss.png",
        *[run.format(cell) for cell in ("real/none/all", "shuffled/none/all", f"augment/{g}/r{ratio:g}",
                                        f"augment/classical/r{ratio:g}", f"balance/{g}/all", f"synthetic/{g}/all",
                                        f"finetune/{g}/f{fraction:g}", f"scratch/none/f{fraction:g}")],
    ]


def link_data(source: Path, workdir: Path) -> None:
    """An earlier rehearsal's results/ hard-linked into `workdir` (no disk, nothing recomputed) and
    its Snakemake metadata copied, so the data stages count as done with the same settings; a job
    that rewrites a file replaces the link, never the earlier run's copy."""
    source = source.resolve()
    if not (source / "results/data").is_dir():
        raise SystemExit(f"--data-from {source}: no results/data/ there; give an earlier rehearsal's workdir")
    subprocess.run(["cp", "-al", str(source / "results"), str(workdir / "results")], check=True)
    (workdir / ".snakemake").mkdir(exist_ok=True)
    subprocess.run(["cp", "-a", str(source / ".snakemake/metadata"), str(workdir / ".snakemake/")], check=True)
    for old in (workdir / "results/benchmarks").rglob("*.tsv"):  # the table is of this run's jobs
        old.unlink()


def slurm_resources() -> tuple[int | None, dict[str, int]]:
    """profiles/slurm's default mem_mb and any per-rule mem_mb of its set-resources."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    default = (profile.get("default-resources") or {}).get("mem_mb")
    per_rule = {rule: res["mem_mb"] for rule, res in (profile.get("set-resources") or {}).items() if "mem_mb" in res}
    return default, per_rule


def announced_jobs(log_text: str) -> dict[str, dict]:
    """{benchmark file: {rule, wildcards, threads, mem_mb, outputs}} from Snakemake's job
    announcements; mem_mb None where the job was given none."""
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", log_text):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        benchmark = re.search(r"^\s+benchmark: (.*)$", block, re.M)
        if not rule or not benchmark:
            continue
        field = {name: re.search(rf"^\s+{name}: (.*)$", block, re.M) for name in ("wildcards", "threads", "resources", "output")}
        mem_mb = re.search(r"\bmem_mb=(\d+)", field["resources"].group(1)) if field["resources"] else None
        jobs[benchmark.group(1).strip()] = {
            "rule": rule.group(1),
            "wildcards": field["wildcards"].group(1) if field["wildcards"] else "",
            "threads": int(field["threads"].group(1)) if field["threads"] else 1,
            "mem_mb": int(mem_mb.group(1)) if mem_mb else None,
            "outputs": field["output"].group(1).split(", ") if field["output"] else [],
        }
    return jobs


def flags(rule: str, wall_s: float, max_rss_mb: float, mem_mb: int | None) -> str:
    """What a job breaks of the issue's goals: memory above its rule's mem_mb (or none declared),
    above 12 GB, wall time above 15 min for a job that is not a training."""
    found = []
    if mem_mb is None:
        found.append("no mem_mb")
    elif max_rss_mb > mem_mb:
        found.append("RSS > mem_mb")
    if max_rss_mb > JOB_MEMORY_GOAL_MB:
        found.append("RSS > 12 GB")
    if wall_s > JOB_GOAL_S and not TRAINING_RULES.fullmatch(rule):
        found.append("wall > 15 min")
    return "; ".join(found) or "ok"


def job_table(workdir: Path, log_text: str) -> pd.DataFrame:
    """One row per benchmark file: the job, its records, threads, wall/CPU s, peak RSS/PSS, the
    mem_mb it was given here and would ask on SLURM, the disk its outputs take (Snakemake's
    io_out counts only what reached the disk before the job ended, so the outputs are measured
    instead), and the goals it breaks. Every job must have been announced in `log_text`: a table
    over several runs takes their logs together."""
    jobs = announced_jobs(log_text)
    slurm_default, slurm_rules = slurm_resources()
    results = workdir / "results"
    selected = {}
    for catalogue in results.glob("physionet/*/records.csv"):
        selected[catalogue.parent.name] = int(pd.read_csv(catalogue, usecols=["selected"])["selected"].sum())
    rows = []
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        bench = pd.read_csv(path, sep="\t").iloc[-1]
        job = jobs[str(path.relative_to(workdir))]
        rule = job["rule"]
        wildcards = dict(pair.split("=", 1) for pair in job["wildcards"].split(", ") if "=" in pair)
        dataset = ("merged" if rule in ("merge_datasets", "merged_rhythm")
                   else wildcards.get("source", wildcards.get("dataset", "")))
        name = " ".join([dataset, *(v for k, v in wildcards.items() if k not in ("source", "dataset"))])
        outputs = [workdir / p for p in job["outputs"]]
        if rule == "download_dataset":  # the files lie in the cache, outside its outputs
            outputs.append(results / "physionet/files" / SOURCES[dataset].path)
        wall_s, max_rss_mb = float(bench["s"]), float(bench["max_rss"])
        rows.append(
            {
                "job": f"{rule} {name}".strip(),
                "records": sum(selected.values()) if dataset == "merged" else selected.get(dataset),
                "threads": job["threads"],
                "wall_s": round(wall_s, 1),
                "cpu_s": round(float(bench.get("cpu_time", float("nan"))), 1),
                "max_rss_mb": round(max_rss_mb, 1),
                "max_pss_mb": round(float(bench.get("max_pss", float("nan"))), 1),
                "mem_mb_local": job["mem_mb"] if job["mem_mb"] is not None else "none",
                # SLURM: the profile's set-resources, else the rule's own, else the profile's default.
                "mem_mb_slurm": slurm_rules.get(rule, job["mem_mb"] or slurm_default),
                "outputs_mb": round(sum(disk_mb(p) for p in outputs), 1),
                "flags": flags(rule, wall_s, max_rss_mb, job["mem_mb"]),
            }
        )
    table = pd.DataFrame(rows)
    if len(table):  # a job of no dataset (a plot over all of them) has no record count
        table["records"] = table["records"].astype("Int64")
    return table


def disk_mb(path: Path) -> float:
    """Space taken under `path`, each hard-linked file once (du)."""
    if not path.exists():
        return 0.0
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def snakemake_command(workdir: Path, target: str | list[str], cores: int) -> list[str]:
    return [
        str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"), "--cores", str(cores),
        *([target] if isinstance(target, str) else target),
    ]


def prepare(workdir: Path, url: str, preset: Path, overlay: dict | None = None) -> dict:
    """A new scratch workdir with config.yaml merged with `preset` (then `overlay`) and pointed at
    `url`; returns that config."""
    if workdir == REPO or REPO in workdir.parents:
        raise SystemExit(f"--workdir {workdir}: put the rehearsal's outputs outside the repository (e.g. /tmp)")
    if (workdir / "results").exists():
        raise SystemExit(f"--workdir {workdir} already holds results/; give a new folder")
    workdir.mkdir(parents=True, exist_ok=True)
    config = merge(yaml.safe_load((REPO / "config.yaml").read_text()), yaml.safe_load(preset.read_text()))
    config = merge(config, overlay or {})
    config["physionet_url"] = url
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def run_logged(command: list[str], log_path: Path) -> tuple[int, float]:
    """Run `command` with its output in `log_path`: (exit status, wall seconds)."""
    started = time.perf_counter()
    with open(log_path, "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return result.returncode, time.perf_counter() - started


def report(workdir: Path, log_text: str, target: str, seconds: float) -> pd.DataFrame:
    """Print the job table, the goals the run breaks and its disk; keep the table as rehearsal.tsv."""
    table = job_table(workdir, log_text)
    table.to_csv(workdir / "rehearsal.tsv", sep="\t", index=False)
    print(table.to_string(index=False) if len(table) else "(no benchmark files)")
    if target in ("download", "preprocess"):
        verdict = "within" if seconds <= DATA_STAGES_GOAL_S else "OVER"
        print(f"data stages: {seconds:.0f} s, {verdict} the goal of {DATA_STAGES_GOAL_S} s")
    results = workdir / "results"
    print(f"disk: downloaded files {disk_mb(results / 'physionet/files'):.0f} MB, "
          f"data {disk_mb(results / 'data'):.0f} MB, all results {disk_mb(results):.0f} MB")
    return table


def cached_files(cache: Path) -> dict[str, int]:
    """{path under the cache: bytes} of the files a download has verified (a part is not one)."""
    return {str(p.relative_to(cache)): p.stat().st_size for p in cache.rglob("*") if p.is_file() and p.suffix != ".part"}


def fates(workdir: Path) -> dict[str, dict[str, str]]:
    """{dataset: {file: fetched | cached | verified | failed}} from the downloads' location.json."""
    return {
        path.parent.name: {relpath: entry["status"] for relpath, entry in json.loads(path.read_text())["files"].items()}
        for path in sorted((workdir / "results/physionet").glob("*/location.json"))
    }


def same_output(path: Path, reference: Path, other: Path) -> bool:
    """Whether `path` holds the same bytes under both workdirs; a text file may name its own
    workdir (qc.csv gives the path of each excluded record's files), so that is set aside."""
    a, b = reference / path, other / path
    if not (a.is_file() and b.is_file()):
        return False
    if path.suffix in (".csv", ".json"):
        return a.read_text().replace(str(reference), "<workdir>") == b.read_text().replace(str(other), "<workdir>")
    return filecmp.cmp(a, b, shallow=False)


def resume_check(workdir: Path, mirror: Path, server, url: str, args) -> int:
    """Item 4 of issue 21: kill the download once the cache holds `--kill-at` of the mirror's
    bytes, rerun to the end, and compare with an uninterrupted run: what the rerun fetched
    again of what the killed run had verified, and whether the outputs are byte-identical."""
    reference = args.reference.resolve() if args.reference else workdir / "uninterrupted"
    if args.reference is None:
        prepare(reference, url, args.preset)
        code, seconds = run_logged(snakemake_command(reference, args.target, args.cores), reference / "snakemake.log")
        print(f"uninterrupted run in {reference}: exit {code}, {seconds:.0f} s")
        if code:
            print((reference / "snakemake.log").read_text()[-3000:])
            return code
    resumed = workdir / "resumed"
    prepare(resumed, url, args.preset)
    cache = resumed / "results/physionet/files"
    releases = [mirror / SOURCES[name].path for name in ("ptbxl", "chapman")]
    mirror_bytes = sum(p.stat().st_size for release in releases for p in release.rglob("*") if p.is_file())
    command = snakemake_command(resumed, args.target, args.cores)
    started = time.perf_counter()
    with open(resumed / "snakemake-killed.log", "w") as log:
        # Its own process group, as a terminal's foreground job, so that Ctrl-C's signal reaches
        # Snakemake and its jobs; with SIGINT heard again, which a shell's background job ignores.
        job = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        while not cache.exists() or sum(cached_files(cache).values()) < args.kill_at * mirror_bytes:
            if job.poll() is not None:
                raise SystemExit(f"snakemake ended (exit {job.returncode}) before the cache held "
                                 f"{args.kill_at:.0%} of the mirror; see {log.name}")
            time.sleep(1)
        killed_after = time.perf_counter() - started
        os.killpg(job.pid, getattr(signal, f"SIG{args.kill_signal}"))
        job.wait()
        for _ in range(120):  # the job's own processes, which Ctrl-C reaches through the group too
            try:
                os.killpg(job.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
    before = cached_files(cache)
    parts = [p for p in cache.rglob("*.part")]
    mtimes = {relpath: (cache / relpath).stat().st_mtime_ns for relpath in before}
    print(f"killed with SIG{args.kill_signal} after {killed_after:.0f} s (snakemake exit {job.returncode}): "
          f"the cache held {len(before):,} verified files, {sum(before.values()) / 1e6:.0f} MB of the mirror's "
          f"{mirror_bytes / 1e6:.0f} MB, and {len(parts)} parts")
    finished = set(fates(resumed))
    if args.kill_signal == "KILL":  # what a user does after a crash: the killed run left its lock
        subprocess.run([*command, "--unlock"], capture_output=True, check=True)
    server.requests.clear()
    code, seconds = run_logged(command, resumed / "snakemake.log")
    print(f"rerun: exit {code}, {seconds:.0f} s")
    if code:
        print((resumed / "snakemake.log").read_text()[-3000:])
        return code

    prefixes = {f"/{SOURCES[name].path}/": SOURCES[name].path for name in SOURCES}
    requested = set()
    for path in server.requests:
        for prefix, release in prefixes.items():
            if path.startswith(prefix):
                requested.add(f"{release}/{path.removeprefix(prefix)}")
    again = sorted(relpath for relpath in before if relpath in requested)
    rewritten = sorted(relpath for relpath, mtime in mtimes.items() if (cache / relpath).stat().st_mtime_ns != mtime)
    for dataset, files in fates(resumed).items():
        if dataset in finished:
            print(f"{dataset}: downloaded before the kill; the rerun did not run it again")
            continue
        release = SOURCES[dataset].path
        counts = pd.Series(list(files.values())).value_counts().to_dict()
        refetched = sum(1 for relpath, fate in files.items() if fate == "fetched" and f"{release}/{relpath}" in before)
        print(f"{dataset}: the rerun's location.json: {counts}; fetched again of those verified before the kill: {refetched}")
    print(f"rerun's requests to the server: {len(server.requests):,}; for files verified before the kill: {len(again)}; "
          f"verified files written again: {len(rewritten)}")
    compared = sorted(
        p.relative_to(reference)
        for p in [*(reference / "results/data").rglob("*"), *(reference / "results/physionet").glob("*/*")]
        if p.is_file() and p.name != "location.json"  # where the files lie differs, by design
    )
    differing = [str(path) for path in compared if not same_output(path, reference, resumed)]
    print(f"byte for byte against {reference} (text files but for their workdir's path): "
          f"{len(compared) - len(differing)} of {len(compared)} files identical "
          f"({', '.join(str(p) for p in compared)})" + (f"; they differ: {differing}" if differing else ""))
    log_text = (resumed / "snakemake-killed.log").read_text() + (resumed / "snakemake.log").read_text()
    print("each job's last run, killed run and rerun together:")
    report(resumed, log_text, args.target, seconds)
    return 1 if differing or again or rewritten else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, type=Path, help="scratch folder for results/ (outside the repo)")
    parser.add_argument("--mirror", type=Path, help="a mirror from scale_mirror.py; else one is built in --workdir")
    parser.add_argument("--ptbxl-records", type=int, default=2000, help="size of the mirror built without --mirror")
    parser.add_argument("--arrhythmia-records", type=int, default=2000)
    parser.add_argument("--preset", type=Path, default=REPO / "presets/paper.yaml")
    parser.add_argument("--target", default="preprocess")
    parser.add_argument("--cores", type=int, default=2)
    jobs = parser.add_argument_group("one job of every other rule (issue 21, item 2)")
    jobs.add_argument("--jobs", action="store_true",
                      help="run one job of every rule after the data stages at full data size, models shrunk")
    jobs.add_argument("--data-from", type=Path,
                      help="an earlier rehearsal's workdir whose data stages to reuse (hard-linked)")
    resume = parser.add_argument_group("resume check (issue 21, item 4)")
    resume.add_argument("--resume-check", action="store_true",
                        help="kill the download partway, rerun, and compare with an uninterrupted run")
    resume.add_argument("--reference", type=Path,
                        help="an uninterrupted rehearsal's workdir to compare with; else one is run first")
    resume.add_argument("--kill-at", type=float, default=0.5,
                        help="kill once the cache holds this fraction of the mirror's bytes")
    resume.add_argument("--kill-signal", choices=["INT", "TERM", "KILL"], default="INT",
                        help="INT: Ctrl-C; KILL: a power cut (the rerun then needs --unlock first)")
    args = parser.parse_args(argv)

    workdir = args.workdir.resolve()
    mirror = args.mirror
    if mirror is None:
        mirror = workdir / "physionet"
        summary = scale_mirror.build_mirror(mirror, REPO.parent / "shared/data/physionet",
                                            args.ptbxl_records, args.arrhythmia_records)
        print(f"built {mirror}: {args.ptbxl_records:,} + {args.arrhythmia_records:,} records in {summary['seconds']} s")
    server, url = serve(mirror)
    try:
        if args.resume_check:
            return resume_check(workdir, mirror, server, url, args)
        config = prepare(workdir, url, args.preset, REHEARSAL_MODELS if args.jobs else None)
        target = rehearsal_targets(config) if args.jobs else args.target
        if args.data_from:
            link_data(args.data_from, workdir)
        code, seconds = run_logged(snakemake_command(workdir, target, args.cores), workdir / "snakemake.log")
    finally:
        server.shutdown()
    log_text = (workdir / "snakemake.log").read_text()
    what = "one job of every rule after the data stages" if args.jobs else args.target
    print(f"snakemake {what} with {args.preset.name} from {mirror} ({url}): exit {code}, "
          f"{seconds:.0f} s wall, {args.cores} cores")
    report(workdir, log_text, "jobs" if args.jobs else args.target, seconds)
    if code:
        print(f"snakemake failed; see {workdir / 'snakemake.log'}:\n{log_text[-3000:]}")
    return code


if __name__ == "__main__":
    sys.exit(main())
