"""Per class, do a generator's records beat like real records of that class? Measured on real records.

    # the data first (the mirror, every record), then the three generators as presets/cpu.yaml trains them:
    .venv/bin/snakemake preprocess --configfile presets/cpu.yaml --config physionet_url=../shared/data/physionet
    .venv/bin/python benchmarks/generator_quality.py --config presets/cpu.yaml --out quality.json
    # the quality curve: one run per share of the configured steps
    .venv/bin/python benchmarks/generator_quality.py --config presets/cpu.yaml --generators diffwave --budgets 0.25 0.5 1
    # on a GPU, with a setting changed over the preset's
    .venv/bin/python benchmarks/generator_quality.py --config presets/cpu.yaml --generators timevqvae --device cuda \\
        --budgets 2 --set generators.timevqvae.batch_size=128
    # models the pipeline trained, sampled and judged without training
    .venv/bin/python benchmarks/generator_quality.py --config presets/cpu.yaml --models results/generators/ptbxl --replicate 0
    # TimeDiffusion: nearness to its seed records against quality, sampling only
    .venv/bin/python benchmarks/generator_quality.py --config presets/cpu.yaml --models results/generators/ptbxl --replicate 0 \\
        --generators timediffusion --proximity 0.9 0.6 0.3

Each generator is trained as the pipeline trains it (`synthecg.generators.jobs.fit_generator`,
with the settings of config.yaml merged with --config) on the training split of --data, on
--threads CPU threads (or --device cuda), then samples --per-class records of every class. Per
class it prints (`synthecg.evaluation.quality`): the share of synthetic records with a detectable
rhythm and the share whose rhythm fits the class; the same share for real records of the class
(training, validation and test splits; held-out and training also apart) and the shuffled-label
floor; the amplitude ratio to real; whether the class meets the goal. Per run: band power ratios, the limb-lead residual, the median
correlation of each record with its nearest training record (real held-out records give the
floor), training minutes, for TimeVQVAE the stage-1 reconstruction R^2 on held-out records, and
the privacy section's measures (`fidelity.privacy_measures`: exact copies of training records and
the DCR share on median beats against its permutation floor; `fidelity.privacy_flag` its verdict),
so that a curve over --budgets shows memorisation growing with training as well as quality.
The first row, "real (held-out)", scores the real held-out records as if a generator had made them.
"""

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from synthecg.config import merge_configs, parse_overrides, read_config  # noqa: E402
from synthecg.data.leads import lead_indices  # noqa: E402
from synthecg.data.store import load_split, metadata, normalise  # noqa: E402
from synthecg.evaluation.fidelity import privacy_flag, privacy_measures  # noqa: E402
from synthecg.evaluation.quality import generator_quality, real_reference  # noqa: E402
from synthecg.generators.base import make_config  # noqa: E402
from synthecg.generators.jobs import fit_generator, sample_millivolts  # noqa: E402
from synthecg.generators.training import load_generator, pick_device  # noqa: E402

STAGE_STEPS = ("steps", "prior_steps")  # the config fields that count training steps


def real_sets(data: Path):
    meta = metadata(data)
    train = load_split(data, "train")
    heldout = [load_split(data, split) for split in ("val", "test") if meta["splits"].get(split)]
    return meta, train, np.concatenate([h["x"] for h in heldout]), np.concatenate([h["y"] for h in heldout])


def scaled_steps(overrides: dict, name: str, budget: float) -> dict:
    config = make_config(name, overrides)
    scaled = {field: max(1, round(getattr(config, field) * budget)) for field in STAGE_STEPS if hasattr(config, field)}
    return {**overrides, **scaled}


def train_one(data: Path, name: str, config: dict, budget: float, workdir: Path, device: str) -> tuple[Path, dict]:
    generators = config["generators"]
    training = generators.get("training", {})
    out = workdir / f"{name}-{budget:g}"
    sidecar = fit_generator(
        data, name, scaled_steps(generators.get(name, {}), name, budget),
        out_model=out / "model.pt", out_sidecar=out / "model.json", out_curve_csv=out / "loss.csv",
        out_curve_png=out / "loss.png", checkpoint_path=out / "checkpoint.pt", seed=training.get("seed", 0),
        min_records_per_class=generators.get("min_records_per_class", 2),
        on_small_class=generators.get("on_small_class", "skip"), checkpoint_every=10**9,
        log_every=training.get("log_every", 50), class_balance=training.get("class_balance", 1.0),
        leads=generators.get("leads", "independent"), device=device, augmentation=training.get("augmentation"),
    )
    return out / "model.pt", sidecar


def sample_classes(model, leads, meta, classes_to_sample, per_class, device, seed=0):
    generator = torch.Generator(device=device).manual_seed(seed)
    xs, ys = [], []
    for name in classes_to_sample:
        for start in range(0, per_class, 64):
            y = torch.full((min(64, per_class - start),), meta["classes"].index(name), dtype=torch.long, device=device)
            xs.append(sample_millivolts(model, leads, meta, y, generator))
            ys.append(y.cpu().numpy())
    return np.concatenate(xs), np.concatenate(ys)


def stage1_r2_heldout(model, leads, data: Path, meta) -> float:
    from synthecg.generators.timevqvae import stage1_r2

    parts = [load_split(data, split, normalised=True)["x"] for split in ("val", "test") if meta["splits"].get(split)]
    x = torch.from_numpy(np.concatenate(parts)[:, lead_indices(leads, meta["leads"])])
    return float(stage1_r2(model.cpu(), x))


def table(runs: list[dict]) -> str:
    lines = ["| run | minutes | class | detectable | fits class | real fits (held-out / train) | shuffled floor "
             "| generator's label floor | amplitude | goal |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        for name, entry in run["quality"]["per_class"].items():
            real = [_share((entry.get(key) or {}).get("fits_class")) for key in ("real", "real_heldout", "real_train")]
            lines.append(
                f"| {run['run']} | {run.get('train_minutes', 0):.1f} | {name} | {entry['synthetic']['detectable']:.2f} "
                f"| {_share(entry['synthetic']['fits_class'])} | {real[0]} ({real[1]} / {real[2]}) "
                f"| {_share(entry['shuffled_label_floor'])} | {_share(entry.get('generator_label_floor'))} "
                f"| {entry['amplitude_ratio_median']:.2f} "
                f"| {'pass' if entry['passes'] else 'fail'} |"
            )
    lines += ["", "| run | band power ratio (0.5-5 / 5-15 / 15-40 Hz) | limb residual (real) | nearest-train corr. (real held-out) "
              "| stage-1 R^2 | DCR share (floor; p) | privacy |", "|---|---|---|---|---|---|---|"]
    for run in runs:
        q = run["quality"]
        bands = " / ".join(f"{v:.2f}" for v in q["band_power_ratio"].values())
        limb = q["limb_lead_residual_median"]
        near = q.get("nearest_train_correlation_median", {})
        r2 = f"{run['stage1_r2']:.2f}" if "stage1_r2" in run else ""
        share = (run.get("privacy") or {}).get("dcr_share")
        dcr = f"{share['value']:.2f} ({share['floor']:.2f}; {share['p']:.3f})" if share else ""
        flag = "" if "privacy" not in run else (privacy_flag(run["privacy"]) or "within floor")
        lines.append(f"| {run['run']} | {bands} | {limb['synthetic']:.3f} ({limb['real']:.3f}) "
                     f"| {near.get('synthetic', float('nan')):.2f} ({near.get('real_heldout', float('nan')):.2f}) "
                     f"| {r2} | {dcr} | {flag} |")
    return "\n".join(lines)


def _share(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("results/data/ptbxl.h5"), help="a dataset HDF5 of the pipeline")
    parser.add_argument("--config", type=Path, help="a config or preset merged over config.yaml (e.g. presets/cpu.yaml)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="settings over --config, e.g. generators.timevqvae.batch_size=128; with --models only those that act at sampling")
    parser.add_argument("--generators", nargs="+", default=None, help="default: generators.names of the config")
    parser.add_argument("--budgets", nargs="+", type=float, default=[1.0], help="shares of the configured training steps")
    parser.add_argument("--models", type=Path, help="a folder of trained models ({generator}/rep{replicate}/model.pt): sample, do not train")
    parser.add_argument("--replicate", type=int, default=0, help="with --models: which replicate (default 0)")
    parser.add_argument("--proximity", nargs="+", type=float, help="TimeDiffusion's proximity values to sample at")
    parser.add_argument("--per-class", type=int, default=100, help="synthetic records per class")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1, help="worker processes reading rhythms (~60 ms a record each)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="write every run's full report here (JSON)")
    parser.add_argument("--keep", type=Path, help="keep the trained models here ({generator}-{budget}/model.pt), not in a temporary folder")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    settings = parse_overrides(args.set)
    config = merge_configs(read_config(REPO / "config.yaml", args.config), settings)
    names = args.generators or config["generators"]["names"]
    meta, train, heldout_x, heldout_y = real_sets(args.data)
    classes, fs, leads = meta["classes"], meta["fs"], meta["leads"]
    device = pick_device(args.device)

    reference = real_reference(heldout_x, heldout_y, fs, leads, train["x"], train["y"], args.processes)
    runs = [{"run": "real (held-out)",
             "quality": generator_quality(heldout_x, heldout_y, reference, classes, fs, leads, args.processes)}]
    print(table(runs), flush=True)
    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.keep or temporary
        for name in names:
            for budget in args.budgets if not args.models else [1.0]:
                if args.models:
                    folder = args.models / name / f"rep{args.replicate}"
                    model_path, sidecar = folder / "model.pt", json.loads((folder / "model.json").read_text())
                else:
                    model_path, sidecar = train_one(args.data, name, config, budget, Path(workdir), device.type)
                model = load_generator(model_path, device)
                # --set's sampling settings (choice temperatures, guidance) reach loaded models too
                model.config = make_config(name, {**dataclasses.asdict(model.config),
                                                  **settings.get("generators", {}).get(name, {})})
                variants = [None] if name != "timediffusion" or not args.proximity else args.proximity
                for proximity in variants:
                    label = f"{name} x{budget:g}" + (f" proximity {proximity:g}" if proximity is not None else "")
                    if proximity is not None:
                        model.config = dataclasses.replace(model.config, proximity=proximity)
                    started = time.perf_counter()
                    x, y = sample_classes(model, sidecar["leads"], meta, sidecar["trained_classes"], args.per_class, device)
                    run = {"run": label, "generator": name, "budget": budget, "steps": sidecar["stages"],
                           "train_minutes": sidecar["wall_time_s"] / 60, "sample_minutes": (time.perf_counter() - started) / 60,
                           "device": sidecar["device"], "threads": args.threads,
                           "config": dataclasses.asdict(model.config),
                           "leads": sidecar["leads"],
                           "quality": generator_quality(x, y, reference, classes, fs, leads, args.processes)}
                    if name == "timevqvae":
                        run["stage1_r2"] = stage1_r2_heldout(model, sidecar["leads"], args.data, meta)
                    run["privacy"] = privacy_measures(*(normalise(part, meta) for part in (x, train["x"], heldout_x)), fs)
                    runs.append(run)
                    print(f"\n{label}: trained {run['train_minutes']:.1f} min, sampled {run['sample_minutes']:.1f} min", flush=True)
                    print(table(runs[-1:]), flush=True)
                    if args.out:
                        args.out.write_text(json.dumps(runs, indent=1, default=float))
    print("\n" + table(runs))


if __name__ == "__main__":
    main()
