"""The interface every generator implements, and the registry by name.

A generator is a `torch.nn.Module` that works on *normalised* ECG, float32
[batch, 12 leads, samples], with integer class labels [batch]. It tells the shared
training loop (`synthecg.generators.training`) what to optimise, stage by stage:

- `training_plan()` -> the stages in order, each with its steps and learning rate;
- `stage_parameters(stage)` -> the parameters that stage trains (the others stay frozen);
- `loss(x, y, stage)` -> a scalar loss on one batch;
- `prepare(train_x, train_y)` -> a hook run once before the first step, for models that keep
  something of the training data (TimeDiffusion keeps real seed records per class);
- `stage_inputs(stage, train_x, train_y)` -> the per-record tensors a stage draws its batches
  from (default: the records and labels); a stage that trains on something computed once from
  the records returns that instead (TimeVQVAE's prior trains on stage-1 tokens);
- `sample(y, generator)` -> normalised records of classes `y`, drawn with the torch
  generator given, so that a seed fixes the samples.

Hyperparameters live in one dataclass per model, with full-scale defaults (DESIGN §3); the
config overrides them field by field, and an unknown field is a config error.
"""

import dataclasses
import importlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from synthecg.errors import PipelineError


@dataclass(frozen=True)
class Stage:
    """One stage of training. The learning rate rises linearly over `warmup_steps`, then stays,
    or with `cosine` falls along a half cosine to `final_lr_ratio` x learning_rate at the end.
    With `ema_decay` > 0 the stage ends with an exponential moving average of its weights
    (decay min(ema_decay, (1 + step) / (10 + step)), so early steps do not linger)."""

    name: str
    steps: int
    learning_rate: float
    warmup_steps: int = 0
    cosine: bool = False
    final_lr_ratio: float = 0.0
    ema_decay: float = 0.0

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of step `step` (0-based): a pure function of the step, so resuming needs no state."""
        rate = self.learning_rate * min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else self.learning_rate
        if self.cosine and step >= self.warmup_steps:
            progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
            rate *= self.final_lr_ratio + (1 - self.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return rate


class GeneratorModel(nn.Module):
    """Base class of the generators; see the module docstring for the contract."""

    def __init__(self, config, n_classes: int, n_leads: int, n_samples: int, fs: int):
        super().__init__()
        self.config = config
        self.n_classes = n_classes
        self.n_leads = n_leads
        self.n_samples = n_samples
        self.fs = fs  # Hz: settings in time units (TimeVQVAE's token length) need it

    def training_plan(self) -> list[Stage]:
        return [Stage("main", self.config.steps, self.config.learning_rate,
                      ema_decay=getattr(self.config, "ema_decay", 0.0))]

    def stage_parameters(self, stage: str) -> Iterable[nn.Parameter]:
        return self.parameters()

    def prepare(self, train_x: torch.Tensor, train_y: torch.Tensor) -> None:
        """Called once before training with the whole (normalised) training set."""

    def stage_inputs(self, stage: str, train_x: torch.Tensor, train_y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The per-record tensors (first axis: records) whose rows `loss` gets, batch by batch."""
        return train_x, train_y

    def loss(self, x: torch.Tensor, y: torch.Tensor, stage: str) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


# name -> (module, config dataclass, model class); a model's module is imported when first used.
REGISTRY = {
    "diffwave": ("synthecg.generators.diffwave", "DiffWaveConfig", "DiffWave"),
    "timediffusion": ("synthecg.generators.timediffusion", "TimeDiffusionConfig", "TimeDiffusion"),
    "timevqvae": ("synthecg.generators.timevqvae", "TimeVQVAEConfig", "TimeVQVAE"),
}
GENERATOR_NAMES = tuple(REGISTRY)


def _classes(name: str) -> tuple[type, type[GeneratorModel]]:
    if name not in REGISTRY:
        raise PipelineError(f"config key generators.names: unknown generator {name!r}; choose from {sorted(REGISTRY)}")
    module_name, config_name, model_name = REGISTRY[name]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, model_name)


def make_config(name: str, overrides: Mapping | None = None):
    """The model's config dataclass with `overrides` (from config.yaml) applied."""
    config_class, _ = _classes(name)
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(overrides or {}) - known)
    if unknown:
        raise PipelineError(f"config key generators.{name}: unknown settings {unknown}; known: {sorted(known)}")
    return config_class(**(overrides or {}))


def build(name: str, config, n_classes: int, n_leads: int, n_samples: int, fs: int) -> GeneratorModel:
    _, model_class = _classes(name)
    return model_class(config, n_classes, n_leads, n_samples, fs)
