"""Device hours the `paper` preset needs, extrapolated from measured training and sampling rates.

    python benchmarks/paper_gpu_hours.py --device cuda --precision bf16     # on a GPU machine
    .venv/bin/python benchmarks/paper_gpu_hours.py --device cpu --steps 2   # checks the script; CPU hours

Rates are measured here, at the preset's model sizes, through the real training loops: each
generator through `generator_throughput.measure` (records/s of each of its training stages, and
records/s of sampling), the classifier as records/s of full training steps. The workload comes
from the preset, with every record of both databases counted (`--ptbxl-records`,
`--chapman-records`): an upper bound, since records outside the preset's classes are left out,
and the mirror is too small to count them. Classifier epochs are `max_epochs`, also an upper
bound: early stopping usually ends sooner. Prints one row per kind of job and the total.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from generator_throughput import N_LEADS, N_SAMPLES, STAGE_FIELDS, measure, peak_tflops  # noqa: E402
from synthecg.classifier.resnet1d import build_classifier, make_classifier_config  # noqa: E402
from synthecg.config import merge_configs, validate_config  # noqa: E402
from synthecg.generators.base import make_config  # noqa: E402

PTBXL_RECORDS = 21_799  # PTB-XL 1.0.3, every record
CHAPMAN_RECORDS = 45_152  # ecg-arrhythmia 1.0.0, every record


def preset() -> dict:
    """config.yaml with presets/paper.yaml over it, as Snakemake merges them, defaults filled in."""
    default, paper = (yaml.safe_load((REPO / name).read_text()) for name in ("config.yaml", "presets/paper.yaml"))
    return validate_config(merge_configs(default, paper), REPO / "workflow/schemas/config.schema.yaml")


def classifier_records_per_s(config, device: torch.device, precision: str, steps: int, fs: float) -> float:
    model = build_classifier(config, N_LEADS, 4).to(device)
    optimizer = torch.optim.AdamW(model.parameters())
    length = min(config.train_crop_samples(fs) or N_SAMPLES, N_SAMPLES)  # a training step sees crops
    x = torch.randn(config.batch_size, N_LEADS, length, device=device)
    y = torch.randint(0, 4, (config.batch_size,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * config.batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--generators", nargs="+", help="measure only these (default: the preset's)")
    parser.add_argument("--ptbxl-records", type=int, default=PTBXL_RECORDS)
    parser.add_argument("--chapman-records", type=int, default=CHAPMAN_RECORDS)
    args = parser.parse_args()
    config, device = preset(), torch.device(args.device)
    train_share = config["split_fractions"]["train"]
    records = {"ptbxl": args.ptbxl_records, "chapman": args.chapman_records}
    train = {name: n * train_share for name, n in records.items() if name in config["datasets"]}
    train["merged"] = sum(train.values())
    ratio = config["sampling"]["ratio_to_real"]
    seeds = len(config["experiments"]["seeds"])
    replicates = config["generators"]["replicates"]
    rows = []
    peak = peak_tflops(device)
    for name in args.generators or config["generators"]["names"]:
        stages = measure(name, "paper", device, args.precision, "none", 0, args.steps, 1, max(2, args.steps // 2), peak)
        model_config = make_config(name, config["generators"].get(name, {}))
        copies = len(records) * replicates  # a generator per source dataset and replicate
        train_h = copies * sum(getattr(model_config, STAGE_FIELDS[stage["stage"]]) * model_config.batch_size
                               / stage["records_per_s"] for stage in stages) / 3600
        sample_h = replicates * sum(ratio * train[s] / stages[-1]["sample_records_per_s"] / 3600 for s in records)
        rows += [(f"train {name} ({len(records)} source datasets x {replicates} replicates)", train_h),
                 (f"sample {name} (the same)", sample_h)]
    classifier = make_classifier_config(config["classifier"])
    rate = classifier_records_per_s(classifier, device, args.precision, args.steps, config["sampling_rate"])
    experiments = config["experiments"]
    per_dataset = (1 + len(config["generators"]["names"]) * (sum(1 + r for r in experiments["augment_ratios"])
                                                            + ratio + sum(experiments["finetune_fractions"])))
    epochs_records = seeds * classifier.max_epochs * per_dataset * sum(train.values())
    rows.append((f"classifiers ({seeds} seeds, <= {classifier.max_epochs} epochs, {rate:.0f} records/s)",
                 epochs_records / rate / 3600))
    print(f"device {args.device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), "
          f"{args.precision}; train records: " + ", ".join(f"{k} {v:.0f}" for k, v in train.items()))
    for label, hours in rows:
        print(f"{label:70} {hours:10.1f} h")
    print(f"{'total':70} {sum(h for _, h in rows):10.1f} h")


if __name__ == "__main__":
    main()
