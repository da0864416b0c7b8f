"""The generators' whole GPU measurement in one command: throughput, recipes A/B, quality, privacy.

    # here, once: the data (the mirror's PTB-XL, every record; 47 MB, gzip) and the wheels the GPU
    # machine lacks (this command needs wfdb 4.3.1 alone, pure Python: the rhythm reader's QRS
    # detector), in .gpu-study, which git ignores; it prints this command's device call too
    .venv/bin/python benchmarks/gpu_study.py prepare .gpu-study
    # there (one H100 or H200, carrying .gpu-study; its python3 has torch, h5py, scipy, pandas, sklearn, yaml):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu-study/wheels/wfdb-*.whl && \
        export PYTHONPATH=/tmp/site:src && \
        { python3 -m pytest -q -p no:cacheprovider tests/test_generators.py -k gpu; \
          PYTHONUNBUFFERED=1 python3 benchmarks/gpu_generators.py --data .gpu-study/results/data/ptbxl.h5 \
          --out $OUT --minutes 7.5; }
    # (the measurement runs whatever the resume test says: a loan is too short to lose to one test)
    # (7.5: the device tool stops a command at 10 minutes, and installing and the resume test take ~1)
    # here, a rehearsal of the same code path at toy sizes on the CPU (tests/test_gpu_generators.py runs it)
    .venv/bin/python benchmarks/gpu_generators.py --data results/data/ptbxl.h5 --out /tmp/gpu --tiny

Three phases, each within its share of `--minutes` (phase 1 at most a fifth, in a process of its own
so that its GPU memory is free again afterwards, writing its rows as it measures them: where it
dies or overruns, the others go on from what it wrote; phase 2 until a deadline that leaves a
fifth, at least a minute, to phase 3; workers still running then are killed and reported; the
JSON is written after every phase):
1. Throughput (`generator_throughput.measure`): the device's dense bf16 matrix rate, then each
   generator at presets/gpu.yaml's size over `--batch-sizes` in bf16, and at the preset's batch
   in TF32 and with `torch.compile` (default and CUDA-graph modes): records/s, counted TFLOP/s and
   share of the peak.
2. The recipes, side by side on the one card: every variant of VARIANTS (or `--variants`) trains
   in its own process at once (in waves where their measured peak memory would not fit the card
   together), as the GPU slots of presets/gpu.yaml let the pipeline's jobs do,
   through the pipeline's own `fit_generator`, for as many steps as its measured rate alone
   gives it in its share of the training time (the rate divided by the number of variants: the
   card is shared). Each samples `--per-class` records of every class (and again at each of its
   `sample_at` settings: guidance scales and DiffWave's sampler, which need no retraining). One
   cut at the deadline, or ended by an error, after its first sample set is judged on the sets it
   wrote. Meanwhile the main process reads the real records' rhythms on the CPU cores.
   The aggregate: the counted FLOPs of all variants' steps over the phase's wall time, against
   the best single job's rate in phase 1 (what N jobs at once buy over one).
3. Judging on the CPU, every variant's preset-settings samples first, then the `sample_at` ones
   while the budget lasts: per class, the pipeline's rhythm reader and goal (`quality.generator_quality`,
   `quality.passes`: a detectable rhythm in >= 90 % of records, fitting the class within 15
   points of real records, amplitude within 25 %) and the privacy section's measures
   (`fidelity.privacy_measures`: exact copies of training records, DCR share on median beats
   against its real-vs-real permutation floor). A variant meets the generators' goal when every
   class passes and privacy does not flag it (`fidelity.privacy_flag`: no copy, and neither DCR
   measure beyond its floor by the permutation test).

Writes to --out: gpu_generators.json (everything), gpu_generators.md (the tables, also printed
last) and, per generator, its first variant's records as float16 HDF5 (at most 100 a class,
mV, `x` [N, 12, T], `y`, attributes classes, fs, leads, variant; ~10 MB) to judge elsewhere.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

from synthecg.config import merge_configs, read_config  # noqa: E402
from synthecg.data.store import metadata, normalise  # noqa: E402
from synthecg.evaluation.fidelity import privacy_flag, privacy_measures  # noqa: E402
from synthecg.evaluation.quality import generator_quality, real_reference  # noqa: E402
from synthecg.generators.base import make_config  # noqa: E402
from synthecg.generators.jobs import fit_generator  # noqa: E402
from synthecg.generators.training import load_generator  # noqa: E402
from synthecg.io import partial_path, write_json_atomically  # noqa: E402
from generator_throughput import STAGE_FIELDS  # noqa: E402

# Each variant: a generator, settings over presets/gpu.yaml (dotted keys as generator_quality's
# --set), and sampling-only settings to judge the same model at as well. The first variant of a
# generator is its preset as it stands: the baseline the others are A/B'd against.
VARIANTS = {
    # The sampler, A/B'd on the same model: the preset's deterministic DDIM chain (eta 0, 50 steps)
    # against ancestral noise (eta 1) at 100 steps and over DDPM's whole chain of 200. On the CPU
    # preset's model eta 1 tripled the records with a detectable rhythm, but their beats were
    # irregular in every class (docs/generators.md, "Measured: the sampler and the batch at the CPU
    # budget"): a question for a model that beats.
    "diffwave": ("diffwave", {}, [{"sampling_eta": 1.0, "sampling_steps": 100},
                                  {"sampling_eta": 1.0, "sampling_steps": 200}]),
    "diffwave-cfg": ("diffwave", {"generators.diffwave.p_uncond": 0.1}, [{"guidance_scale": 2.0}]),
    "diffwave-minsnr5": ("diffwave", {"generators.diffwave.min_snr_gamma": 5.0}, []),
    "diffwave-augment": ("diffwave", {"generators.training.augmentation.max_shift_seconds": 1.0,
                                      "generators.training.augmentation.scale_std": 0.1}, []),
    # The learning rate at batch 256, by the rule that carries the CPU preset's 1e-3 at batch 16
    # over: fixed (the preset), square root (x 4), linear (x 16).
    "diffwave-lr-sqrt": ("diffwave", {"generators.diffwave.learning_rate": 4.0e-3}, []),
    "diffwave-lr-linear": ("diffwave", {"generators.diffwave.learning_rate": 1.6e-2}, []),
    # Updates against records per update, at the same share of the card: on the CPU, batch 4 x 8,000
    # steps gave more records a detectable rhythm than batch 16 x 2,000 (the same records seen) in
    # every class (docs/generators.md). Its steps come from phase 1's batch-64 row.
    "diffwave-batch64": ("diffwave", {"generators.diffwave.batch_size": 64}, []),
    "timevqvae": ("timevqvae", {}, [{"guidance_scale": 2.0}]),
    # The authors' schedule since December 2024: prior lr 5e-3, 5 % warm-up, cosine to 0.1 of the peak.
    "timevqvae-authors": ("timevqvae", {"generators.timevqvae.prior_learning_rate": 5.0e-3,
                                        "generators.timevqvae.warmup_share": 0.05,
                                        "generators.timevqvae.final_lr_ratio": 0.1}, [{"guidance_scale": 2.0}]),
    "timediffusion": ("timediffusion", {}, []),
    # Not run by default (one of min-SNR and v-prediction is asked for, and ten jobs already fill an H100):
    "diffwave-vpred": ("diffwave", {"generators.diffwave.prediction": "v",
                                    "generators.diffwave.min_snr_gamma": 5.0}, []),
}
DEFAULT_VARIANTS = [name for name in VARIANTS if name != "diffwave-vpred"]
TINY_SIZES = {  # --tiny: the quick config's models, a few steps (CPU rehearsal of the code path)
    "generators.diffwave": {"residual_layers": 2, "residual_channels": 8, "embedding_dim": 16, "batch_size": 8,
                            "sampling_steps": 5},
    "generators.timediffusion": {"hidden_channels": 8, "max_dilation_exponent": 4, "batch_size": 8},
    "generators.timevqvae": {"batch_size": 8, "init_channels": 4, "hidden_channels": 16, "prior_hidden_lf": 16,
                             "prior_layers_lf": 1},
}


def dotted(settings: dict) -> dict:
    """{"a.b.c": v} -> {"a": {"b": {"c": v}}}, for merge_configs."""
    nested: dict = {}
    for key, value in settings.items():
        *parents, last = key.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = value
    return nested


def variant_config(name: str, tiny: bool) -> dict:
    config = read_config(REPO / "config.yaml", REPO / "presets/gpu.yaml")
    if tiny:
        config = merge_configs(config, dotted({f"{key}.{field}": value for key, fields in TINY_SIZES.items()
                                               for field, value in fields.items()}))
    return merge_configs(config, dotted(VARIANTS[name][1]))


# -- phase 1 -------------------------------------------------------------------------------------
COMPILE_SECONDS = 60.0  # at least what one torch.compile mode's row takes (compiling is tens of seconds)


def throughput(args, device, seconds: float, record=lambda rows, peak: None) -> tuple[list[dict], float]:
    """Phase 1, within `seconds`: what phase 2 needs first (every generator at its preset batch in
    the pipeline's precision), then the other batch sizes, TF32, and the compiled steps; what the
    time does not reach is listed as skipped. `record(rows, peak)` is called after every row, so
    that a process that dies in a later one (a compiler's abort, say) leaves the rows before it."""
    from generator_throughput import measure, peak_tflops

    started = time.perf_counter()
    peak = peak_tflops(device)
    record([], peak)
    precision = "bf16" if device.type == "cuda" else "fp32"
    size = "default" if args.tiny else "gpu"  # --tiny: the quick config's toy models
    generators = sorted({generator for generator, _, _ in (VARIANTS[v] for v in args.variants)})
    batch = {name: make_config(name, variant_config(name, args.tiny)["generators"][name]).batch_size
             for name in generators}
    plan = [(name, batch[name], precision, "none") for name in generators]
    plan += [(name, b, precision, "none") for name in generators for b in args.batch_sizes if b != batch[name]]
    if device.type == "cuda":
        plan += [(name, batch[name], "tf32", "none") for name in generators]
        plan += [(name, batch[name], "bf16", mode) for mode in args.compile for name in args.compile_generators
                 if name in generators]
    rows = []
    for name, batch_size, chosen, compile_mode in plan:
        # The time is only looked at between rows, so a compiled row starts only where it fits.
        left = seconds - (time.perf_counter() - started)
        if left <= 0 or (compile_mode != "none" and left < COMPILE_SECONDS):
            rows.append({"generator": name, "size": size, "stage": "", "device": device.type, "precision": chosen,
                         "compile": compile_mode, "batch": batch_size, "parameters": "",
                         "failed": "skipped: phase 1's time was up"})
            record(rows, peak)
            continue
        found = measure(name, size, device, chosen, compile_mode, batch_size, args.throughput_steps,
                        args.throughput_warmup, 0, peak)
        rows += found
        for row in found:
            print(json.dumps(row), flush=True)
        record(rows, peak)
    return rows, peak


def phase1(args) -> None:
    """Phase 1 in a process of its own, so that its GPU memory (batch 1024, compiled graphs) is
    free again for phase 2 and the main process never starts CUDA before it forks rhythm readers."""
    device = torch.device(args.device)
    total = torch.cuda.get_device_properties(device).total_memory / 2**20 if device.type == "cuda" else float("inf")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"

    def record(rows, peak):  # whole or not at all: the process may die at any moment after
        write_json_atomically({"rows": rows, "peak": peak, "device": name, "memory_mb": total}, args.phase1)

    throughput(args, device, args.phase1_seconds, record)


def alone_rate(rows: list[dict], name: str, stage: str, batch: int) -> dict | None:
    """The fastest measured setting of the pipeline's training (bf16 or fp32, not compiled) of one stage at `batch`,
    else at the nearest measured batch."""
    mine = [r for r in rows if r["generator"] == name and r["stage"] == stage and r["compile"] == "none"
            and r["precision"] in ("bf16", "fp32") and "failed" not in r]
    if not mine:
        return None
    return min(mine, key=lambda r: (abs(np.log(r["batch"] / batch)), -r["records_per_s"]))


# -- phase 2 -------------------------------------------------------------------------------------
def plan_steps(name: str, config: dict, rows: list[dict], seconds: float, sharing: int, tiny: bool) -> dict:
    """Steps per stage: the stage's measured rate alone, shared `sharing` ways, over its share of
    `seconds` (TimeVQVAE: a third to the VQ-VAE, two thirds to the prior, as its CPU presets split)."""
    generator = VARIANTS[name][0]
    model_config = make_config(generator, config["generators"][generator])
    if tiny:
        return {field: 3 for field in set(STAGE_FIELDS.values()) if hasattr(model_config, field)}
    shares = {"vqvae": 1 / 3, "prior": 2 / 3} if generator == "timevqvae" else {"main": 1.0}
    steps = {}
    for stage, share in shares.items():
        rate = alone_rate(rows, generator, stage, model_config.batch_size)
        per_second = rate["records_per_s"] / model_config.batch_size if rate else 1.0  # steps/s alone at its batch
        # 0.8: jobs sharing a card lose some of its rate to switching between them
        steps[STAGE_FIELDS[stage]] = max(10, int(0.8 * seconds * share * per_second / sharing))
    return steps


def worker(args) -> None:
    """One variant: train through the pipeline's fit_generator, sample, save the records (mV)."""
    spec = json.loads(args.worker)
    name, workdir = spec["variant"], Path(spec["workdir"])
    generator, _, sample_at = VARIANTS[name]
    config = spec["config"]
    settings = {**config["generators"][generator], **spec["steps"]}
    training = config["generators"]["training"]
    out = workdir / name
    sidecar = fit_generator(
        args.data, generator, settings, out_model=out / "model.pt", out_sidecar=out / "model.json",
        out_curve_csv=out / "loss.csv", out_curve_png=out / "loss.png", checkpoint_path=out / "checkpoint.pt",
        seed=training.get("seed", 0), checkpoint_every=10**9, log_every=100,
        class_balance=training.get("class_balance", 1.0), leads=config["generators"].get("leads", "independent"),
        device=args.device, augmentation=training.get("augmentation"),
    )
    from generator_quality import sample_classes

    device = torch.device(args.device)
    model = load_generator(out / "model.pt", device)
    meta = metadata(args.data)
    for index, changes in enumerate([{}] + sample_at):
        model.config = dataclasses.replace(make_config(generator, dataclasses.asdict(model.config)), **changes)
        started = time.perf_counter()
        x, y = sample_classes(model, sidecar["leads"], meta, sidecar["trained_classes"], args.per_class, device)
        path = out / f"samples{index}.npz"
        partial = partial_path(path)  # whole or not at all: the deadline may kill this process
        with open(partial, "wb") as handle:
            np.savez(handle, x=x.astype(np.float16), y=y, sample_seconds=time.perf_counter() - started,
                     changes=json.dumps(changes))
        os.replace(partial, path)


PHASE1_LOST_MEMORY_MB = 76_000.0  # the card's memory where phase 1 could not say: an H100's, the smaller
CONTEXT_MB = 600  # what a CUDA process holds beside its tensors (context, cuDNN and cuBLAS workspaces)


def memory_estimate(name: str, rows: list[dict], tiny: bool) -> float:
    """MB one variant's training needs on the card: its largest stage's measured peak alone, plus a context."""
    generator = VARIANTS[name][0]
    batch = make_config(generator, variant_config(name, tiny)["generators"][generator]).batch_size
    peaks = [(alone_rate(rows, generator, stage, batch) or {}).get("peak_memory_mb", 0) for stage in ("main", "vqvae", "prior")]
    return max(peaks) + CONTEXT_MB


def waves(names: list[str], needs: dict[str, float], capacity_mb: float) -> list[list[str]]:
    """The variants in as few groups as fit the card's memory at once (first fit, largest first),
    each group keeping the variants' order; a variant larger than the card gets a group of its own."""
    groups: list[list[str]] = []
    for name in sorted(names, key=lambda n: -needs[n]):
        group = next((g for g in groups if sum(needs[n] for n in g) + needs[name] <= capacity_mb), None)
        if group is None:
            groups.append([name])
        else:
            group.append(name)
    return [sorted(group, key=names.index) for group in groups]


def launch(args, workdir: Path, names: list[str], rows: list[dict], seconds: float) -> tuple[dict, dict]:
    """Start one wave of variants' workers at once, sharing `seconds` of the card: their plans and
    their processes (with logs)."""
    plans, processes = {}, {}
    for name in names:
        config = variant_config(name, args.tiny)
        steps = plan_steps(name, config, rows, seconds, len(names), args.tiny)
        plans[name] = {"steps": steps, "settings": VARIANTS[name][1], "sample_at": VARIANTS[name][2]}
        spec = json.dumps({"variant": name, "workdir": str(workdir), "config": config, "steps": steps})
        log = open(workdir / f"{name}.log", "w")
        processes[name] = (subprocess.Popen(
            [sys.executable, __file__, "--worker", spec, "--data", str(args.data), "--device", args.device,
             "--per-class", str(args.per_class)],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}), log)
    return plans, processes


def finish(processes: dict, workdir: Path, deadline: float) -> tuple[dict[str, str], dict[str, str]]:
    """Wait for a wave's workers until `deadline` (perf_counter seconds), killing those still
    running then. Returns the failed ones' log tails, and apart from them the variants killed or
    ended by an error while sampling at a setting of their `sample_at` (trained, and sampled at the
    preset's settings): those are judged on the sample sets they wrote."""
    failed, cut = {}, {}
    for name, (process, log) in processes.items():
        try:
            code = process.wait(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = "killed at the time limit"
        if code:
            tail = f"exit {code}\n" + (workdir / f"{name}.log").read_text()[-2000:]
            sampled = (workdir / name / "model.json").is_file() and (workdir / name / "samples0.npz").is_file()
            (cut if sampled else failed)[name] = tail
        log.close()
    return failed, cut


# -- phase 3 -------------------------------------------------------------------------------------
def sample_sets(workdir: Path, names) -> list[tuple[str, Path]]:
    """(variant, samples file) to judge: every variant's preset-settings set (samples0) first, then
    the sets of its `sample_at` settings, so that a short phase 3 judges every variant once."""
    sets = [(name, path) for name in names for path in sorted((workdir / name).glob("samples*.npz"))]
    return sorted(sets, key=lambda item: item[1].name != "samples0.npz")


def judge(args, workdir: Path, name: str, path: Path, reference: dict, meta: dict, train_norm: np.ndarray,
          heldout_norm: np.ndarray) -> dict:
    """One sample set of a variant, judged: quality per class, privacy, and whether it meets the goal."""
    sidecar = json.loads((workdir / name / "model.json").read_text())
    saved = np.load(path)
    x, y = saved["x"].astype(np.float32), saved["y"]
    quality = generator_quality(x, y, reference, meta["classes"], meta["fs"], meta["leads"], args.processes)
    privacy = privacy_measures(normalise(x, meta), train_norm, heldout_norm, meta["fs"])
    changes, flag = json.loads(str(saved["changes"])), privacy_flag(privacy)
    return {
        "run": name + "".join(f" {key} {value:g}" for key, value in changes.items()), "variant": name,
        "generator": VARIANTS[name][0], "sampled_with": changes, "steps": sidecar["stages"],
        "train_minutes": sidecar["wall_time_s"] / 60, "sample_seconds": float(saved["sample_seconds"]),
        "training_records": sidecar["training_records"], "quality": quality, "privacy": privacy,
        "privacy_flag": flag, "samples": str(path), "meets_goal": bool(quality["passes_all_classes"] and not flag),
    }


def judge_sets(workdir: Path, names, plans: dict, budget_end: float, keep, judge_one) -> None:
    """Judge the variants' sample sets in `sample_sets` order with `judge_one(name, path)`, handing
    each result to `keep`. Past `budget_end` (perf_counter seconds) only preset-settings sets are
    judged; the others are listed in their plan's `not_judged`. A set whose judging fails is listed
    in `judging_failed`, and the rest go on."""
    for name, path in sample_sets(workdir, names):
        if path.name != "samples0.npz" and time.perf_counter() > budget_end:
            plans[name].setdefault("not_judged", []).append(path.name)
            continue
        try:
            keep(judge_one(name, path))
        except Exception as error:  # one variant's failure must not lose the others' results
            plans[name].setdefault("judging_failed", []).append(f"{path.name}: {type(error).__name__}: {error}")
            print(f"{name}: judging {path.name} failed: {error}", file=sys.stderr)


def write_samples(run: dict, meta: dict, path: Path, per_class: int) -> None:
    import h5py

    saved = np.load(run["samples"])
    keep = np.concatenate([np.flatnonzero(saved["y"] == c)[:per_class] for c in np.unique(saved["y"])])
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", data=saved["x"][keep], compression="gzip")
        handle.create_dataset("y", data=saved["y"][keep])
        handle.attrs.update(classes=json.dumps(meta["classes"]), fs=meta["fs"], leads=json.dumps(meta["leads"]),
                            variant=run["variant"], units="mV")


# -- tables --------------------------------------------------------------------------------------
def tables(report: dict) -> str:
    from generator_throughput import markdown

    lines = ["## Throughput (phase 1)", "", markdown(report["throughput"], report["peak_tflop_per_s"], report["device"]),
             "", "## Side by side on one card (phase 2)", "",
             f"{len(report['plans'])} trainings in {len(report['waves'])} wave(s) at once, {report['phase2_seconds']:.0f} s wall: "
             f"{report['aggregate_tflop_per_s']:.1f} TFLOP/s counted over all of them, against "
             f"{report['best_alone_tflop_per_s']:.1f} for the fastest job alone in phase 1 "
             f"({report['aggregate_tflop_per_s'] / max(report['best_alone_tflop_per_s'], 1e-9):.2f}x).", "",
             "| variant | settings | steps | train min | records seen | note |", "|---|---|---|---|---|---|"]
    for name, plan in report["plans"].items():
        notes = []
        if "failed" in plan:
            notes.append("failed (its log's end is in the JSON)")
        if "sampling_cut" in plan:
            notes.append("cut while sampling at a sample_at setting")
        if "not_judged" in plan:
            notes.append(f"not judged, the budget spent: {', '.join(plan['not_judged'])}")
        if "judging_failed" in plan:
            notes.append(f"judging failed: {'; '.join(plan['judging_failed'])}")
        lines.append(f"| {name} | {json.dumps(plan['settings'])} | {json.dumps(plan.get('done_steps', plan['steps']))} "
                     f"| {plan.get('train_minutes', float('nan')):.1f} | {plan.get('record_views', 0):,} "
                     f"| {'; '.join(notes)} |")
    lines += ["", "## Quality per class and privacy (phase 3)", "",
              # rate and RR irregularity (medians over records with a detectable rhythm): whether the beats
              # found are the class's rhythm; undertrained models beat slowly and irregularly in every class
              "| run | class | detectable | fits class | generator's label floor | real fits (held-out) "
              "| rate bpm (real held-out) | RR irregularity (real held-out) | amplitude | class passes |",
              "|---|---|---|---|---|---|---|---|---|---|"]

    def number(value, digits):
        return "–" if value is None else f"{value:.{digits}f}"

    for run in report["runs"]:
        for name, entry in run["quality"]["per_class"].items():
            synthetic, real = entry["synthetic"], entry.get("real_heldout") or {}
            lines.append(f"| {run['run']} | {name} | {synthetic['detectable']:.2f} | {number(synthetic['fits_class'], 2)} "
                         f"| {number(entry.get('generator_label_floor'), 2)} | {number(real.get('fits_class'), 2)} "
                         f"| {number(synthetic.get('heart_rate_median_bpm'), 0)} ({number(real.get('heart_rate_median_bpm'), 0)}) "
                         f"| {number(synthetic.get('rr_irregularity_median'), 2)} ({number(real.get('rr_irregularity_median'), 2)}) "
                         f"| {entry['amplitude_ratio_median']:.2f} | {'pass' if entry['passes'] else 'fail'} |")
    lines += ["", "| run | exact copies | DCR share (floor, interval) | nearest-train corr. (real held-out) | meets goal |",
              "|---|---|---|---|---|"]
    for run in report["runs"]:
        p, near = run["privacy"], run["quality"].get("nearest_train_correlation_median", {})
        share = p.get("dcr_share", {})
        interval = share.get("floor_interval", [float("nan")] * 2)
        lines.append(f"| {run['run']} | {p['exact_copies']['value']} | {share.get('value', float('nan')):.2f} "
                     f"({share.get('floor', float('nan')):.2f}, {interval[0]:.2f}-{interval[1]:.2f}) "
                     f"| {near.get('synthetic', float('nan')):.2f} ({near.get('real_heldout', float('nan')):.2f}) "
                     f"| {'yes' if run['meets_goal'] else 'no' + (': ' + run['privacy_flag'] if run['privacy_flag'] else '')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("results/data/ptbxl.h5"))
    parser.add_argument("--out", type=Path, required=False)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--minutes", type=float, default=9.0, help="the whole command's budget")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256, 1024])
    parser.add_argument("--compile", nargs="*", default=["default", "reduce-overhead"],
                        help="torch.compile modes to time (compiling takes tens of seconds a mode)")
    parser.add_argument("--compile-generators", nargs="*", default=["diffwave"],
                        help="the generators whose compiled step is timed (DiffWave: most of the GPU time)")
    parser.add_argument("--throughput-steps", type=int, default=10)
    parser.add_argument("--throughput-warmup", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2) - 2),
                        help="processes reading rhythms (~60 ms a record each)")
    parser.add_argument("--tiny", action="store_true", help="toy sizes and steps: a CPU rehearsal of the code path")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--phase1", type=Path, help=argparse.SUPPRESS)  # internal: phase 1's rows, as JSON here
    parser.add_argument("--phase1-seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tiny:
        args.batch_sizes, args.compile, args.throughput_steps, args.throughput_warmup = [8], [], 1, 0
    if args.worker:
        worker(args)
        return
    if args.phase1:
        phase1(args)
        return
    if args.out is None:
        parser.error("--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    budget = args.minutes * 60
    report = {"command": " ".join(sys.argv), "variants": {v: VARIANTS[v] for v in args.variants}}

    def save():  # after every phase: a run cut off by the machine's limit keeps what it measured
        (args.out / "gpu_generators.json").write_text(json.dumps(report, indent=1, default=float))

    # Phase 1 gets at most a fifth of the budget; phase 2 trains and samples until a deadline that
    # leaves the last fifth (at least a minute) to judging on the CPU and writing.
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        phase1_json = workdir / "phase1.json"
        # A phase 1 that dies or overruns loses only its own later rows: phase 2 plans from what it
        # wrote (without a rate, a variant gets 1 step a second: few, but it finishes).
        try:
            ended = subprocess.run([sys.executable, __file__, "--phase1", str(phase1_json), "--phase1-seconds",
                                    str(0.2 * budget), *sys.argv[1:]], timeout=0.2 * budget + 120).returncode
        except subprocess.TimeoutExpired:
            ended = "killed at its time limit"
        measured = json.loads(phase1_json.read_text()) if phase1_json.is_file() else {
            "rows": [], "peak": float("nan"), "device": args.device, "memory_mb": PHASE1_LOST_MEMORY_MB}
        rows, peak = measured["rows"], measured["peak"]
        report |= {"device": measured["device"], "throughput": rows, "peak_tflop_per_s": peak,
                   "phase1_seconds": time.perf_counter() - started, "phase1_exit": ended}
        if ended:
            print(f"phase 1 ended with {ended}; going on with its {len(rows)} rows", file=sys.stderr, flush=True)
        save()
        left = budget - (time.perf_counter() - started)
        deadline = time.perf_counter() + left - max(60.0, 0.2 * budget)
        train_seconds = max(30.0, 0.75 * (deadline - time.perf_counter()))  # the rest: starting, sampling
        meta = metadata(args.data)
        # As many variants at once as the card's memory holds (their measured peaks alone): one
        # wave on an H200, likely two on an H100. Every variant gets the same share of the card's
        # time, whatever its wave: its wave's time over its wave's size.
        needs = {name: memory_estimate(name, rows, args.tiny) for name in args.variants}
        capacity = 0.9 * measured["memory_mb"]
        groups = waves(args.variants, needs, capacity)
        report["waves"] = groups
        print(f"{len(args.variants)} variants in {len(groups)} wave(s) of the card's {capacity:,.0f} MB (90 %): "
              + " | ".join(", ".join(f"{n} ~{needs[n]:,.0f} MB" for n in g) for g in groups), flush=True)
        from generator_quality import real_sets

        phase2_started, plans, failed = time.perf_counter(), {}, {}
        for index, group in enumerate(groups):
            share = train_seconds * len(group) / len(args.variants)
            wave_end = time.perf_counter() + (deadline - time.perf_counter()) * len(group) / sum(
                len(g) for g in groups[index:])
            wave_plans, processes = launch(args, workdir, group, rows, share)
            plans |= wave_plans
            if index == 0:  # the real records' rhythms, read on the CPU cores the trainings leave
                _, train, heldout_x, heldout_y = real_sets(args.data)
                readers = max(1, min(args.processes, (os.cpu_count() or 2) - len(group) - 1))
                reference = real_reference(heldout_x, heldout_y, meta["fs"], meta["leads"], train["x"], train["y"],
                                           readers)
                train_norm, heldout_norm = normalise(train["x"], meta), normalise(heldout_x, meta)
            wave_failed, wave_cut = finish(processes, workdir, wave_end)
            failed |= wave_failed
            for name, tail in wave_cut.items():
                plans[name]["sampling_cut"] = tail
                print(f"{name}: ended while sampling at an extra setting; judged on the sets it wrote", file=sys.stderr)
        report["phase2_seconds"] = time.perf_counter() - phase2_started
        total_flops = 0.0
        for name, plan in plans.items():
            if name in failed:
                plan["failed"] = failed[name]
                print(f"{name} failed:\n{failed[name]}", file=sys.stderr)
                continue
            sidecar = json.loads((workdir / name / "model.json").read_text())
            generator = VARIANTS[name][0]
            batch = sidecar["config"]["batch_size"]
            plan |= {"done_steps": sidecar["stages"], "train_minutes": sidecar["wall_time_s"] / 60,
                     "record_views": batch * sum(sidecar["stages"].values())}
            for stage, steps in sidecar["stages"].items():
                rate = alone_rate(rows, generator, stage, batch)
                if rate:
                    total_flops += rate["gflop_per_step"] * 1e9 * batch / rate["batch"] * steps
        report["plans"] = plans
        report["aggregate_tflop_per_s"] = total_flops / report["phase2_seconds"] / 1e12
        report["best_alone_tflop_per_s"] = max([r["tflop_per_s"] for r in rows if "failed" not in r] or [0.0])

        save()
        runs = report["runs"] = []

        def judged(run):  # kept as it comes: a run cut off by the machine's limit keeps what it judged
            runs.append(run)
            save()

        judge_sets(workdir, [name for name in plans if name not in failed], plans, started + budget, judged,
                   lambda name, path: judge(args, workdir, name, path, reference, meta, train_norm, heldout_norm))
        written = set()
        for run in runs:
            if run["generator"] not in written and not run["sampled_with"]:
                write_samples(run, meta, args.out / f"{run['generator']}.h5", min(args.per_class, 100))
                written.add(run["generator"])
    report["total_seconds"] = time.perf_counter() - started
    save()
    text = tables(report) + f"\n\nWhole command: {report['total_seconds'] / 60:.1f} min on {report['device']}."
    (args.out / "gpu_generators.md").write_text(text + "\n")
    print("\n" + text)


if __name__ == "__main__":
    main()
