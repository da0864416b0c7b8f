"""TimeDiffusion as a class-conditional generator of 12-lead ECG.

After the design of the `timediffusion` package (timetoai/TimeDiffusion, MIT; our own code).
Which model the study meant by "Time-Diffusion" is not certain: it names no paper or code,
and other diffusion models for time series have similar names. We take this package because
it is the one published under that name as a ready-to-use generator of synthetic series.

The package in brief:
- a *projector*: a stack of temporal blocks (dilated convolutions with ReLU and a residual
  path), dilation 1, 2, 4, ... up to 2^ceil(log2 T) so that it sees the whole series, with the
  blocks' outputs summed as skips into a 1x1 output convolution;
- training: the projector learns to restore a series from noised versions of it, predicting
  the noise, so that `noised - projector(noised)` is the series;
- synthesis: start near a real example, mixed with noise to a `proximity` level (1 = the
  example, 0 = noise), and refine it over several steps with the projector.

Our adaptation, and where we depart from the package:
- one projector per class, each trained on that class's records only (the study trains per
  class); the package fits one projector to one series;
- noised = (1 - l) x + l * gaussian noise, level l drawn per record from
  [noise_level_min, noise_level_max], restored in one step (L1 loss, the package's default
  distance). The package instead rolls a chain of restoration steps from uniform noise and adds
  a small KL term; drawing the level covers the same range of inputs in one step. No KL term;
- the projector is told the noise level (an embedding added in every block, as a diffusion
  model is told its step). Unconditioned, it must guess the level from the record, and is
  least accurate on nearly clean ones: walking the level down to 0 that way inflated samples to
  std 1.45 against 0.99 for real records;
- synthesis starts from a real *seed* record of the class, mixed with noise at level
  1 - proximity, and walks the level down to 0 in `sampling_steps` equal rungs: at each rung the
  projector's estimate of the clean record and of the noise give the record at the next, lower
  level (DDIM's deterministic step, for this mixing). The package picks how far to denoise by
  estimating proximity from a KL score; ours is direct;
- centred convolutions of odd kernel size (a whole record is known, so both sides can inform
  the restoration) where the package, after TCN forecasting, uses causal kernels of size 2;
  plain convolutions with PyTorch's initialisation where it uses weight norm and N(0, 0.5)
  weights; the output convolution starts at zero, so an untrained projector restores nothing.

Samples stay close to the seed records they start from: the model perturbs real records rather
than drawing new ones from noise, and `proximity` sets how far. At the default 0.9 a sample is
mostly its seed (a copy of a training record, as far as privacy goes); lower proximity trades
that nearness for what the projector has learnt. `benchmarks/generator_quality.py --proximity`
measures both sides: rhythm quality and the correlation with the nearest training record.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from synthecg.errors import PipelineError
from synthecg.generators.base import GeneratorModel


@dataclass(frozen=True)
class TimeDiffusionConfig:
    hidden_channels: int = 128  # convolution filters in every block (package: conv_filters)
    max_dilation_exponent: int = 13  # dilations 1 … 2^k, k = ceil(log2 T) capped here (package: max_deg_constraint)
    layers_per_block: int = 2  # dilated convolutions per temporal block (package: TemporalBlock layers)
    kernel_size: int = 3  # odd, centred (ours; the package uses 2, causal)
    dropout: float = 0.05  # dropout in the input block (package: base_dropout)
    level_embedding_dim: int = 64  # width of the noise-level embedding (ours)
    noise_level_min: float = 0.0  # training noise level l, drawn uniformly per record … (ours)
    noise_level_max: float = 1.0  # … up to this; 1 = pure noise, as the package's chains start
    batch_size: int = 32  # records per training step, all classes together (ours; package: 2 copies of its one series)
    learning_rate: float = 4e-4  # Adam (package: lr)
    steps: int = 20_000  # training steps (ours; the package runs 20 epochs x 32 steps on one series)
    max_seed_records: int = 256  # real records kept per class to start samples from (ours; 12 MB per class at T = 1000)
    proximity: float = 0.9  # 1 = start at the seed record, 0 = start from noise (package: proximity)
    sampling_steps: int = 10  # refinement steps from the start to a clean record (package: step_granulation)


def check_config(config: TimeDiffusionConfig) -> None:
    """Raise PipelineError, naming the config key, for values the model cannot work with."""
    problems = {
        "kernel_size": (config.kernel_size % 2 == 1, "must be odd, so that convolutions are centred"),
        "proximity": (0.0 <= config.proximity <= 1.0, "must lie in [0, 1]"),
        "noise_level_max": (
            0.0 <= config.noise_level_min <= config.noise_level_max <= 1.0,
            "needs 0 <= noise_level_min <= noise_level_max <= 1",
        ),
        "max_seed_records": (config.max_seed_records >= 1, "must be at least 1"),
        "sampling_steps": (config.sampling_steps >= 1, "must be at least 1"),
    }
    for key, (ok, why) in problems.items():
        if not ok:
            raise PipelineError(f"config key generators.timediffusion.{key}: {why}, got {getattr(config, key)}")


class TemporalBlock(nn.Module):
    """`layers` dilated convolutions, each followed by ReLU, beside a residual path."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, layers: int, dropout=0.0):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2  # centred: the output keeps the input's length
        convs = []
        for i in range(layers):
            width = in_channels if i == 0 else out_channels
            convs += [nn.Conv1d(width, out_channels, kernel_size, padding=padding, dilation=dilation), nn.ReLU()]
            if dropout > 0:
                convs.append(nn.Dropout(dropout))
        self.convs = nn.Sequential(*convs)
        # A 1x1 convolution only where the width changes (the input block), as in TCN.
        self.residual = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, in, T] -> (skip, out), both [B, out, T]."""
        skip = self.convs(x)
        return skip, F.relu(skip + self.residual(x))


def level_embedding(level: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of noise levels in [0, 1] [B] -> [B, dim]."""
    half = dim // 2
    frequencies = torch.exp(-math.log(1_000.0) * torch.arange(half, device=level.device) / max(half - 1, 1))
    angles = 1_000.0 * level.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class Projector(nn.Module):
    """Predicts the noise part of a record noised to a known level, so that restored = noised - projector(noised, level).

    An input block (kernel 1) widens the leads to `hidden_channels`; then one block per
    dilation 1, 2, 4, … 2^k, k = ceil(log2 T) capped by the config, so that the receptive field
    spans the record as in the package. The level enters every dilated block as a per-channel shift.
    """

    def __init__(self, config: TimeDiffusionConfig, n_leads: int, n_samples: int):
        super().__init__()
        c, layers, e = config.hidden_channels, config.layers_per_block, config.level_embedding_dim
        depth = min(math.ceil(math.log2(max(n_samples, 1))), config.max_dilation_exponent)
        self.input_block = TemporalBlock(n_leads, c, 1, 1, layers, config.dropout)
        self.blocks = nn.ModuleList(TemporalBlock(c, c, config.kernel_size, 2**i, layers) for i in range(depth + 1))
        self.level_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, c * len(self.blocks)))
        self.output = nn.Conv1d(c, n_leads, 1)
        nn.init.zeros_(self.output.weight)  # start by predicting no noise: restoring nothing is a safe start
        nn.init.zeros_(self.output.bias)

    def forward(self, noised: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """noised [B, leads, T] at noise levels [B] -> predicted noise part [B, leads, T]."""
        skips, h = self.input_block(noised)
        shifts = self.level_mlp(level_embedding(level, self.level_mlp[0].in_features)).chunk(len(self.blocks), dim=1)
        for block, shift in zip(self.blocks, shifts):
            skip, h = block(h + shift[:, :, None])
            skips = skips + skip
        return self.output(h + skips)


class TimeDiffusion(GeneratorModel):
    def __init__(self, config: TimeDiffusionConfig, n_classes: int, n_leads: int, n_samples: int, fs: int):
        super().__init__(config, n_classes, n_leads, n_samples, fs)
        check_config(config)
        self.projectors = nn.ModuleList(Projector(config, n_leads, n_samples) for _ in range(n_classes))
        # Buffers, so that the seeds travel in the state_dict and a loaded model can sample.
        # Fixed shapes (rows past a class's count stay zero) so that any fresh model loads them.
        seeds = torch.zeros(n_classes, config.max_seed_records, n_leads, n_samples)
        self.register_buffer("seeds", seeds)  # [classes, max_seed_records, leads, T]
        self.register_buffer("seed_counts", torch.zeros(n_classes, dtype=torch.long))  # [classes]

    def prepare(self, train_x: torch.Tensor, train_y: torch.Tensor) -> None:
        """Keep up to `max_seed_records` training records [N, leads, T] of each class as seeds.

        Spread evenly over the training order rather than the first ones, so that a set sorted
        by site or date still gives seeds from all of it; deterministic, so reruns agree.
        """
        for c in range(self.n_classes):
            rows = torch.nonzero(torch.as_tensor(train_y) == c).squeeze(1).cpu()
            keep = min(len(rows), self.config.max_seed_records)
            rows = rows[torch.arange(keep) * len(rows) // max(keep, 1)]
            self.seeds[c].zero_()
            self.seeds[c, :keep] = train_x[rows.to(train_x.device)].to(self.seeds)
            self.seed_counts[c] = keep

    def loss(self, x: torch.Tensor, y: torch.Tensor, stage: str = "main") -> torch.Tensor:
        """Mean L1 error of each record [B, leads, T] restored by its class's projector (y [B])."""
        low, high = self.config.noise_level_min, self.config.noise_level_max
        level = low + (high - low) * torch.rand(x.shape[0], device=x.device)
        noised = (1 - level[:, None, None]) * x + level[:, None, None] * torch.randn_like(x)
        # Each class's projector restores only its own records. Which classes a batch holds is read
        # back to the host, a sync per step that costs nothing on the CPU and, on an H100, no more
        # than letting every projector restore the whole batch did.
        error = torch.zeros((), device=x.device)
        for c in y.unique().tolist():
            rows = y == c
            restored = noised[rows] - self.projectors[c](noised[rows], level[rows]).float()
            error = error + (restored - x[rows]).abs().mean(dim=(1, 2)).sum()
        return error / x.shape[0]

    @torch.no_grad()
    def sample(self, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Records [len(y), leads, T] of classes y, each refined from a random seed of its class."""
        return self.sample_with_seeds(y, generator)[0]

    @torch.no_grad()
    def sample_with_seeds(self, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(records, the seed record each one started from), both [len(y), leads, T]."""
        counts = self.seed_counts[y]
        if (counts == 0).any():
            c = int(y[counts == 0][0])
            raise PipelineError(
                f"TimeDiffusion cannot sample class {c}: it had no training records, so there is no real "
                f"record to start from; give class {c} training records or do not ask for it"
            )
        device = generator.device
        pick = (torch.rand(len(y), generator=generator, device=device) * counts).long().minimum(counts - 1)
        seeds = self.seeds[y, pick]
        noise = torch.randn(seeds.shape, generator=generator, device=device)
        start, n = 1.0 - self.config.proximity, self.config.sampling_steps
        levels = [start * (1 - k / n) for k in range(n + 1)]  # from 1 - proximity down to 0
        x = (1 - start) * seeds + start * noise  # the training's noising, at level 1 - proximity

        was_training = self.training
        self.eval()  # no dropout: all randomness comes from `generator`
        try:
            for c in y.unique().tolist():
                rows = torch.nonzero(y == c).squeeze(1)
                h = x[rows]
                for level, lower in zip(levels, levels[1:]):
                    if level <= 0:
                        break
                    clean = h - self.projectors[c](h, torch.full((len(rows),), level, device=device)).float()
                    noise_part = (h - (1 - level) * clean) / level
                    h = (1 - lower) * clean + lower * noise_part
                x[rows] = h
        finally:
            self.train(was_training)
        return x.float(), seeds
