"""DiffWave (Kong et al., ICLR 2021) as a class-conditional generator of 12-lead ECG.

A DDPM whose noise predictor is a WaveNet-like stack of bidirectional (non-causal) dilated
convolutions. Each residual block gets the diffusion-step embedding and a class embedding;
the class enters where DiffWave's local conditioner enters (added before the gated
activation), so every block sees it. One channel in and out per generated lead.

Sizes follow DiffWave's unconditional recipe (36 layers, 256 channels, T = 200), with two
changes for z-scored ECG:
- the noise schedule must end in noise: sampling starts from N(0, I), so the training chain's
  last step must hold (almost) no signal. The audio recipe's betas 1e-4 -> 0.02 leave
  alpha_bar_T = 0.13 (signal amplitude 0.36, fine for audio of small amplitude, not for data of
  unit variance); 1e-4 -> 0.05 leaves 0.0067 (amplitude 0.08). `terminal_signal` tells it.
- dilations stop below the record length: DiffWave's cycle up to 2^11 = 2048 would only see
  padding on 1,000 samples, so the cycle is capped at ceil(log2(samples)) (1 ... 512 at 100 Hz).

Two recipes for longer GPU runs, both off by default (the CPU presets' models are unchanged):
- classifier-free guidance (Ho & Salimans 2022): training replaces the class by a null class with
  chance `p_uncond`; sampling mixes the conditional and unconditional predictions,
  eps_uncond + guidance_scale x (eps_cond - eps_uncond), so a scale above 1 pushes records
  further into their class;
- the target and its weighting: `prediction` "epsilon" (DDPM's noise) or "v" (Salimans & Ho
  2022, v = sqrt(alpha_bar) noise - sqrt(1 - alpha_bar) x0, which keeps the loss informative at
  the noisiest steps), and min-SNR-gamma loss weights (Hang et al. 2023): each step's loss is
  weighted by min(SNR, gamma) / SNR for noise targets, min(SNR, gamma) / (SNR + 1) for v, so the
  nearly clean steps, whose noise is hard to see and easy to overfit, stop dominating.

Sampling runs on `sampling_steps` training steps spread evenly over the chain (DDIM's strided
schedule, Song et al. 2021; eta = 1 is DDPM's ancestral sampler, and with every step it is exactly
DDPM), so a short chain is derived from the training schedule rather than given beside it. Each
step's estimate of the clean record is clipped to the training records' range, which keeps an
undertrained model's errors from compounding along the chain.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from synthecg.errors import PipelineError
from synthecg.generators.base import GeneratorModel


@dataclass(frozen=True)
class DiffWaveConfig:
    residual_layers: int = 36  # residual blocks
    residual_channels: int = 256  # channels inside each block
    dilation_cycle: int = 12  # dilations 1, 2, …, 2^(cycle-1), repeated (capped by the record length)
    embedding_dim: int = 512  # width of the diffusion-step and class embeddings
    diffusion_steps: int = 200  # T of the training noise schedule
    beta_start: float = 1e-4  # linear beta schedule, first step
    beta_end: float = 0.05  # linear beta schedule, last step (DiffWave's 0.02 does not reach noise on z-scored data)
    sampling_steps: int = 50  # steps of the sampling chain, spread over the T training steps; 0 = all T
    sampling_eta: float = 0.0  # DDIM's eta: 0 = deterministic (best on short chains), 1 = DDPM's ancestral noise
    prediction: str = "epsilon"  # what the network predicts: "epsilon" (the noise, DiffWave) or "v" (Salimans & Ho)
    min_snr_gamma: float = 0.0  # min-SNR-gamma loss weighting (Hang et al. 2023 use 5); 0 = unweighted
    p_uncond: float = 0.0  # chance of the null class in training, for classifier-free guidance; 0 = no null class
    guidance_scale: float = 1.0  # classifier-free guidance in sampling; 1 = plain conditional (needs p_uncond > 0 otherwise)
    batch_size: int = 16  # records per training step
    learning_rate: float = 2e-4  # Adam, as in DiffWave
    ema_decay: float = 0.999  # the trained model is a moving average of the weights (ours; common for DDPMs)
    steps: int = 200_000  # training steps (our choice for ECG; DiffWave trains 1M on audio)


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of diffusion steps t [B] -> [B, dim]."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / (half - 1))
    angles = t.float()[:, None] * frequencies[None] * 4.0  # DiffWave scales steps up for sharper codes
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def alpha_bars(config: DiffWaveConfig) -> torch.Tensor:
    """Signal share alpha_bar_t of each training step t [T] (float64)."""
    betas = torch.linspace(config.beta_start, config.beta_end, config.diffusion_steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


def terminal_signal(config: DiffWaveConfig) -> float:
    """alpha_bar_T: the share of the data's variance left at the last step (should be near 0)."""
    return float(alpha_bars(config)[-1])


def min_snr_weight(alpha_bar: torch.Tensor, gamma: float, prediction: str) -> torch.Tensor:
    """Min-SNR-gamma loss weight (Hang et al. 2023) of steps with signal shares alpha_bar [B]: the
    clean record's squared error weighted by min(SNR, gamma). That error is the noise error / SNR,
    or the v error / (SNR + 1), so the weight on the loss is min(SNR, gamma) / SNR for a noise
    target and min(SNR, gamma) / (SNR + 1) for v."""
    snr = alpha_bar / (1 - alpha_bar)
    return snr.clamp_max(gamma) / (snr if prediction == "epsilon" else snr + 1)


def sampling_timesteps(config: DiffWaveConfig) -> torch.Tensor:
    """The training steps the sampling chain visits, ascending, always the first and the last."""
    total = config.diffusion_steps
    count = total if config.sampling_steps <= 0 else min(config.sampling_steps, total)
    return torch.linspace(0, total - 1, count).round().long().unique()


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
    def __init__(self, config: DiffWaveConfig, n_classes: int, n_leads: int, n_samples: int, fs: int):
        super().__init__(config, n_classes, n_leads, n_samples, fs)
        if not 0.0 <= config.sampling_eta <= 1.0:
            raise PipelineError(f"config key generators.diffwave.sampling_eta: must lie in [0, 1], got {config.sampling_eta}")
        if config.prediction not in ("epsilon", "v"):
            raise PipelineError(f"config key generators.diffwave.prediction: 'epsilon' or 'v', got {config.prediction!r}")
        if not 0.0 <= config.p_uncond < 1.0:
            raise PipelineError(f"config key generators.diffwave.p_uncond: must lie in [0, 1), got {config.p_uncond}")
        if config.guidance_scale != 1.0 and config.p_uncond == 0.0:
            raise PipelineError("config key generators.diffwave.guidance_scale: guidance needs a model trained with "
                                "a null class; set generators.diffwave.p_uncond > 0 (e.g. 0.1) and retrain")
        c, e = config.residual_channels, config.embedding_dim
        cycle = min(config.dilation_cycle, max(1, math.ceil(math.log2(n_samples))))
        self.input_projection = nn.Conv1d(n_leads, c, 1)
        self.step_mlp = nn.Sequential(nn.Linear(128, e), nn.SiLU(), nn.Linear(e, e), nn.SiLU())
        # With guidance in training, one more row: the null class, index n_classes.
        self.class_embedding = nn.Embedding(n_classes + (config.p_uncond > 0), e)
        self.blocks = nn.ModuleList(ResidualBlock(c, e, 2 ** (i % cycle)) for i in range(config.residual_layers))
        self.skip_projection = nn.Conv1d(c, c, 1)
        self.output_projection = nn.Conv1d(c, n_leads, 1)
        nn.init.zeros_(self.output_projection.weight)  # start by predicting zero noise, as DiffWave does
        self.register_buffer("alpha_bars", alpha_bars(config).float(), persistent=False)
        # The largest |value| of the training records (normalised): the clip of sampling's estimates.
        self.register_buffer("data_bound", torch.tensor(float("inf")))

    def prepare(self, train_x, train_y):
        # max |x| without an |x| copy of the whole training set (1.7 GB for Chapman's records)
        self.data_bound.fill_(float(torch.maximum(train_x.max(), -train_x.min())))

    def predict_noise(self, x_t, t, y):
        """The network's output for x_t [B, leads, T] at steps t [B], classes y [B]: the noise in
        x_t, or v with `prediction` "v" (`guided_noise` turns either into noise)."""
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
        config = self.config
        t = torch.randint(0, config.diffusion_steps, (x.shape[0],), device=x.device)
        alpha_bar = self.alpha_bars[t][:, None, None]
        noise = torch.randn_like(x)
        x_t = alpha_bar.sqrt() * x + (1 - alpha_bar).sqrt() * noise
        if config.p_uncond > 0:
            dropped = torch.rand(y.shape, device=y.device) < config.p_uncond
            y = torch.where(dropped, torch.full_like(y, self.n_classes), y)
        target = noise if config.prediction == "epsilon" else alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x
        output = self.predict_noise(x_t, t, y).float()
        if config.min_snr_gamma <= 0:
            return F.mse_loss(output, target)
        weight = min_snr_weight(alpha_bar.flatten(), config.min_snr_gamma, config.prediction)
        return (weight * (output - target).pow(2).mean(dim=(1, 2))).mean()

    def guided_noise(self, x_t, t, y):
        """The noise in x_t [B, leads, T] that sampling uses: the network's output as noise (from v
        when it predicts v), mixed with the null class's by `guidance_scale`."""
        scale = self.config.guidance_scale
        if scale != 1.0:
            both = self.predict_noise(torch.cat([x_t, x_t]), torch.cat([t, t]),
                                      torch.cat([y, torch.full_like(y, self.n_classes)])).float()
            conditional, unconditional = both.chunk(2)
            output = unconditional + scale * (conditional - unconditional)
        else:
            output = self.predict_noise(x_t, t, y).float()
        if self.config.prediction == "epsilon":
            return output
        a = self.alpha_bars[t][:, None, None]
        return (1 - a).sqrt() * x_t + a.sqrt() * output  # noise from v; linear, so guiding v guides the noise

    @torch.no_grad()
    def sample(self, y, generator):
        """Records [len(y), leads, T] of classes y, all randomness drawn from `generator`."""
        device = generator.device
        y = y.to(device)
        shape = (len(y), self.n_leads, self.n_samples)
        timesteps = sampling_timesteps(self.config).tolist()
        x = torch.randn(shape, generator=generator, device=device)
        for i in reversed(range(len(timesteps))):
            t = timesteps[i]
            a_t = self.alpha_bars[t]
            a_prev = self.alpha_bars[timesteps[i - 1]] if i > 0 else torch.ones_like(a_t)
            noise = self.guided_noise(x, torch.full((len(y),), t, device=device), y)
            clean = ((x - (1 - a_t).sqrt() * noise) / a_t.sqrt()).clamp(-self.data_bound, self.data_bound)
            noise = (x - a_t.sqrt() * clean) / (1 - a_t).sqrt()  # the noise that goes with the clipped estimate
            sigma = self.config.sampling_eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
            x = a_prev.sqrt() * clean + (1 - a_prev - sigma**2).clamp_min(0).sqrt() * noise
            if i > 0:
                x = x + sigma * torch.randn(shape, generator=generator, device=device)
        return x
