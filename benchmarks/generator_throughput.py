"""Training and sampling throughput and peak memory of each generator, through the real training loop.

    .venv/bin/python benchmarks/generator_throughput.py                       # CPU, default + paper sizes
    python benchmarks/generator_throughput.py --device cuda --precision bf16 fp32   # on a GPU

For each generator and size ("default": config.yaml; "paper": the model's full-scale dataclass
defaults), each measurement runs in a fresh process so that peak memory is its own: a warm-up
`train()` call, then a timed one of `--steps` steps per stage (random 12-lead records of 10 s at
100 Hz; throughput does not depend on the values). Sampling times one `sample()` call of
`--sample-batch` records. Prints one table row per measurement.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from synthecg.generators.base import GENERATOR_NAMES, build, make_config  # noqa: E402
from synthecg.generators.training import train  # noqa: E402

N_LEADS, N_SAMPLES, N_CLASSES = 12, 1000, 4


def sized_config(name: str, size: str):
    overrides = yaml.safe_load((REPO / "config.yaml").read_text())["generators"].get(name, {}) if size == "default" else {}
    return make_config(name, overrides)


def measure(name: str, size: str, device: str, precision: str, steps: int, sample_batch: int) -> dict:
    torch.manual_seed(0)
    device = torch.device(device)
    config = sized_config(name, size)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(max(256, config.batch_size), N_LEADS, N_SAMPLES)).astype(np.float32)
    y = np.arange(len(x)) % N_CLASSES
    stage_fields = [f for f in ("steps", "prior_steps") if hasattr(config, f)]
    result = {"generator": name, "size": size, "device": device.type, "precision": precision,
              "batch_size": config.batch_size}
    with tempfile.TemporaryDirectory() as scratch:
        model = build(name, replace(config, **{f: 2 for f in stage_fields}), N_CLASSES, N_LEADS, N_SAMPLES)
        result["parameters"] = sum(p.numel() for p in model.parameters())
        common = dict(seed=0, fingerprint="bench", checkpoint_every=10**9, log_every=steps, device=device,
                      bf16=precision == "bf16")
        train(model, x, y, checkpoint_path=Path(scratch) / "warm.pt", **common)  # warm-up: allocations, autotuning
        model.config = replace(config, **{f: steps for f in stage_fields})
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        record = train(model, x, y, checkpoint_path=Path(scratch) / "timed.pt", **common)
        if device.type == "cuda":
            torch.cuda.synchronize()
        total_steps = steps * len(stage_fields)
        result["train_samples_per_s"] = round(total_steps * config.batch_size / record.wall_time_s, 1)
        labels = torch.arange(sample_batch, device=device) % N_CLASSES
        generator = torch.Generator(device=device).manual_seed(0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            model.sample(labels[:1], generator)  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            model.sample(labels, generator)
            if device.type == "cuda":
                torch.cuda.synchronize()
        result["sample_records_per_s"] = round(sample_batch / (time.perf_counter() - started), 2)
    if device.type == "cuda":
        result["peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    else:
        result["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generators", nargs="+", default=list(GENERATOR_NAMES))
    parser.add_argument("--sizes", nargs="+", default=["default", "paper"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--sample-batch", type=int, default=4)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement, as JSON
    args = parser.parse_args()
    if args.one:
        name, size, precision = args.one.split(",")
        print(json.dumps(measure(name, size, args.device, precision, args.steps, args.sample_batch)))
        return
    columns = ["generator", "size", "device", "precision", "parameters", "batch_size",
               "train_samples_per_s", "sample_records_per_s", "peak_memory_mb"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for name in args.generators:
        for size in args.sizes:
            for precision in args.precision:
                command = [sys.executable, __file__, "--one", f"{name},{size},{precision}", "--device", args.device,
                           "--steps", str(args.steps), "--sample-batch", str(args.sample_batch)]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode:
                    print(f"| {name} | {size} | {args.device} | {precision} | failed: {done.stderr.strip().splitlines()[-1]} |")
                    continue
                row = json.loads(done.stdout.strip().splitlines()[-1])
                print("| " + " | ".join(str(row[c]) for c in columns) + " |", flush=True)


if __name__ == "__main__":
    main()
