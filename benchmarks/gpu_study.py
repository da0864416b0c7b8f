"""The GPU preset end to end through Snakemake on one GPU machine, in one command.

The GPU machine (one H100 or H200, 16 cores) reaches no network and lacks Snakemake, wfdb and
their needs; it gets the repository's working tree and a few git-ignored folders, 64 MiB in all.
So the data travels preprocessed and the missing packages as wheels, in one folder:

    # here, once: the data stage of a gpu-preset run (the mirror's PTB-XL, every record; 47 MB; made
    # in a workdir of its own, --data-workdir) and the wheels the GPU machine lacks (~10 MB), in
    # .gpu-study, which git ignores. It prints the device calls of both prepared GPU commands: this
    # one and benchmarks/gpu_generators.py, which carry the same folder (one loan each).
    .venv/bin/python benchmarks/gpu_study.py prepare .gpu-study
    # there, carrying .gpu-study: the short grid (at most 9 minutes, the primary table printed last)
    python3 benchmarks/gpu_study.py run .gpu-study --save $OUT
    # there, the preset's whole grid: the same command with --full, repeated until it says done
    # (each call stops cleanly after --minutes; Snakemake resumes on a machine kept warm)
    python3 benchmarks/gpu_study.py run .gpu-study --full --minutes 9
    # here, the same code path at toy sizes on the CPU (tests/test_gpu_study.py runs it)
    .venv/bin/python benchmarks/gpu_study.py run /tmp/prepared --tiny --workdir /tmp/study

`run` installs the wheels of the packages this Python lacks (pip --no-index --no-deps --target
/tmp/site), copies the data into <workdir>/results with their times in the order of the rules
that made them, and runs `snakemake all` with `--rerun-triggers mtime` (no `.snakemake` metadata
travels: the files' times alone say the data stage is done). A dry run first checks that nothing
of the data stage would run (there is no mirror there) and stops otherwise. Then it prints the
wall time and peak memory per rule (Snakemake's benchmark files) and, last, the primary family's
rows of results/tables/comparisons.md with the whole command's wall time.

The short grid (the default): presets/gpu.yaml with 3 seeds, 1 generator replicate, augment ratio
1 and fine-tuning fraction 0.1 (the cells the primary comparisons name), no curated sets, and the
generators' steps scaled by --budget. The budget comes from counted FLOPs, not from a GPU run:
per record per training step at the gpu sizes, DiffWave 14.3 GFLOP, TimeDiffusion 1.7, TimeVQVAE
4.8 (VQ-VAE) + 0.2 (priors); the preset's steps are then 15.9 PFLOP a replicate, 200 s at an
ASSUMED 10 % of an H100's ~790 TFLOP/s bf16 matrix rate. --budget 0.25 makes that ~50 s (~170 s
should the card reach only 3 %), leaving the rest of the 9 minutes to the 48 classifier jobs (4 at
a time on the card's 4 slots), the rhythm readers and the tables. The per-rule table of the first
GPU run is the measurement to set it by.
"""

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# The data stage's outputs, in the order of the rules that made them: a file's time must not be
# older than its inputs', or Snakemake would rerun its rule (and the download has no mirror there).
DATA_STAGES = [
    ["results/physionet/ptbxl/records.csv", "results/physionet/ptbxl/manifest.json",
     "results/physionet/ptbxl/location.json"],  # download_dataset
    ["results/data/ptbxl.h5", "results/data/ptbxl/qc.csv"],  # preprocess_dataset
]
DATA_RULES = ("download_dataset", "preprocess_dataset", "merge_datasets")

# What the GPU machine's python3.12 lacks (pinned as in pyproject.toml and .venv; checked against
# the machine's package list), wheels with --no-deps. pulp is left out: only Snakemake's ilp
# scheduler imports it, and the run uses --scheduler greedy.
WHEELS = """annotated-types==0.8.0 argparse-dataclass==2.0.0 conda-inject==1.3.2 configargparse==1.9.0
docutils==0.22.4 dpath==2.2.0 fastjsonschema==2.22.3 gitdb==4.0.12 gitpython==3.2.1 greenlet==3.5.6
humanfriendly==10.0 immutables==0.21 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 jupyter-core==5.9.1
nbformat==5.11.1 platformdirs==4.14.9 pydantic==2.14.4 pydantic-core==2.50.5 referencing==0.37.0
rpds-py==2026.9.1 smart-open==7.7.1 smmap==5.0.3 snakemake==9.27.1 snakemake-interface-common==1.23.0
snakemake-interface-executor-plugins==9.4.0 snakemake-interface-logger-plugins==2.1.0
snakemake-interface-report-plugins==1.3.0 snakemake-interface-scheduler-plugins==2.0.2
snakemake-interface-storage-plugins==4.4.1 sqlalchemy==2.0.58 sqlmodel==0.0.37 tenacity==9.2.1
throttler==1.2.3 traitlets==5.16.1 typing-inspection==0.4.5 wfdb==4.3.1 yte==1.9.4""".split()
# Imported by Snakemake (tabulate, wrapt), jsonschema and SQLAlchemy (attrs), pydantic (typing-extensions
# >= 4.16), wfdb (fsspec) and the download module (tqdm); not on the machine's list of what it lacks,
# but its versions are unknown: carried (~0.5 MB), installed where this version is missing.
SPARE_WHEELS = ["tabulate==0.10.0", "wrapt==2.5.2", "attrs==26.1.0", "tqdm==4.70.1", "typing-extensions==4.16.0",
                "fsspec==2026.9.0"]
SOURCE_ONLY = ["connection-pool==0.0.3"]  # no wheel on PyPI: built here (pure Python)
PIP_DOWNLOAD = ["download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform",
                "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64"]
CARRY_LIMIT = 64 * 2**20  # what the device tool carries: working tree and carried folders together

# Per record per training step at presets/gpu.yaml's sizes (benchmarks/generator_throughput.py's count).
GFLOP_PER_RECORD_STEP = {"diffwave": {"steps": 14.3}, "timediffusion": {"steps": 1.66},
                         "timevqvae": {"steps": 4.8, "prior_steps": 0.21}}
ASSUMED_TFLOP_PER_S = 0.10 * 790  # an assumption until gpu_generators.py measures the card

SHORT_GRID = {
    "generators": {"replicates": 1},
    "experiments": {"seeds": [0, 1, 2], "augment_ratios": [1], "finetune_fractions": [0.1], "curated": False},
}
# --tiny: a CPU rehearsal of the same code path (toy models, a few steps, one seed, 2 cores).
TINY_RECORDS_PER_CLASS = 10
TINY = {
    "max_records_per_class": TINY_RECORDS_PER_CLASS,
    "generators": {
        "names": ["diffwave"],  # one generator keeps the rehearsal near 2 minutes; its primary rows show
        "replicates": 1,
        "training": {"device": "cpu", "checkpoint_every": 10, "log_every": 5},
        "resources": {"mem_mb": 2000, "runtime": 10, "threads": 1},
        "diffwave": {"residual_layers": 2, "residual_channels": 8, "dilation_cycle": 2, "embedding_dim": 16,
                     "diffusion_steps": 10, "beta_end": 0.5, "sampling_steps": 5, "batch_size": 4, "steps": 5},
        "timediffusion": {"hidden_channels": 8, "max_dilation_exponent": 3, "batch_size": 4, "steps": 5,
                          "max_seed_records": 4, "sampling_steps": 2},
        "timevqvae": {"batch_size": 4, "steps": 5, "prior_steps": 5, "init_channels": 4, "hidden_channels": 8,
                      "n_resnet_blocks": 1, "prior_hidden_lf": 16, "prior_layers_lf": 1, "prior_heads_lf": 1,
                      "prior_hidden_hf": 8, "sampling_steps": 2},
    },
    "sampling": {"batch_size": 16, "curate_max_draws": 1},
    "classifier": {"filters": [4, 8, 8], "batch_size": 8, "max_epochs": 2, "patience": 1},
    "experiments": {"seeds": [0], "augment_ratios": [1], "finetune_fractions": [0.1], "curated": False,
                    "device": "cpu", "threads": 1},
}


# -- prepare (here) ------------------------------------------------------------------------------
def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def working_tree_bytes() -> int:
    """What the device tool copies besides the carried folders: tracked and untracked, not ignored."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    return sum((REPO / name).stat().st_size for name in listed if name and (REPO / name).is_file())


def installs_there(wheel: str) -> bool:
    """Whether pip on the GPU machine (CPython 3.12, Linux x86_64) takes this wheel file: its tags
    are the name's last three fields (python-abi-platform), each possibly several joined by '.'.
    A cp311 build from this machine's cache would be refused there, and the run would stop."""
    python, abi, platform = (set(field.split(".")) for field in wheel.removesuffix(".whl").split("-")[-3:])
    fits_python = bool(python & {"py3", "cp312"}) or (
        "abi3" in abi and any(re.fullmatch(r"cp3(\d+)", tag) and int(tag[3:]) <= 12 for tag in python))
    fits_abi = bool(abi & {"none", "abi3", "cp312"})
    fits_platform = "any" in platform or any(
        tag.startswith(("manylinux", "linux_")) and tag.endswith("_x86_64") for tag in platform)
    return fits_python and fits_abi and fits_platform


def fetch_wheels(folder: Path, cache: Path | None) -> None:
    """Every wheel of WHEELS, SPARE_WHEELS and SOURCE_ONLY into `folder`: from `cache` where it
    lies there, else from PyPI (pip download for the GPU machine's platform; pip wheel to build).
    Only wheels that install on the GPU machine's Python count (`installs_there`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.whl"):  # an earlier prepare's wheel that pip would refuse there
        if not installs_there(stale.name):
            stale.unlink()
    for pin in WHEELS + SPARE_WHEELS + SOURCE_ONLY:
        name, version = pin.split("==")
        stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}-"

        def usable(p: Path) -> bool:
            return p.name.lower().startswith(stem.lower()) and installs_there(p.name)

        if any(usable(p) for p in folder.glob("*.whl")):
            continue
        cached = [p for p in (cache.glob("*.whl") if cache else []) if usable(p)]
        if cached:
            shutil.copy2(cached[0], folder)
        elif pin in SOURCE_ONLY:
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), pin],
                           check=True)
        else:
            subprocess.run([sys.executable, "-m", "pip", *PIP_DOWNLOAD, "-d", str(folder), pin], check=True)


def make_data_stage(mirror: str, workdir: Path) -> Path:
    """presets/gpu.yaml's data stage (download from the mirror, preprocess) in a workdir of its own,
    so that the repository's results/ (a quick run's 80 records a class, say) is never what travels.
    Snakemake redoes nothing that is up to date. Returns its results folder."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "config.yaml", workdir / "config.yaml")  # the Snakefile's configfile, read in the workdir
    url = mirror if "://" in mirror else Path(mirror).resolve()
    subprocess.run([sys.executable, "-m", "snakemake", "preprocess", "--snakefile", str(REPO / "Snakefile"),
                    "--directory", str(workdir), "--configfile", str(REPO / "presets/gpu.yaml"),
                    "--config", f"physionet_url={url}", "--cores", "all", "--quiet"], check=True)
    return workdir / "results"


def device_calls(folder: Path) -> str:
    """The device tool's calls for the two prepared GPU commands, each carrying `folder` (one loan each)."""
    carried = folder.relative_to(REPO) if folder.is_relative_to(REPO) else folder
    generators = (f"python3 -m pip install -q --no-index --no-deps --target /tmp/site {carried}/wheels/wfdb-*.whl && "
                  "export PYTHONPATH=/tmp/site:src && { python3 -m pytest -q -p no:cacheprovider "
                  "tests/test_generators.py -k gpu; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_generators.py "
                  f"--data {carried}/results/data/ptbxl.h5 --out $OUT --minutes 7.5; }}")
    study = f"PYTHONUNBUFFERED=1 python3 benchmarks/gpu_study.py run {carried} --save $OUT"
    return (f"device calls, carry [\"{carried}\"], timeout_s 600, one loan each:\n"
            f"  the generators' measurement: {generators}\n  the study, its short grid: {study}")


def prepare(args) -> None:
    folder = args.dir.resolve()
    results = (args.results or make_data_stage(args.mirror, args.data_workdir)).resolve()
    missing = [name for stage in DATA_STAGES for name in stage
               if not (results.parent / name).is_file()]
    if missing:
        sys.exit(f"{', '.join(missing)} missing under {results.parent}: --results names the results folder of a "
                 "run whose data stage is done (without it, prepare makes presets/gpu.yaml's)")
    for stage in DATA_STAGES:
        for name in stage:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(results.parent / name, target)
    if not args.no_wheels:
        fetch_wheels(folder / "wheels", args.wheel_cache)
    inside = folder.is_relative_to(REPO)
    ignored = inside and subprocess.run(["git", "check-ignore", "-q", str(folder)], cwd=REPO).returncode == 0
    (folder / "wheels").mkdir(exist_ok=True)
    data, wheels, tree = size_of(folder / "results"), size_of(folder / "wheels"), working_tree_bytes()
    total = tree + (0 if inside and not ignored else data + wheels)  # git lists what it does not ignore
    (folder / "prepared.json").write_text(json.dumps({
        "from": str(results), "prepared": time.strftime("%Y-%m-%d %H:%M:%S"),
        "files": {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()},
    }, indent=1))
    mib = 2**-20
    print(f"{folder}: data {data * mib:.1f} MiB, {len(list((folder / 'wheels').glob('*.whl')))} wheels "
          f"{wheels * mib:.1f} MiB; with the working tree ({tree * mib:.1f} MiB) {total * mib:.1f} MiB of the "
          f"{CARRY_LIMIT * mib:.0f} MiB the device tool carries")
    if total > CARRY_LIMIT:
        print("too large to carry: leave out what is not needed", file=sys.stderr)
    if inside and not ignored:
        exclude = subprocess.run(["git", "rev-parse", "--git-path", "info/exclude"], cwd=REPO, capture_output=True,
                                 text=True).stdout.strip()
        print(f"git does not ignore {folder.relative_to(REPO)}; carry needs it ignored:\n"
              f"  echo /{folder.relative_to(REPO)}/ >> {exclude}", file=sys.stderr)
    if not inside:
        print(f"{folder} is outside the repository: the device tool carries only paths inside it", file=sys.stderr)
    print(device_calls(folder))


# -- run (there) ---------------------------------------------------------------------------------
def ensure_packages(folder: Path, site: Path) -> None:
    """Install the carried wheels whose version this Python lacks, into `site` (first on PYTHONPATH)."""
    needed = []
    for wheel in sorted(folder.glob("wheels/*.whl")):
        name, version = wheel.name.split("-")[:2]
        try:
            if importlib.metadata.version(name) == version:
                continue
        except importlib.metadata.PackageNotFoundError:
            pass
        needed.append(wheel)
    if needed:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target",
                        str(site), *map(str, needed)], check=True)
        print(f"installed {len(needed)} wheels into {site}: {', '.join(w.name.split('-')[0] for w in needed)}",
              flush=True)
    if site.is_dir():
        sys.path.insert(0, str(site))
        os.environ["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    if importlib.util.find_spec("snakemake") is None:
        sys.exit(f"Snakemake is not importable and {folder}/wheels has no wheel for it: run `prepare` here first")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lay_out_data(folder: Path, workdir: Path) -> None:
    """Copy the prepared data stage into workdir/results, its files' times in rule order (and in the
    past, so that everything the run makes is newer). A copy already in place is left as it is, so
    that a second call resumes rather than making every job out of date."""
    marker = workdir / "results" / ".gpu_study_data.json"
    wanted = {name: digest(folder / name) for stage in DATA_STAGES for name in stage}
    if marker.is_file() and json.loads(marker.read_text()) == wanted and all((workdir / n).is_file() for n in wanted):
        return
    now = time.time()
    for index, stage in enumerate(DATA_STAGES):
        stamp = now - 3600 + 60 * index
        for name in stage:
            target = workdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / name, target)
            os.utime(target, (stamp, stamp))
    marker.write_text(json.dumps(wanted))


def study_config(args) -> dict:
    """The overrides over presets/gpu.yaml: the short grid with the budget's steps, --tiny's toy
    sizes, or nothing (--full)."""
    import yaml

    if args.tiny:
        return TINY
    # The GPU machine's jobs ask for the card whether or not /proc shows its driver's GPU list
    # (config key gpu_jobs, auto by default, reads it; a virtualised machine may lack it).
    if args.full:
        return {"gpu_jobs": "always"}
    preset = yaml.safe_load((REPO / "presets/gpu.yaml").read_text())["generators"]
    steps = {name: {field: max(10, round(args.budget * preset[name][field])) for field in fields}
             for name, fields in GFLOP_PER_RECORD_STEP.items()}
    return {"gpu_jobs": "always", "generators": {**SHORT_GRID["generators"], **steps},
            "experiments": {**SHORT_GRID["experiments"], "seeds": list(range(args.seeds))}}


def expected_training_seconds(config: dict) -> float:
    """Counted FLOPs of all trainings over the assumed rate (they share the card)."""
    generators = config["generators"]
    flops = sum(gflop * 1e9 * generators[name]["batch_size"] * generators[name][field] * generators["replicates"]
                for name, fields in GFLOP_PER_RECORD_STEP.items() if name in generators["names"]
                for field, gflop in fields.items())
    return flops / (ASSUMED_TFLOP_PER_S * 1e12)


def snakemake_command(args, workdir: Path, overrides: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "all", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(REPO / "presets/gpu.yaml"), str(overrides),
            "--cores", str(args.cores), "--scheduler", "greedy", "--resources", f"gpu_slots={args.gpu_slots}",
            "--rerun-triggers", "mtime", *extra]


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: jobs per rule."""
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", output, re.M) if rule != "total"}


class Terminated(Exception):
    """SIGTERM reached this command (the device tool's time limit, say)."""


def raise_terminated(*_) -> None:
    raise Terminated


STOPPED, TERMINATED = -1, -2  # run_snakemake's codes for a run it stopped: by --minutes, by SIGTERM


def stop(process: subprocess.Popen, grace: float) -> None:
    """SIGINT to Snakemake's process group, so that its jobs end and are marked incomplete (a rerun
    resumes); SIGKILL if it has not ended after `grace` seconds."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:  # it had ended already
        process.wait()


def run_snakemake(command: list[str], log: Path, seconds: float | None) -> int:
    """Run Snakemake with its output in `log`, printing its progress lines; stopped after `seconds`
    (STOPPED) or when this command gets SIGTERM (TERMINATED). Snakemake runs in a session of its own
    (so that a Ctrl-C here does not reach it twice): it is stopped here, never left running."""
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        started, shown = time.monotonic(), 0
        try:
            while process.poll() is None:
                time.sleep(2)
                lines = log.read_text(errors="replace").splitlines()
                for line in lines[shown:]:
                    if re.search(r"steps \(\d+%\) done|^Error in rule|^RuleException", line):
                        print(f"[{(time.monotonic() - started) / 60:4.1f} min] {line.strip()}", flush=True)
                shown = len(lines)
                if seconds is not None and time.monotonic() - started > seconds:
                    print(f"stopping Snakemake after {seconds / 60:.1f} min (--minutes); rerun to resume", flush=True)
                    stop(process, 60)
                    return STOPPED
        except Terminated:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # what is left is short: saving what was made
            print("SIGTERM: stopping Snakemake and saving what it made", flush=True)
            stop(process, 15)
            return TERMINATED
    return process.returncode


def rule_of(benchmark: Path) -> str:
    """A benchmark file's rule, from its path under results/benchmarks (workflow/rules/*.smk)."""
    parts = benchmark.with_suffix("").parts
    if parts[0] == "classifier":
        return "classifier_classical" if parts[2:4] == ("augment", "classical") else f"classifier_{parts[2]}"
    if parts[0] == "generators":
        return "train_generator"
    if parts[0] == "synthetic":
        return "sample_curated" if parts[-2].endswith("-curated") else "sample_synthetic"
    if parts[0] == "quality":
        return "synthetic_rhythm" if "synthetic_rhythm" in parts else parts[-1] if parts[-1] == "real_rhythm" \
            else "generator_quality"
    if parts[0] == "plots":
        return f"plot_{parts[1]}"
    if parts[0] == "preprocess":
        return "merge_datasets" if parts[-1] == "merged" else "preprocess_dataset"
    return {"download": "download_dataset", "fidelity": "fidelity_report", "tables": "summarise_tables"}.get(
        parts[0], parts[0])


def rule_times(results: Path) -> tuple[str, dict]:
    """Per rule: jobs, summed and longest wall time, largest peak memory (Snakemake's benchmark files)."""
    rows: dict[str, list] = {}
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        lines = path.read_text().splitlines()
        if len(lines) < 2:
            continue
        fields = dict(zip(lines[0].split("\t"), lines[1].split("\t")))
        rss = float(fields.get("max_rss", "nan")) if fields.get("max_rss", "-") not in ("-", "NA") else float("nan")
        rows.setdefault(rule_of(path.relative_to(results / "benchmarks")), []).append((float(fields["s"]), rss))
    table = ["| rule | jobs | wall s (sum) | longest s | peak RSS MB |", "|---|---|---|---|---|"]
    summary = {}
    for rule, found in sorted(rows.items(), key=lambda item: -sum(s for s, _ in item[1])):
        seconds = [s for s, _ in found]
        rss = max((r for _, r in found if r == r), default=float("nan"))
        summary[rule] = {"jobs": len(found), "seconds": sum(seconds), "longest": max(seconds), "max_rss_mb": rss}
        table.append(f"| {rule} | {len(found)} | {sum(seconds):.0f} | {max(seconds):.0f} | {rss:.0f} |")
    return "\n".join(table), summary


def failures(log: Path, limit: int = 4000) -> str:
    """Each failed job's 'Error in rule' block and its log's last lines, once, at most `limit` characters."""
    lines = log.read_text(errors="replace").splitlines()
    blocks = {}  # a retried job fails again with the same output
    for index, line in enumerate(lines):
        if line.startswith("Error in rule"):
            block = [text for text in lines[index:index + 10] if not text.startswith("====")]
            blocks.setdefault(next((text for text in block if "output:" in text), line), "\n".join(block))
    return "\n".join(blocks.values())[-limit:] or "\n".join(lines)[-limit:]


def primary_rows(markdown: str) -> str:
    """The header and the rows of comparisons.md whose family is primary."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    if len(lines) < 2:
        return ""
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    family = header.index("family")
    kept = [line for line in lines[2:] if line.strip("|").split("|")[family].strip() == "primary"]
    return "\n".join(lines[:2] + kept) if kept else ""


def run(args) -> None:
    started = time.monotonic()
    folder = args.dir.resolve()
    workdir = (args.workdir or REPO).resolve()
    ensure_packages(folder, args.site)
    import torch
    import yaml

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "config.yaml").is_file():  # the Snakefile's configfile, read relative to the workdir
        shutil.copy2(REPO / "config.yaml", workdir / "config.yaml")
    lay_out_data(folder, workdir)
    overrides = workdir / "gpu_study.yaml"
    overrides.write_text(yaml.safe_dump(study_config(args), sort_keys=False))
    grid = "full" if args.full else "tiny" if args.tiny else f"short, budget {args.budget:g}"
    from synthecg.config import read_config

    config = read_config(REPO / "config.yaml", REPO / "presets/gpu.yaml", overrides)
    steps = {name: {field: config["generators"][name][field] for field in fields}
             for name, fields in GFLOP_PER_RECORD_STEP.items() if name in config["generators"]["names"]}
    print(f"{device}: presets/gpu.yaml, {grid} grid ({overrides}); generators' training "
          f"~{expected_training_seconds(config) / 60:.1f} min at an assumed {ASSUMED_TFLOP_PER_S:.0f} TFLOP/s "
          f"(steps: {json.dumps(steps)})", flush=True)

    locks = workdir / ".snakemake" / "locks"
    if locks.is_dir() and any(locks.iterdir()):  # a former call killed before Snakemake could let go
        subprocess.run(snakemake_command(args, workdir, overrides, "--unlock"), capture_output=True, check=True)
        print(f"removed the locks a stopped run left in {workdir}", flush=True)
    dry = subprocess.run(snakemake_command(args, workdir, overrides, "--dry-run"), capture_output=True, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if dry.returncode:
        sys.exit(f"the dry run failed:\n{dry.stdout[-3000:]}\n{dry.stderr[-3000:]}")
    jobs = planned_jobs(dry.stdout)
    data_jobs = {rule: n for rule, n in jobs.items() if rule in DATA_RULES}
    if data_jobs:
        sys.exit(f"Snakemake would rerun the data stage ({data_jobs}), which has no mirror here: "
                 f"is {folder}/results complete (benchmarks/gpu_study.py prepare)?")
    print(f"{sum(jobs.values())} jobs: " + ", ".join(f"{rule} {n}" for rule, n in sorted(jobs.items())), flush=True)
    if args.dry_run:
        return

    seconds = None if args.minutes is None else args.minutes * 60 - (time.monotonic() - started) - 30
    log = workdir / "gpu_study.log"
    # A command stopped from outside (the device tool's time limit) stops Snakemake and still
    # writes its tables and brings back what it made; once Snakemake is done, SIGTERM waits.
    signal.signal(signal.SIGTERM, raise_terminated)
    code = run_snakemake(snakemake_command(args, workdir, overrides), log, seconds)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    results = workdir / "results"
    table, summary = rule_times(results)
    wall = time.monotonic() - started
    (workdir / "gpu_study.json").write_text(json.dumps(
        {"device": device, "grid": grid, "planned_jobs": jobs, "snakemake_exit": code, "wall_seconds": wall,
         "rules": summary, "overrides": study_config(args)}, indent=1))
    print("\nWall time and peak memory per rule (results/benchmarks):\n\n" + table, flush=True)
    if code > 0:
        print(f"\nSnakemake failed ({code}); its errors (whole log: {log}):\n{failures(log)}")
    comparisons = results / "tables" / "comparisons.md"
    primary = primary_rows(comparisons.read_text()) if comparisons.is_file() else ""
    print(f"\n## Primary comparisons ({comparisons.relative_to(workdir)})\n\n"
          + (primary or ("no primary rows in it" if comparisons.is_file() else "not made (yet)")))
    stopped = {STOPPED: "; stopped by --minutes, rerun to resume", TERMINATED: "; stopped by SIGTERM"}.get(code, "")
    print(f"\nWhole command: {wall / 60:.1f} min on {device} ({grid} grid{stopped}).")
    if args.save:
        save(workdir, args.save)
    sys.exit(143 if code == TERMINATED else 0 if code == 0 and primary else 1)


SAVED_FOLDERS = ("results/tables", "results/benchmarks", "results/logs")


def save(workdir: Path, out: Path) -> None:
    """What to bring back from the GPU machine, as at most 5 files in `out` itself (the device tool
    returns 8 files, no deeper than 2 folders): this run's own files, the comparisons table, and
    one gzipped tar of the tables, benchmark files and job logs (a few MB; the models and synthetic
    sets stay there)."""
    import tarfile

    from synthecg.io import partial_path

    out.mkdir(parents=True, exist_ok=True)
    for name in ("gpu_study.json", "gpu_study.log", "gpu_study.yaml", "results/tables/comparisons.md"):
        if (workdir / name).is_file():
            shutil.copy2(workdir / name, out / Path(name).name)
    partial = partial_path(out / "results.tar.gz")
    with tarfile.open(partial, "w:gz") as archive:
        for name in SAVED_FOLDERS:
            if (workdir / name).is_dir():
                archive.add(workdir / name, arcname=name)
    os.replace(partial, out / "results.tar.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True)
    make = modes.add_parser("prepare", help="here: the data stage's outputs and the wheels, into DIR")
    make.add_argument("dir", type=Path)
    make.add_argument("--results", type=Path,
                      help="results folder of a run whose data stage is done (its data/ and physionet/); "
                           "default: make presets/gpu.yaml's in --data-workdir")
    make.add_argument("--mirror", default=str(REPO.parent / "shared/data/physionet"),
                      help="the PhysioNet mirror the data stage downloads from: a folder (relative to the "
                           "current directory) or a URL")
    make.add_argument("--data-workdir", type=Path, default=Path(tempfile.gettempdir()) / "synthecg-gpu-data",
                      help="Snakemake's working directory for the data stage")
    make.add_argument("--wheel-cache", type=Path, help="a folder of already downloaded wheels to take first")
    make.add_argument("--no-wheels", action="store_true",
                      help="the data alone (a CPU rehearsal where Snakemake is installed)")
    go = modes.add_parser("run", help="there: the pipeline from DIR's data, the primary table last")
    go.add_argument("dir", type=Path)
    go.add_argument("--workdir", type=Path, help="Snakemake's working directory (default: the repository)")
    grid = go.add_mutually_exclusive_group()
    grid.add_argument("--full", action="store_true", help="presets/gpu.yaml's whole grid")
    grid.add_argument("--tiny", action="store_true", help="toy sizes on the CPU: a rehearsal of the code path")
    go.add_argument("--dry-run", action="store_true", help="lay out the data, list the jobs, stop")
    go.add_argument("--budget", type=float, default=0.25, help="the short grid's generator steps, x the preset's")
    go.add_argument("--seeds", type=int, default=3, help="the short grid's classifier seeds (2 at least for a test)")
    go.add_argument("--minutes", type=float, default=9.0,
                    help="stop Snakemake cleanly after this long, whole command (0: no limit)")
    go.add_argument("--save", type=Path,
                    help="bring back the tables, benchmark files and logs here, as 5 files (the device's $OUT)")
    go.add_argument("--cores", type=int, default=os.cpu_count())
    go.add_argument("--gpu-slots", type=int, default=4, help="as profiles/default offers for one card")
    go.add_argument("--site", type=Path, default=Path("/tmp/site"), help="where missing wheels are installed")
    args = parser.parse_args()
    if args.mode == "prepare":
        prepare(args)
    else:
        args.minutes = args.minutes or None
        run(args)


if __name__ == "__main__":
    main()
