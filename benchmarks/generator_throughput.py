"""How much of the machine each generator's training uses: records/s, FLOP/s and its share of the peak.

    .venv/bin/python benchmarks/generator_throughput.py                     # CPU: config.yaml's sizes, batch 16
    python benchmarks/generator_throughput.py --device cuda --sizes gpu paper \\
        --batch-sizes 16 64 256 1024 --precision tf32 bf16 --compile none default   # on a GPU

For each generator, size (a config file's settings: `default` is config.yaml, `cpu`, `gpu` and
`paper` the presets merged over it), stage (TimeVQVAE has two), batch size, precision and
compilation, it times `--steps` training steps after `--warmup` ones: the steps of the shared
training loop (`synthecg.generators.training.train`: AdamW, gradient clipping at 1, autocast), on
random 12-lead records of 10 s at 100 Hz (throughput does not depend on the values) drawn from
256 records on the device. It counts each step's floating-point operations with
`torch.utils.flop_counter` (matrix products, convolutions and attention, forward and backward: the
work a matrix unit can do; elementwise work is not counted), so `TFLOP/s` is that count over the
measured time, and `% peak` its share of this device's measured dense bf16 matrix rate (an
8192^3 product on a GPU, 2048^3 fp32 on the CPU), which `--peak-only` prints alone.

Precision: `fp32` (TF32 off), `tf32` (TF32 matrix products and convolutions), `bf16` (bf16
autocast, the pipeline's default on CUDA). Compilation: `none`, or a `torch.compile` mode of the
loss (`default`, `reduce-overhead`, which replays CUDA graphs, `max-autotune`); a mode that fails
on a model is reported as failed, not hidden. On the CPU each measurement runs in a fresh process
so that peak memory is its own; on a GPU in one process, peak memory reset between them.
Sampling: records/s of one `sample()` call of `--sample-batch` records (none with 0).
"""

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from synthecg.config import read_config  # noqa: E402
from synthecg.generators.base import GENERATOR_NAMES, build, make_config  # noqa: E402

N_LEADS, N_SAMPLES, N_CLASSES, FS, N_RECORDS = 12, 1000, 4, 100, 256
STAGE_FIELDS = {"main": "steps", "vqvae": "steps", "prior": "prior_steps"}  # each stage's steps in its config
SIZES = {"default": None, "cpu": "presets/cpu.yaml", "gpu": "presets/gpu.yaml", "paper": "presets/paper.yaml"}
COLUMNS = ["generator", "size", "stage", "device", "precision", "compile", "batch", "parameters", "gflop_per_step",
           "records_per_s", "tflop_per_s", "percent_peak", "sample_records_per_s", "peak_memory_mb"]


def sized_config(name: str, size: str, batch_size: int | None):
    preset = SIZES[size]
    settings = read_config(REPO / "config.yaml", preset and REPO / preset)["generators"].get(name, {})
    config = make_config(name, settings)
    return dataclasses.replace(config, batch_size=batch_size) if batch_size else config


def set_precision(precision: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"


def peak_tflops(device: torch.device) -> float:
    """Dense matrix product rate of this device: bf16 8192^3 on a GPU, fp32 2048^3 on the CPU."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (2048, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    started, repeats = time.perf_counter(), 10
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * n**3 * repeats / (time.perf_counter() - started) / 1e12


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def stage_step(model, stage: str, inputs, optimizer, parameters, loss_fn, batch_size: int, bf16: bool):
    """One step as the shared training loop takes it, on a random batch of `inputs`' rows."""
    index = torch.randint(0, len(inputs[0]), (batch_size,), device=inputs[0].device)
    with torch.autocast(inputs[0].device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = loss_fn(*(tensor[index] for tensor in inputs), stage)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, 1.0)
    optimizer.step()


def measure(name: str, size: str, device: torch.device, precision: str, compile_mode: str, batch_size: int,
            steps: int, warmup: int, sample_batch: int, peak: float) -> list[dict]:
    torch.manual_seed(0)
    set_precision(precision)
    config = sized_config(name, size, batch_size)
    x = torch.randn(N_RECORDS, N_LEADS, N_SAMPLES, device=device)
    y = torch.arange(N_RECORDS, device=device) % N_CLASSES
    model = build(name, config, N_CLASSES, N_LEADS, N_SAMPLES, FS).to(device)
    model.prepare(x, y)
    bf16 = precision == "bf16"
    rows = []
    for stage in model.training_plan():
        parameters = list(model.stage_parameters(stage.name))
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for parameter in parameters:
            parameter.requires_grad_(True)
        optimizer = torch.optim.AdamW(parameters, lr=1e-6, weight_decay=0.0)  # tiny: the weights barely move
        model.train()
        inputs = model.stage_inputs(stage.name, x, y)
        row = {"generator": name, "size": size, "stage": stage.name, "device": device.type, "precision": precision,
               "compile": compile_mode, "batch": config.batch_size, "parameters": sum(p.numel() for p in parameters)}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        try:
            with FlopCounterMode(display=False) as counter:
                stage_step(model, stage.name, inputs, optimizer, parameters, model.loss, config.batch_size, bf16)
            flops = counter.get_total_flops()
            loss_fn = model.loss if compile_mode == "none" else torch.compile(model.loss, mode=compile_mode)
            for _ in range(warmup):  # allocations, autotuning, compilation
                stage_step(model, stage.name, inputs, optimizer, parameters, loss_fn, config.batch_size, bf16)
            synchronize(device)
            started = time.perf_counter()
            for _ in range(steps):
                stage_step(model, stage.name, inputs, optimizer, parameters, loss_fn, config.batch_size, bf16)
            synchronize(device)
            seconds = time.perf_counter() - started
        except Exception as error:  # a compile mode a model does not support, or out of memory
            rows.append({**row, "failed": f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"})
            torch.cuda.empty_cache() if device.type == "cuda" else None
            continue
        rate = flops * steps / seconds / 1e12
        rows.append({**row, "gflop_per_step": round(flops / 1e9, 2),
                     "records_per_s": round(steps * config.batch_size / seconds, 1),
                     "tflop_per_s": round(rate, 3), "percent_peak": round(100 * rate / peak, 2),
                     "peak_memory_mb": peak_memory_mb(device)})
    if sample_batch and rows and "failed" not in rows[-1]:
        model.eval()
        labels = torch.arange(sample_batch, device=device) % N_CLASSES
        generator = torch.Generator(device=device).manual_seed(0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            model.sample(labels[:1], generator)  # warm-up
            synchronize(device)
            started = time.perf_counter()
            model.sample(labels, generator)
            synchronize(device)
        rows[-1]["sample_records_per_s"] = round(sample_batch / (time.perf_counter() - started), 2)
    return rows


def peak_memory_mb(device: torch.device) -> int:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**20)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def markdown(rows: list[dict], peak: float, device: str) -> str:
    lines = [f"Peak dense matrix rate measured on {device}: {peak:.1f} TFLOP/s", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        if "failed" in row:
            lines.append("| " + " | ".join(str(row.get(c, "")) for c in COLUMNS[:8]) + f" | failed: {row['failed']} |")
        else:
            lines.append("| " + " | ".join(str(row.get(c, "")) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generators", nargs="+", default=list(GENERATOR_NAMES))
    parser.add_argument("--sizes", nargs="+", default=["default"], choices=list(SIZES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[0], help="0: the size's own batch size")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "tf32", "bf16"])
    parser.add_argument("--compile", nargs="+", default=["none"],
                        choices=["none", "default", "reduce-overhead", "max-autotune"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--sample-batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (CPU runs)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--peak-only", action="store_true", help="print the device's measured matrix rate and stop")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one CPU measurement, as JSON
    parser.add_argument("--peak", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peak = args.peak or peak_tflops(device)
    if args.peak_only:
        print(f"{peak:.1f} TFLOP/s")
        return
    if args.one:
        name, size, precision, compile_mode, batch = args.one.split(",")
        print(json.dumps(measure(name, size, device, precision, compile_mode, int(batch), args.steps, args.warmup,
                                 args.sample_batch, peak)))
        return
    rows = []
    for name in args.generators:
        for size in args.sizes:
            for batch in args.batch_sizes:
                for precision in args.precision:
                    for compile_mode in args.compile:
                        if device.type == "cuda":
                            found = measure(name, size, device, precision, compile_mode, batch, args.steps,
                                            args.warmup, args.sample_batch, peak)
                        else:
                            found = one_process(args, name, size, precision, compile_mode, batch, peak)
                        rows += found
                        for row in found:
                            print(json.dumps(row), file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps({"peak_tflop_per_s": peak, "device": describe(device), "rows": rows}, indent=1))
    print(markdown(rows, peak, describe(device)))


def one_process(args, name, size, precision, compile_mode, batch, peak) -> list[dict]:
    command = [sys.executable, __file__, "--one", f"{name},{size},{precision},{compile_mode},{batch}",
               "--device", args.device, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--sample-batch", str(args.sample_batch), "--threads", str(args.threads), "--peak", str(peak)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [{"generator": name, "size": size, "stage": "", "device": args.device, "precision": precision,
                 "compile": compile_mode, "batch": batch, "parameters": "", "failed": reason}]
    return json.loads(done.stdout.strip().splitlines()[-1])


def describe(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"


if __name__ == "__main__":
    main()
