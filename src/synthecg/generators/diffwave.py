"""DiffWave (Kong et al., ICLR 2021) as a class-conditional generator of 12-lead ECG.

A DDPM whose noise predictor is a WaveNet-like stack of bidirectional (non-causal) dilated
convolutions. Each residual block gets the diffusion-step embedding and a class embedding;
the class enters where DiffWave's local conditioner enters (added before the gated
activation), so every block sees it. 12 channels in and out, one per lead.

Defaults follow DiffWave's unconditional recipe: 36 layers, 256 channels, dilations cycling
1 … 2^11, T = 200 steps with betas linear from 1e-4 to 0.02. `fast_betas` switches sampling
to a short schedule, mapped onto the training steps as in the paper's fast sampling.
With fewer steps, raise `beta_end`: the schedule should end in (nearly) pure noise, which is
what sampling starts from; 1 - prod(1 - beta) measures how close it gets (0.87 for the
default 200 steps to 0.02, 0.995 for 50 steps to 0.2).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from synthecg.generators.base import GeneratorModel


@dataclass(frozen=True)
class DiffWaveConfig:
    residual_layers: int = 36  # residual blocks
    residual_channels: int = 256  # channels inside each block
    dilation_cycle: int = 12  # dilations 1, 2, …, 2^(cycle-1), repeated
    embedding_dim: int = 512  # width of the diffusion-step and class embeddings
    diffusion_steps: int = 200  # T of the training noise schedule
    beta_start: float = 1e-4  # linear beta schedule, first step
    beta_end: float = 0.02  # linear beta schedule, last step
    fast_betas: tuple[float, ...] = ()  # a short sampling schedule, e.g. (1e-4, 1e-3, 1e-2, 5e-2, 2e-1, 5e-1); () = all T steps
    batch_size: int = 16  # records per training step
    learning_rate: float = 2e-4  # Adam, as in DiffWave
    steps: int = 200_000  # training steps (our choice for ECG; DiffWave trains 1M on audio)


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) diffusion steps t [B] -> [B, dim]."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / (half - 1))
    angles = t.float()[:, None] * frequencies[None] * 4.0  # DiffWave scales steps up for sharper codes
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, embedding_dim: int, dilation: int):
        super().__init__()
        self.dilated_conv = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.step_projection = nn.Linear(embedding_dim, channels)
        self.class_projection = nn.Linear(embedding_dim, 2 * channels)
        self.output_projection = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x, step, label):
        """x [B, C, T], step and label embeddings [B, E] -> (residual out, skip), both [B, C, T]."""
        h = x + self.step_projection(step)[:, :, None]
        h = self.dilated_conv(h) + self.class_projection(label)[:, :, None]
        gate, filtered = h.chunk(2, dim=1)
        h = torch.sigmoid(gate) * torch.tanh(filtered)
        residual, skip = self.output_projection(h).chunk(2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class DiffWave(GeneratorModel):
    def __init__(self, config: DiffWaveConfig, n_classes: int, n_leads: int, n_samples: int):
        super().__init__(config, n_classes, n_leads, n_samples)
        c, e = config.residual_channels, config.embedding_dim
        self.input_projection = nn.Conv1d(n_leads, c, 1)
        self.step_mlp = nn.Sequential(nn.Linear(128, e), nn.SiLU(), nn.Linear(e, e), nn.SiLU())
        self.class_embedding = nn.Embedding(n_classes, e)
        self.blocks = nn.ModuleList(
            ResidualBlock(c, e, 2 ** (i % config.dilation_cycle)) for i in range(config.residual_layers)
        )
        self.skip_projection = nn.Conv1d(c, c, 1)
        self.output_projection = nn.Conv1d(c, n_leads, 1)
        nn.init.zeros_(self.output_projection.weight)  # start by predicting zero noise, as DiffWave does
        betas = torch.linspace(config.beta_start, config.beta_end, config.diffusion_steps)
        self.register_buffer("alpha_bars", torch.cumprod(1 - betas, dim=0), persistent=False)

    def predict_noise(self, x_t, t, y):
        """Noise in x_t [B, leads, T] at steps t [B] for classes y [B]."""
        step = self.step_mlp(step_embedding(t, 128))
        label = self.class_embedding(y)
        h = F.relu(self.input_projection(x_t))
        skips = 0
        for block in self.blocks:
            h, skip = block(h, step, label)
            skips = skips + skip
        h = F.relu(self.skip_projection(skips / math.sqrt(len(self.blocks))))
        return self.output_projection(h)

    def loss(self, x, y, stage="main"):
        t = torch.randint(0, self.config.diffusion_steps, (x.shape[0],), device=x.device)
        alpha_bar = self.alpha_bars[t][:, None, None]
        noise = torch.randn_like(x)
        x_t = alpha_bar.sqrt() * x + (1 - alpha_bar).sqrt() * noise
        return F.mse_loss(self.predict_noise(x_t, t, y).float(), noise)

    def _sampling_schedule(self):
        """Betas of the sampling chain and the (fractional) training step each one stands for."""
        if not self.config.fast_betas:
            betas = torch.linspace(self.config.beta_start, self.config.beta_end, self.config.diffusion_steps)
            return betas, torch.arange(len(betas), dtype=torch.float32)
        betas = torch.tensor(self.config.fast_betas, dtype=torch.float32)
        train = self.alpha_bars.cpu().sqrt()
        steps = []
        for alpha_bar in torch.cumprod(1 - betas, dim=0).sqrt():
            # The training step whose noise level matches, interpolated between neighbours.
            t = int(torch.searchsorted(-train, -alpha_bar).clamp(1, len(train) - 1)) - 1
            fraction = float((train[t] - alpha_bar) / (train[t] - train[t + 1]))
            steps.append(min(t + fraction, len(train) - 1.0))  # a schedule noisier than training's ends at T
        return betas, torch.tensor(steps)

    @torch.no_grad()
    def sample(self, y, generator):
        betas, steps = self._sampling_schedule()
        alphas = 1 - betas
        alpha_bars = torch.cumprod(alphas, dim=0)
        shape = (len(y), self.n_leads, self.n_samples)
        x = torch.randn(shape, generator=generator, device=generator.device)
        for n in reversed(range(len(betas))):
            t = torch.full((len(y),), float(steps[n]), device=x.device)
            noise = self.predict_noise(x, t, y).float()
            x = (x - betas[n] / (1 - alpha_bars[n]).sqrt() * noise) / alphas[n].sqrt()
            if n > 0:
                sigma = ((1 - alpha_bars[n - 1]) / (1 - alpha_bars[n]) * betas[n]).sqrt()
                x = x + sigma * torch.randn(shape, generator=generator, device=generator.device)
        return x
