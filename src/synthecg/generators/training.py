"""The one training loop every generator shares: device, precision, checkpoints, resume.

CUDA with bf16 autocast when there is a GPU, the CPU otherwise, through the same code. The
loop keeps losses on the device and reads them back once every `log_every` steps, the only
host sync, where it also checks for NaN and, every `checkpoint_every` steps, saves a plain
checkpoint (state_dicts, RNG states, step, loss history). A restarted job resumes from that
checkpoint when it was made with the same settings, and continues the same random streams,
so on the CPU an interrupted and resumed run ends with the same weights as an uninterrupted one.
"""

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from synthecg.checkpoints import load_checkpoint, save_checkpoint
from synthecg.errors import PipelineError
from synthecg.generators.base import GeneratorModel, build, make_config

log = logging.getLogger("synthecg")


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise PipelineError("config key generators.training.device: 'cuda' asked for, but no GPU is visible")
    return torch.device(requested)


@dataclass
class TrainingLog:
    """What a run leaves besides the weights: the loss curve and how it was made."""

    history: list[dict] = field(default_factory=list)  # {"stage", "step", "loss"}
    wall_time_s: float = 0.0
    device: str = ""
    resumed_from: dict | None = None


@dataclass(frozen=True)
class RecordAugmentation:
    """Light augmentation of the records a generator trains on, a guard against memorising them
    when a GPU budget passes over a small training set hundreds of times. Each record of a batch
    gets its own draw: a circular time shift of up to `max_shift_seconds` either way (ECG rhythm is
    quasi-periodic, so the wrap joins two beats), and one amplitude factor for all its leads,
    exp(N(0, scale_std)) (one factor keeps the leads' relations, which per-lead scaling would not).
    Applies to stages that train on the records themselves (not TimeVQVAE's prior, which trains on
    tokens encoded once). 0 and 0: off."""

    max_shift_seconds: float = 0.0
    scale_std: float = 0.0

    def __post_init__(self):
        for key, value in vars(self).items():
            if value < 0:
                raise PipelineError(f"config key generators.training.augmentation.{key}: {value} must be >= 0")

    @property
    def active(self) -> bool:
        return self.max_shift_seconds > 0 or self.scale_std > 0


def augment_batch(x: torch.Tensor, augmentation: RecordAugmentation, fs: float,
                  generator: torch.Generator) -> torch.Tensor:
    """Records [B, leads, T] shifted and scaled per record, the draws taken from `generator` (on
    the CPU, so that a resumed run continues the same draws) and applied on x's device."""
    n, n_leads, n_samples = x.shape
    max_shift = int(round(augmentation.max_shift_seconds * fs))
    if max_shift:
        shifts = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator).to(x.device)
        index = (torch.arange(n_samples, device=x.device)[None] - shifts[:, None]) % n_samples  # torch.roll per record
        x = x.gather(2, index[:, None, :].expand(n, n_leads, n_samples))
    if augmentation.scale_std:
        factors = torch.exp(augmentation.scale_std * torch.randn(n, generator=generator)).to(x.device)
        x = x * factors[:, None, None].to(x.dtype)
    return x


def record_weights(y: torch.Tensor, class_balance: float) -> torch.Tensor:
    """Chance of each record [N] to fill a batch slot: proportional to count(class)^-class_balance.

    0 draws records uniformly (a class's share of batches is its share of records); 1 gives every
    class the same share, so a class of 25 records among 1,000 is not 2 % of what a model sees.
    """
    counts = torch.bincount(y)
    weights = counts[y].double().pow(-class_balance)
    return weights / weights.sum()


def train(
    model: GeneratorModel,
    train_x: np.ndarray,
    train_y: np.ndarray,
    *,
    seed: int,
    checkpoint_path: Path,
    fingerprint: str,
    checkpoint_every: int = 500,
    log_every: int = 50,
    class_balance: float = 0.0,
    device: torch.device | None = None,
    name: str = "generator",
    bf16: bool | None = None,
    augmentation: RecordAugmentation = RecordAugmentation(),
) -> TrainingLog:
    """Train `model` stage by stage on normalised records [N, leads, T] with labels [N].

    Batches draw records with replacement, weighted by `record_weights(train_y, class_balance)`,
    augmented by `augmentation` (default: not). `bf16` (default: on CUDA only) runs the forward
    pass under bfloat16 autocast.
    """
    device = device or pick_device()
    torch.manual_seed(seed)
    model.to(device)
    x = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32)).to(device)
    y = torch.from_numpy(np.asarray(train_y, dtype=np.int64)).to(device)
    # Inverse-CDF draws from the record weights (torch.multinomial's batches trained DiffWave worse, reproducibly).
    cumulative = record_weights(y.cpu(), class_balance).cumsum(0)
    model.prepare(x, y)
    record = TrainingLog(device=str(device))
    start_stage, start_step, saved = 0, 0, None
    if checkpoint_path.exists():
        saved = load_checkpoint(checkpoint_path, what=f"the training checkpoint of {name}",
                                remedy="rerun: training starts afresh")  # on the CPU: RNG states must stay there
        if saved.get("fingerprint") == fingerprint:
            model.load_state_dict(saved["model"])
            start_stage, start_step = saved["stage_index"], saved["step"]
            record.history = saved["history"]
            record.resumed_from = {"stage_index": start_stage, "step": start_step}
            torch.set_rng_state(saved["rng_cpu"])
            if device.type == "cuda" and saved.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(saved["rng_cuda"])
            log.info("%s: resuming from %s at stage %d, step %d", name, checkpoint_path, start_stage, start_step)
        else:
            log.info("%s: %s was made with other settings; starting afresh", name, checkpoint_path)
            saved = None

    started = time.perf_counter()
    use_bf16 = device.type == "cuda" if bf16 is None else bf16
    plan = model.training_plan()
    for stage_index, stage in enumerate(plan):
        if stage_index < start_stage:
            continue
        parameters = list(model.stage_parameters(stage.name))
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for parameter in parameters:
            parameter.requires_grad_(True)
        optimizer = torch.optim.AdamW(parameters, lr=stage.learning_rate, weight_decay=0.0)
        batches = torch.Generator().manual_seed(seed * 1_000 + stage_index)  # which records each step sees
        first_step = 0
        # A checkpoint made at the end of the previous stage has step 0 and no state of this
        # stage's optimizer: this stage starts fresh, as it does in an uninterrupted run.
        ema = [parameter.detach().clone() for parameter in parameters] if stage.ema_decay > 0 else None
        if saved is not None and stage_index == start_stage and start_step > 0:
            optimizer.load_state_dict(saved["optimizer"])
            batches.set_state(saved["batch_rng"])
            if ema is not None:
                ema = [tensor.to(device) for tensor in saved["ema"]]
            first_step = start_step
        inputs = model.stage_inputs(stage.name, x, y)
        if any(len(tensor) != len(y) for tensor in inputs):
            raise ValueError(f"{type(model).__name__}.stage_inputs({stage.name!r}) must give one row per record")
        augmenting = augmentation.active and inputs[0] is x  # a stage on the records, not on something made of them
        model.train()
        window = torch.zeros((), device=device)
        window_steps = 0
        last_good = first_step
        for step in range(first_step, stage.steps):
            for group in optimizer.param_groups:
                group["lr"] = stage.learning_rate_at(step)
            draws = torch.rand(model.config.batch_size, generator=batches, dtype=torch.float64) * cumulative[-1]
            index = torch.searchsorted(cumulative, draws).clamp_max(len(y) - 1).to(device, non_blocking=True)
            batch = [tensor[index] for tensor in inputs]
            if augmenting:
                batch[0] = augment_batch(batch[0], augmentation, model.fs, batches)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = model.loss(*batch, stage.name)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(ema, parameters, 1.0 - min(stage.ema_decay, (1 + step) / (10 + step)))
            window += loss.detach().float()
            window_steps += 1
            done = step + 1
            if done % log_every and done % checkpoint_every and done != stage.steps:
                continue
            mean_loss = (window / window_steps).item()  # the one host sync per window
            window.zero_()
            window_steps = 0
            if not math.isfinite(mean_loss):
                raise PipelineError(
                    f"{name}: the {stage.name} loss became {mean_loss} by step {done}; the last good "
                    f"checkpoint (step {last_good}) is kept in {checkpoint_path}. Lower the learning "
                    "rate or check the training data, then rerun to start again from it"
                )
            record.history.append({"stage": stage.name, "step": done, "loss": mean_loss})
            log.info("%s: %s step %d/%d loss %.5f", name, stage.name, done, stage.steps, mean_loss)
            if done % checkpoint_every == 0 or done == stage.steps:
                finished_stage = done == stage.steps
                if finished_stage and ema is not None:
                    with torch.no_grad():  # the stage's result is the average of its weights
                        torch._foreach_copy_(parameters, ema)
                save_checkpoint(
                    {
                        "fingerprint": fingerprint,
                        "model": model.state_dict(),
                        # At a stage's end the next stage's position is saved, without this stage's
                        # optimizer and batch stream, which the next stage must not inherit.
                        "optimizer": None if finished_stage else optimizer.state_dict(),
                        "stage_index": stage_index + 1 if finished_stage else stage_index,
                        "step": 0 if finished_stage else done,
                        "batch_rng": None if finished_stage else batches.get_state(),
                        "ema": None if finished_stage or ema is None else ema,
                        "rng_cpu": torch.get_rng_state(),
                        "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                        "history": record.history,
                    },
                    checkpoint_path,
                )
                last_good = done
        del inputs
        saved = None
    model.eval()
    record.wall_time_s = time.perf_counter() - started
    return record


def save_generator(model: GeneratorModel, name: str, path: Path) -> None:
    """The trained weights with what is needed to rebuild the model (a plain dict)."""
    save_checkpoint(
        {
            "generator": name,
            "config": asdict(model.config),
            "n_classes": model.n_classes,
            "n_leads": model.n_leads,
            "n_samples": model.n_samples,
            "fs": model.fs,
            "model": model.state_dict(),
        },
        path,
    )


def load_generator(path: str | Path, device: torch.device | None = None) -> GeneratorModel:
    path = Path(path)
    saved = load_checkpoint(path, what="the generator", remedy="rerun its training", map_location=device or "cpu")
    if "fs" not in saved:
        raise PipelineError(f"{path}: made by an older version of this pipeline (no sampling rate); rerun its training")
    config = make_config(saved["generator"], _tuples(saved["config"]))
    model = build(saved["generator"], config, saved["n_classes"], saved["n_leads"], saved["n_samples"], saved["fs"])
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError as error:
        raise PipelineError(f"{path}: made by another version of this pipeline ({error}); rerun its training") from error
    return model.to(device or "cpu").eval()


def _tuples(config: dict) -> dict:
    # Frozen dataclasses hold tuples; YAML and JSON give lists.
    return {key: tuple(value) if isinstance(value, list) else value for key, value in config.items()}
