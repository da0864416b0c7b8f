"""Performance of the pipeline itself (issue #6): the paper preset's job count and dry-run time, the
default run end to end, and a no-op rerun of it.

    python benchmarks/pipeline_performance.py paper-dry-run
    python benchmarks/pipeline_performance.py default-run --cores 2 [--workdir DIR] [--physionet-url URL]
    python benchmarks/pipeline_performance.py default-run --preset presets/cpu.yaml   # the one-hour study

`default-run` runs `snakemake all` with the repository's config.yaml (and a preset over it, if
given) in a work directory (results land there, not in this checkout), then the report, then the
same command again, which must schedule nothing. Goals: the run under 15 minutes on 2 CPU cores
against the local mirror (presets/cpu.yaml: under 60 minutes), the no-op rerun under 5 s. Prints
a table; `--json` also writes the figures to a file.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
MIRROR = REPO.parent / "shared" / "data" / "physionet"
RUN_GOALS_S = {"config.yaml": 15 * 60, "presets/cpu.yaml": 60 * 60}


def snakemake(workdir: Path, *args: str) -> tuple[float, str]:
    command = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout + result.stderr


def job_stats(output: str) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints before a (dry) run: jobs per rule."""
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", output, re.M)}


def paper_dry_run(args) -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        elapsed, output = snakemake(Path(workdir), "--configfile", str(REPO / "presets/paper.yaml"), "--dry-run",
                                    "all")
    stats = job_stats(output)
    return {"paper_jobs": stats.get("total"), "paper_jobs_per_rule": {k: v for k, v in stats.items() if k != "total"},
            "paper_dry_run_s": round(elapsed, 2)}


def default_run(args) -> dict:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="synthecg-default-run-"))
    workdir.mkdir(parents=True, exist_ok=True)
    configs = [str(REPO / "config.yaml"), *([str(Path(args.preset).resolve())] if args.preset else [])]
    common = ["--configfile", *configs, "--config", f"physionet_url={args.physionet_url}"]
    goal_s = RUN_GOALS_S.get(args.preset or "config.yaml", 900)
    run_s, output = snakemake(workdir, *common, "--cores", str(args.cores), "all")
    jobs = job_stats(output).get("total", 0)
    report_s, _ = snakemake(workdir, *common, "--report", "results/report.html")
    rerun_s, rerun_output = snakemake(workdir, *common, "--cores", str(args.cores), "all")
    rescheduled = job_stats(rerun_output).get("total", 0)
    return {"workdir": str(workdir), "cores": args.cores, "default_jobs": jobs, "default_run_s": round(run_s, 1),
            "report_s": round(report_s, 1), "noop_rerun_s": round(rerun_s, 2), "noop_rerun_jobs": rescheduled,
            "preset": args.preset, "goal_s": goal_s,
            "goals_met": {"run_under_goal": run_s < goal_s, "noop_rerun_under_5_s": rerun_s < 5,
                          "noop_rerun_schedules_nothing": rescheduled == 0}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("paper-dry-run").set_defaults(run=paper_dry_run)
    default = sub.add_parser("default-run")
    default.add_argument("--cores", type=int, default=2)
    default.add_argument("--workdir", help="where results go (default: a new temporary folder, kept)")
    default.add_argument("--physionet-url", default=str(MIRROR))
    default.add_argument("--preset", help="a preset merged over config.yaml, e.g. presets/cpu.yaml")
    default.set_defaults(run=default_run)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = args.run(args)
    for key, value in figures.items():
        print(f"{key:28} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
