"""TimeVQVAE (Lee, Malacarne, Aune, AISTATS 2023) as a class-conditional generator of 12-lead ECG.

Stage 1 is a VQ-VAE over the short-time Fourier transform (STFT) of each lead. The spectrogram is
split into a low-frequency band (the lowest bin) and a high-frequency band (the other bins); each
band has its own 2-D convolutional encoder over (frequency, time), its own codebook and its own
decoder, whose output goes back to the time domain through the inverse STFT. The record is the sum
of the two bands. Stage 2 is a bidirectional transformer (MaskGIT) prior per band, learnt on the
frozen tokens: the LF prior sees the class token, the HF prior the class token and, at each HF
token, the LF tokens of the same time (the paper's "HF given LF"). Sampling decodes LF tokens,
then HF tokens, by MaskGIT's iterative decoding with classifier-free guidance, and decodes both
to the time domain. Stage 2 trains on the tokens of the training records, encoded once when it
starts (`stage_inputs`). Both stages follow the authors' learning-rate schedule: a linear warm-up,
then a cosine decay.

What we changed for 12-lead ECG: the real and imaginary parts of the 12 leads' spectrograms are
the 24 input channels of each encoder (the authors' model takes the same layout, 2 per channel,
but is tuned and evaluated on one channel); the encoders start wider (`init_channels`) so that the
first layer is not a bottleneck for 24 channels; the token grid is set in milliseconds per token
(`lf_token_ms`, `hf_token_ms`), not in tokens per record as the authors' `downsampled_width`,
because their ~8 LF tokens for a 10-s ECG cannot hold its beats; any record length works (the
spectrogram's time axis is padded to a multiple of the downsampling factor and cropped back).
The rest is simplified:
GroupNorm residual blocks and SiLU instead of the authors' BatchNorm, weight norm and Snake, and
a plain pre-norm transformer. The HF prior adds the embedding of the LF token at each HF token's
time to that token's own (the authors upsample the LF embeddings to the HF length, smooth them
with two convolutions and concatenate them to the HF ones). Training masks a share cos(pi/2 r) of
the tokens, as in MaskGIT (the authors' code keeps that share unmasked instead).

This is our own implementation after the paper and the authors' code (github.com/ML4ITS/TimeVQVAE,
configuration of September 2024): the PyPI `timevqvae` package needs Python >= 3.12 and drops
multichannel evaluation.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from synthecg.errors import PipelineError
from synthecg.generators.base import GeneratorModel, Stage

BANDS = ("lf", "hf")


@dataclass(frozen=True)
class TimeVQVAEConfig:
    # Stage 1: the VQ-VAE
    batch_size: int = 128  # records per step, both stages (authors: 128 in stage 1, 256 in stage 2)
    learning_rate: float = 1e-3  # stage 1 (authors: 1e-3)
    steps: int = 50_000  # stage 1 steps (authors: 50k)
    # Both stages: the learning rate rises linearly over the first `warmup_share` of a stage's steps,
    # then falls along a half cosine to `final_lr_ratio` x its peak, as the authors' scheduler
    # (utils.linear_warmup_cosine_annealingLR with the defaults their September 2024 config uses:
    # linear_warmup_rate 0.1 and min_lr 1e-6 at lr 1e-3, i.e. a ratio of 1e-3; from December 2024
    # they use 0.05 and min_lr 5e-4 at lr 5e-3, a ratio of 0.1).
    warmup_share: float = 0.1  # share of each stage's steps spent warming up (authors: 0.1)
    final_lr_ratio: float = 1e-3  # last learning rate / peak learning rate (authors: 1e-6 / 1e-3)
    n_fft: int = 4  # STFT window; hop n_fft // 4, n_fft // 2 + 1 frequency bins (authors: 4)
    lf_bins: int = 1  # lowest bins that make the LF band; the rest is HF (authors: bin 0 only)
    init_channels: int = 32  # first encoder width, doubled per halving (ours for 24 inputs; authors: 4 for 2)
    hidden_channels: int = 128  # widest layer and the size of a latent code (authors: hid_dim 128)
    n_resnet_blocks: int = 2  # residual blocks after each down/upsampling (authors: 2)
    # Milliseconds of signal one token column covers, per band: the encoder halves the STFT's time
    # axis round(log2(frames per token)) times (at least once), so the actual span is the nearest
    # power-of-two number of frames (hop n_fft // 4 samples each). At 100 Hz with n_fft 4 (hop 1,
    # 10 ms a frame), 160 / 80 ms give 16 / 8 frames a token: 63 LF tokens and 126 columns x 2 bins
    # = 252 HF tokens for 10 s. The authors fix the number of tokens instead (downsampled_width
    # lf 8, hf 32: ~1.28 s and ~0.32 s a token for a 10-s record), which loses the QRS complexes.
    # Measured on PTB-XL (1,022 training records, 800 stage-1 steps at reduced width, R^2 of the
    # reconstruction on 328 held-out records): 1280/320 ms 0.12, 320/160 ms 0.42, 160/80 ms 0.61,
    # 80/80 and 160/40 ms 0.63, 80/40 ms 0.65. We take 160/80: 80/40 gains 0.04 but doubles the
    # tokens (126 + 502), which makes a stage-2 step 3.6x slower.
    lf_token_ms: float = 160.0  # LF token length in ms (authors: lf width 8, ~1,280 ms for 10 s)
    hf_token_ms: float = 80.0  # HF token length in ms, per frequency bin (authors: hf width 32, ~320 ms for 10 s)
    codebook_size_lf: int = 32  # LF codes (authors: 32)
    codebook_size_hf: int = 32  # HF codes (authors: 32)
    codebook_decay: float = 0.8  # EMA decay of the codebooks (authors: 0.8)
    commitment_weight: float = 1.0  # weight of the commitment loss (authors: 1)
    dead_code_threshold: float = 0.01  # restart a code whose EMA usage falls below this (ours)
    # Stage 2: the priors
    prior_learning_rate: float = 1e-3  # stage 2 (authors: the same 1e-3)
    prior_steps: int = 200_000  # stage 2 steps (authors: 200k)
    prior_hidden_lf: int = 128  # LF transformer width (authors: 128)
    prior_layers_lf: int = 4  # LF transformer layers (authors: 4)
    prior_heads_lf: int = 2  # LF attention heads (authors: 2)
    prior_hidden_hf: int = 32  # HF transformer width; small against overfitting (authors: 32)
    prior_layers_hf: int = 1  # HF transformer layers (authors: 1)
    prior_heads_hf: int = 1  # HF attention heads (authors: 1)
    prior_ff_mult: int = 1  # MLP width = ff_mult x transformer width (authors: ff_mult 1)
    prior_dropout: float = 0.3  # dropout on known-token embeddings, attention and MLPs (authors: 0.3)
    p_uncond: float = 0.2  # chance of the null class in training, for guidance (authors: 0.2)
    # Sampling
    sampling_steps: int = 10  # MaskGIT decoding iterations per band (authors: T 10)
    # Noise on the confidences that pick the tokens to re-mask, per band: higher, more diverse
    # (authors: lf 4, hf 4 in their July 2024 config; lf 10, hf 4 from August 2024). LF 10 against 4,
    # on the quick run's model (after `make run`: benchmarks/generator_quality.py --models
    # results/generators/ptbxl --generators timevqvae --per-class 40, then the same with --set
    # generators.timevqvae.choice_temperature_lf=4): median amplitude ratio per class 0.45 / 0.39 /
    # 0.42 / 0.51 against 0.37 / 0.35 / 0.39 / 0.51; low confidence-noise commits the commonest
    # (flat) tokens first, and the record comes out flatter.
    choice_temperature_lf: float = 10.0
    choice_temperature_hf: float = 4.0
    guidance_scale: float = 1.0  # classifier-free guidance; 1 = plain conditional (authors: 1)


class ResBlock(nn.Module):
    """Pre-norm residual block on [B, C, H, W]; a kernel of height 1 keeps bins independent."""

    def __init__(self, channels: int, freq_kernel: int):
        super().__init__()
        padding = (freq_kernel // 2, 1)
        self.block = nn.Sequential(
            nn.GroupNorm(1, channels), nn.SiLU(), nn.Conv2d(channels, channels, (freq_kernel, 3), padding=padding),
            nn.GroupNorm(1, channels), nn.SiLU(), nn.Conv2d(channels, channels, (freq_kernel, 3), padding=padding),
        )

    def forward(self, x):
        return x + self.block(x)  # the skip keeps the amplitude that GroupNorm would remove


def _widths(config: TimeVQVAEConfig, n_down: int) -> list[int]:
    """Channels at full resolution and after each of the n_down halvings of time."""
    return [min(config.init_channels * 2**i, config.hidden_channels) for i in range(n_down + 1)]


class BandEncoder(nn.Module):
    """Spectrogram band [B, 2 x leads, bins, frames] -> unit-norm latents [B, hidden, bins, frames / 2^n_down]."""

    def __init__(self, config: TimeVQVAEConfig, in_channels: int, n_down: int, freq_kernel: int):
        super().__init__()
        widths, pad = _widths(config, n_down), freq_kernel // 2
        layers = [nn.Conv2d(in_channels, widths[0], (freq_kernel, 3), padding=(pad, 1))]
        for i in range(n_down):
            layers.append(nn.Conv2d(widths[i], widths[i + 1], (freq_kernel, 4), stride=(1, 2), padding=(pad, 1)))
            layers += [ResBlock(widths[i + 1], freq_kernel) for _ in range(config.n_resnet_blocks)]
        layers += [nn.GroupNorm(1, widths[-1]), nn.SiLU(), nn.Conv2d(widths[-1], config.hidden_channels, 1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        # Unit-norm latents, as the authors do: distances to the codes become cosine distances,
        # which keeps every code in reach of the data.
        return F.normalize(self.layers(x), dim=1)


class BandDecoder(nn.Module):
    """Latents [B, hidden, bins, frames'] -> spectrogram band [B, 2 x leads, bins, frames' x 2^n_up]."""

    def __init__(self, config: TimeVQVAEConfig, out_channels: int, n_up: int, freq_kernel: int):
        super().__init__()
        widths, pad = _widths(config, n_up), freq_kernel // 2
        layers = [nn.Conv2d(config.hidden_channels, widths[-1], (freq_kernel, 3), padding=(pad, 1))]
        for i in reversed(range(n_up)):
            layers += [ResBlock(widths[i + 1], freq_kernel) for _ in range(config.n_resnet_blocks)]
            layers.append(
                nn.ConvTranspose2d(widths[i + 1], widths[i], (freq_kernel, 4), stride=(1, 2), padding=(pad, 1))
            )
        layers += [
            nn.GroupNorm(1, widths[0]), nn.SiLU(),
            nn.Conv2d(widths[0], out_channels, (freq_kernel, 3), padding=(pad, 1)),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, z):
        return self.layers(z)


class EMAQuantizer(nn.Module):
    """Nearest-code quantiser whose codebook follows the encoder by exponential moving averages.

    EMA rather than a learnt codebook with a codebook loss, as the authors do: the codes move to
    the mean of their latents at a rate independent of the learning rate, and we restart dead
    codes with latents of the batch (the first step thereby initialises the codebook from data).
    The codebook lives in buffers, so it has no parameters for an optimiser.
    """

    def __init__(self, codebook_size: int, dim: int, decay: float, commitment_weight: float,
                 dead_code_threshold: float):
        super().__init__()
        self.decay, self.commitment_weight, self.dead_code_threshold = decay, commitment_weight, dead_code_threshold
        self.register_buffer("embed", F.normalize(torch.randn(codebook_size, dim), dim=1))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))  # EMA count of latents per code
        self.register_buffer("embed_sum", torch.zeros(codebook_size, dim))  # EMA sum of latents per code

    def forward(self, z):
        """z [B, D, H, W] -> (straight-through codes [B, D, H, W], ids [B, H x W], commitment loss)."""
        b, d, h, w = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = z.float().permute(0, 2, 3, 1).reshape(-1, d)
            distances = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.T + self.embed.pow(2).sum(1)
            ids = distances.argmin(1)
            codes = F.embedding(ids, self.embed)
            # Only a training step moves the codebook: an evaluation under no_grad must not.
            if self.training and torch.is_grad_enabled():
                self._update(flat.detach(), ids)
            commitment = self.commitment_weight * F.mse_loss(flat, codes)
            quantized = flat + (codes - flat).detach()  # straight-through: the decoder's gradient reaches the encoder
        return quantized.reshape(b, h, w, d).permute(0, 3, 1, 2), ids.reshape(b, h * w), commitment

    @torch.no_grad()
    def _update(self, flat, ids):
        size = len(self.embed)
        # index_add_, not one_hot or bincount: those read the ids back to the host on CUDA.
        counts = torch.zeros_like(self.cluster_size).index_add_(0, ids, torch.ones_like(flat[:, 0]))
        self.cluster_size.lerp_(counts, 1 - self.decay)
        self.embed_sum.lerp_(torch.zeros_like(self.embed_sum).index_add_(0, ids, flat), 1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (total + size * 1e-5) * total  # Laplace: no division by 0
        self.embed.copy_(self.embed_sum / smoothed[:, None])
        dead = (self.cluster_size < self.dead_code_threshold)[:, None]
        restart = flat[torch.randint(len(flat), (size,), device=flat.device)]
        self.embed.copy_(torch.where(dead, restart, self.embed))
        self.embed_sum.copy_(torch.where(dead, restart, self.embed_sum))
        self.cluster_size.copy_(torch.where(dead[:, 0], 1.0, self.cluster_size))


class TransformerBlock(nn.Module):
    """Pre-norm bidirectional self-attention and MLP on [B, N, hidden]."""

    def __init__(self, hidden: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.attention_norm = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.mlp = nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, ff_mult * hidden), nn.GELU(),
            nn.Linear(ff_mult * hidden, hidden), nn.Dropout(dropout),
        )

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.attention_out(attended.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(x)


class TokenPrior(nn.Module):
    """p(tokens | class, context tokens): logits [B, N, codebook] for token ids [B, N] (mask id = codebook).

    The input sequence is [class token, tokens], each token's embedding plus, in the HF prior, the
    embeddings of the LF tokens at its time (`context_index`), as the authors align the two bands.
    Until 2026-11-26 (commit f667371) the LF tokens were a prefix of the HF prior's sequence, to be
    aligned by attention: on the quick run's data (benchmarks/generator_quality.py --generators
    timevqvae --per-class 40 --set generators.timevqvae.choice_temperature_lf=4) the aligned prior
    samples about as well (median amplitude ratio per class 0.37 / 0.35 / 0.39 / 0.51 against
    0.34 / 0.37 / 0.40 / 0.56; runs differ by about 0.05) and trains ~10 % faster (a quarter
    shorter sequence). Attention is bidirectional,
    and the logits come from the token positions. Embedding dropout falls on what the prior is
    told (known tokens and the context) only, as the authors do: the class token and the mask
    tokens' own embeddings reach the first block undropped (in the HF prior, plus the dropped LF
    context), so that the condition and the places to fill in are never dropped.
    """

    def __init__(self, codebook_size, n_tokens, n_classes, hidden, layers, heads, ff_mult, dropout,
                 context_codebook_size=0, context_index=None):
        super().__init__()
        if hidden % heads:
            raise PipelineError(
                f"config keys generators.timevqvae.prior_hidden_*: width {hidden} must be divisible by heads {heads}"
            )
        self.mask_id = codebook_size
        self.token_embedding = nn.Embedding(codebook_size + 1, hidden)  # + 1: the mask token
        self.class_embedding = nn.Embedding(n_classes + 1, hidden)  # + 1: the null class
        # context_index [n_tokens, k]: the k context tokens at each token's time (HF prior: the LF
        # tokens of its time column), whose embeddings are added to the token's own.
        self.context_embedding = nn.Embedding(context_codebook_size, hidden) if context_index is not None else None
        self.register_buffer("context_index", context_index, persistent=False)
        self.position = nn.Parameter(0.02 * torch.randn(1, 1 + n_tokens, hidden))
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([TransformerBlock(hidden, heads, ff_mult, dropout) for _ in range(layers)])
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, codebook_size)

    def forward(self, tokens, classes, context=None):
        parts = [self.class_embedding(classes)[:, None]]
        embedded = self.token_embedding(tokens)
        embedded = torch.where((tokens == self.mask_id)[..., None], embedded, self.dropout(embedded))
        if self.context_embedding is not None:
            context = self.dropout(self.context_embedding(context))  # [B, n_context, hidden]
            embedded = embedded + context[:, self.context_index].sum(2)
        parts.append(embedded)
        h = torch.cat(parts, dim=1) + self.position
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h[:, -tokens.shape[1]:]))


def token_halvings(token_ms: float, fs: float, hop: int, band: str = "lf") -> int:
    """How often the encoder halves the STFT's time axis so that a token column spans about
    `token_ms` milliseconds: round(log2(frames per token)), at least 1."""
    if not token_ms > 0:
        raise PipelineError(f"config key generators.timevqvae.{band}_token_ms: {token_ms} must be above 0")
    frames = token_ms / 1000 * fs / hop
    return max(1, round(math.log2(max(frames, 1.0))))


def _gumbel(shape, generator: torch.Generator, device) -> torch.Tensor:
    """Gumbel(0, 1) noise drawn from `generator` only, so that a seed fixes the samples."""
    uniform = torch.rand(shape, generator=generator, device=generator.device).to(device)
    return -torch.log(-torch.log(uniform.clamp_min(1e-20)))


class TimeVQVAE(GeneratorModel):
    """Class-conditional TimeVQVAE on normalised records [B, leads, samples]."""

    def __init__(self, config: TimeVQVAEConfig, n_classes: int, n_leads: int, n_samples: int, fs: int):
        super().__init__(config, n_classes, n_leads, n_samples, fs)
        n_bins = config.n_fft // 2 + 1
        if config.n_fft < 4:
            raise PipelineError(f"config key generators.timevqvae.n_fft: {config.n_fft} is below 4; use 4 or more")
        if not 1 <= config.lf_bins < n_bins:
            raise PipelineError(
                f"config key generators.timevqvae.lf_bins: choose 1 to {n_bins - 1} for n_fft {config.n_fft}"
            )
        self.hop = config.n_fft // 4
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        self.n_frames = self._stft(torch.zeros(1, n_leads, n_samples)).shape[-1]

        rows = {"lf": config.lf_bins, "hf": n_bins - config.lf_bins}
        token_ms = {"lf": config.lf_token_ms, "hf": config.hf_token_ms}
        sizes = {"lf": config.codebook_size_lf, "hf": config.codebook_size_hf}
        self.codebook_sizes = sizes
        self.padded_frames, self.token_grid = {}, {}
        encoders, decoders, quantizers = {}, {}, {}
        for band in BANDS:
            n_down = token_halvings(token_ms[band], fs, self.hop, band)
            factor = 2**n_down  # STFT frames per token column; frames are padded to a multiple of it
            self.padded_frames[band] = math.ceil(self.n_frames / factor) * factor
            self.token_grid[band] = (rows[band], self.padded_frames[band] // factor)
            freq_kernel = 1 if rows[band] == 1 else 3
            encoders[band] = BandEncoder(config, 2 * n_leads, n_down, freq_kernel)
            decoders[band] = BandDecoder(config, 2 * n_leads, n_down, freq_kernel)
            quantizers[band] = EMAQuantizer(sizes[band], config.hidden_channels, config.codebook_decay,
                                            config.commitment_weight, config.dead_code_threshold)
        self.encoders, self.decoders = nn.ModuleDict(encoders), nn.ModuleDict(decoders)
        self.quantizers = nn.ModuleDict(quantizers)

        self.n_tokens = {band: rows * cols for band, (rows, cols) in self.token_grid.items()}
        c = config
        self.priors = nn.ModuleDict({
            "lf": TokenPrior(sizes["lf"], self.n_tokens["lf"], n_classes, c.prior_hidden_lf, c.prior_layers_lf,
                             c.prior_heads_lf, c.prior_ff_mult, c.prior_dropout),
            "hf": TokenPrior(sizes["hf"], self.n_tokens["hf"], n_classes, c.prior_hidden_hf, c.prior_layers_hf,
                             c.prior_heads_hf, c.prior_ff_mult, c.prior_dropout,
                             context_codebook_size=sizes["lf"], context_index=self._lf_at_hf_time()),
        })

    def _lf_at_hf_time(self) -> torch.Tensor:
        """[n_hf, LF rows]: for each HF token (row-major over bins x columns), the LF tokens of the
        LF column that holds the HF token's centre, in STFT frames (each band pads its frames to
        its own token length, so the two grids need not be multiples of each other)."""
        (lf_rows, lf_columns), (hf_rows, hf_columns) = self.token_grid["lf"], self.token_grid["hf"]
        lf_frames = self.padded_frames["lf"] // lf_columns  # STFT frames per LF token column
        hf_frames = self.padded_frames["hf"] // hf_columns
        centre = torch.arange(hf_columns) * hf_frames + hf_frames // 2
        lf_column = (centre // lf_frames).clamp(max=lf_columns - 1)
        per_column = lf_column[:, None] + lf_columns * torch.arange(lf_rows)[None]  # [hf_columns, lf_rows]
        return per_column.repeat(hf_rows, 1)

    # --- the time-frequency transform (float32: torch.stft/istft do not take bf16) ---

    def _stft(self, x):
        """x [B, leads, T] -> real spectrogram [B, 2 x leads, bins, frames] (real and imaginary per lead)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            b, leads, t = x.shape
            spec = torch.stft(x.float().reshape(b * leads, t), self.config.n_fft, hop_length=self.hop,
                              window=self.window.to(x.device), normalized=True, return_complex=True)
            spec = torch.view_as_real(spec)  # [B x leads, bins, frames, 2]
            return spec.reshape(b, leads, *spec.shape[1:]).permute(0, 1, 4, 2, 3).flatten(1, 2)

    def _istft(self, spec):
        """Real spectrogram [B, 2 x leads, bins, frames] -> x [B, leads, T].

        torch.istft's own overlap-add, written out: torch.istft checks its window on the host,
        a CUDA sync on every training step.
        """
        with torch.autocast(device_type=spec.device.type, enabled=False):
            b, _, bins, frames = spec.shape
            n_fft, hop, window = self.config.n_fft, self.hop, self.window.to(spec.device)
            spec = spec.float().reshape(b * self.n_leads, 2, bins, frames)
            columns = torch.fft.irfft(torch.complex(spec[:, 0], spec[:, 1]), n=n_fft, dim=1, norm="ortho")
            length = n_fft + hop * (frames - 1)  # covers the centred record: hop <= n_fft // 2 + 1

            def overlap_add(columns):  # [N, n_fft, frames] -> [N, length]
                return F.fold(columns, (1, length), (1, n_fft), stride=(1, hop))[:, 0, 0]

            signal = overlap_add(columns * window[:, None])
            envelope = overlap_add((window**2)[None, :, None].expand(1, n_fft, frames))
            keep = slice(n_fft // 2, n_fft // 2 + self.n_samples)  # undo stft's centring; crop before dividing
            return (signal[:, keep] / envelope[:, keep]).reshape(b, self.n_leads, self.n_samples)

    def _band(self, spec, band):
        """The band's bins of a spectrogram [B, C, bins, frames]."""
        lf_bins = self.config.lf_bins
        return spec[:, :, :lf_bins] if band == "lf" else spec[:, :, lf_bins:]

    def _band_to_time(self, band_spec, band):
        """A band's bins [B, C, band bins, frames] -> its time-domain signal [B, leads, T] (other bins zero)."""
        n_bins, lf_bins = self.config.n_fft // 2 + 1, self.config.lf_bins
        padding = (0, 0, 0, n_bins - lf_bins) if band == "lf" else (0, 0, lf_bins, 0)
        return self._istft(F.pad(band_spec.float(), padding))

    def split_bands(self, x):
        """x [B, leads, T] -> (x_lf, x_hf), each [B, leads, T]; they sum to x."""
        spec = self._stft(x)
        return tuple(self._band_to_time(self._band(spec, band), band) for band in BANDS)

    # --- stage 1 ---

    def _encode(self, spec, band):
        """Spectrogram [B, C, bins, frames] -> the band's latents [B, hidden, rows, token columns]."""
        band_spec = self._band(spec, band)
        band_spec = F.pad(band_spec, (0, self.padded_frames[band] - self.n_frames))
        return self.encoders[band](band_spec)

    def _decode(self, z, band):
        """Latents [B, hidden, rows, token columns] -> the band's time-domain signal [B, leads, T]."""
        return self._band_to_time(self.decoders[band](z)[..., : self.n_frames], band)

    def _vqvae_loss(self, x):
        spec = self._stft(x)
        loss = 0.0
        for band in BANDS:
            with torch.no_grad():
                target = self._band_to_time(self._band(spec, band), band)
            quantized, _, commitment = self.quantizers[band](self._encode(spec, band))
            reconstruction = self._decode(quantized, band)
            # As the authors: squared error on the smooth LF part, absolute error on the spiky HF part.
            error = F.mse_loss if band == "lf" else F.l1_loss
            loss = loss + error(reconstruction.float(), target) + commitment
        return loss

    @torch.no_grad()
    def tokens(self, x):
        """x [B, leads, T] -> {band: token ids [B, n_tokens]} from the frozen (eval-mode) VQ-VAE."""
        stage1 = (self.encoders, self.quantizers)
        modes = [modules.training for modules in stage1]
        for modules in stage1:
            modules.eval()
        spec = self._stft(x)
        tokens = {band: self.quantizers[band](self._encode(spec, band))[1] for band in BANDS}
        for modules, mode in zip(stage1, modes):
            modules.train(mode)
        return tokens

    @torch.no_grad()
    def reconstruct(self, x):
        """x [B, leads, T] -> its stage-1 reconstruction [B, leads, T] through the tokens."""
        return sum(self._decode_tokens(ids, band) for band, ids in self.tokens(x).items()).float()

    # --- stage 2 ---

    def _masked_token_loss(self, tokens, classes, band, context=None):
        """Cross-entropy on the masked positions, with a cosine-scheduled share of tokens masked."""
        b, n = tokens.shape
        # MaskGIT's schedule: the masked fraction is cos(pi/2 r), r ~ U(0, 1), at least one token.
        n_masked = torch.ceil(torch.cos(torch.rand(b, device=tokens.device) * math.pi / 2) * n).clamp(min=1)
        rank = torch.rand(b, n, device=tokens.device).argsort(1).argsort(1)  # a random order per record
        masked = rank < n_masked[:, None]
        inputs = torch.where(masked, self.codebook_sizes[band], tokens)
        logits = self.priors[band](inputs, classes, context)
        cross_entropy = F.cross_entropy(logits.float().transpose(1, 2), tokens, reduction="none")
        return (cross_entropy * masked).sum() / masked.sum()  # a weighted mean: no host sync

    @torch.no_grad()
    def token_table(self, x, batch_size: int = 256):
        """Records x [N, leads, T] -> their tokens [N, n_lf + n_hf] (long: LF then HF), encoded in
        batches by the frozen VQ-VAE: what stage 2 trains on."""
        rows = []
        for start in range(0, len(x), batch_size):
            tokens = self.tokens(x[start:start + batch_size])
            rows.append(torch.cat([tokens["lf"], tokens["hf"]], dim=1))
        if not rows:
            return torch.zeros(0, self.n_tokens["lf"] + self.n_tokens["hf"], dtype=torch.long, device=x.device)
        return torch.cat(rows)

    def _prior_loss(self, tokens, y):
        """tokens [B, n_lf + n_hf] from `token_table`, or records [B, leads, T] to encode first."""
        if tokens.is_floating_point():
            tokens = self.token_table(tokens)
        lf, hf = tokens.split([self.n_tokens["lf"], self.n_tokens["hf"]], dim=1)
        null = torch.rand(len(y), device=y.device) < self.config.p_uncond  # classifier-free guidance
        classes = torch.where(null, self.n_classes, y)
        return (self._masked_token_loss(lf, classes, "lf")
                + self._masked_token_loss(hf, classes, "hf", context=lf))

    # --- the interface ---

    def training_plan(self) -> list[Stage]:
        """Both stages warm up linearly over `warmup_share` of their steps, then decay along a
        cosine to `final_lr_ratio` of their peak (the authors' schedule; see the config)."""
        c = self.config

        def stage(name, steps, learning_rate):
            return Stage(name, steps, learning_rate, warmup_steps=int(c.warmup_share * steps), cosine=True,
                         final_lr_ratio=c.final_lr_ratio)

        return [stage("vqvae", c.steps, c.learning_rate), stage("prior", c.prior_steps, c.prior_learning_rate)]

    def stage_inputs(self, stage, train_x, train_y):
        """Stage 1 trains on the records; stage 2 on their tokens, encoded once (the VQ-VAE is
        frozen by then), not re-encoded every step."""
        if stage == "prior":
            return self.token_table(train_x), train_y
        return train_x, train_y

    def stage_parameters(self, stage: str):
        if stage == "vqvae":  # the codebooks are EMA buffers, not parameters
            return [*self.encoders.parameters(), *self.decoders.parameters()]
        if stage == "prior":
            return list(self.priors.parameters())
        raise ValueError(f"TimeVQVAE has stages 'vqvae' and 'prior', not {stage!r}")

    def loss(self, x, y, stage):
        """Scalar loss of a batch x [B, leads, T] (normalised), y [B], for stage 'vqvae' or 'prior';
        for 'prior', x may also be the records' tokens [B, n_lf + n_hf] from `stage_inputs`."""
        if stage == "vqvae":
            return self._vqvae_loss(x)
        if stage == "prior":
            return self._prior_loss(x, y)
        raise ValueError(f"TimeVQVAE has stages 'vqvae' and 'prior', not {stage!r}")

    @torch.no_grad()
    def sample(self, y, generator):
        """Records [len(y), leads, T] (float32) of classes y, all randomness drawn from `generator`."""
        was_training = self.training
        self.eval()  # no dropout: it would draw from the global random stream
        try:
            tokens = self.sample_tokens(y.to(self.window.device), generator)
            x = self._decode_tokens(tokens["lf"], "lf") + self._decode_tokens(tokens["hf"], "hf")
        finally:
            self.train(was_training)
        return x.float()

    @torch.no_grad()
    def sample_tokens(self, y, generator) -> dict[str, torch.Tensor]:
        """Token ids {band: [len(y), n_tokens]} of classes y: LF first, then HF given the LF tokens."""
        tokens_lf = self._iterative_decoding(y, generator, "lf")
        return {"lf": tokens_lf, "hf": self._iterative_decoding(y, generator, "hf", context=tokens_lf)}

    def _decode_tokens(self, ids, band):
        """Token ids [B, n_tokens] -> the band's time-domain signal [B, leads, T]."""
        rows, columns = self.token_grid[band]
        codes = F.embedding(ids, self.quantizers[band].embed)  # [B, n_tokens, hidden]
        return self._decode(codes.transpose(1, 2).reshape(len(ids), -1, rows, columns), band)

    def _guided_logits(self, tokens, y, band, context):
        logits = self.priors[band](tokens, y, context).float()
        scale = self.config.guidance_scale
        if scale == 1.0:  # plain conditional: skip the unconditional pass
            return logits
        unconditional = self.priors[band](tokens, torch.full_like(y, self.n_classes), context).float()
        return unconditional + scale * (logits - unconditional)

    def _iterative_decoding(self, y, generator, band, context=None):
        """MaskGIT decoding: start all masked; each step sample every masked token, keep the most
        confident ones and re-mask the rest, fewer each step along the cosine schedule."""
        n, mask_id, steps = self.n_tokens[band], self.codebook_sizes[band], self.config.sampling_steps
        tokens = torch.full((len(y), n), mask_id, dtype=torch.long, device=y.device)
        n_unknown = n
        for step in range(steps):
            logits = self._guided_logits(tokens, y, band, context)
            unknown = tokens == mask_id
            sampled = (logits + _gumbel(logits.shape, generator, y.device)).argmax(-1)  # Gumbel-max = categorical
            sampled = torch.where(unknown, sampled, tokens)
            ratio = (step + 1) / steps
            n_mask = min(math.floor(n * math.cos(math.pi / 2 * ratio)), n_unknown - 1)
            if n_mask <= 0:  # the last step, or too few tokens left: keep everything
                tokens = sampled
                break
            probability = logits.softmax(-1).gather(-1, sampled[..., None])[..., 0]
            # Noisy confidence, the noise fading over the steps (MaskGIT's choice temperature).
            temperature = self.config.choice_temperature_lf if band == "lf" else self.config.choice_temperature_hf
            noise = temperature * (1 - ratio) * _gumbel(probability.shape, generator, y.device)
            confidence = torch.where(unknown, torch.log(probability.clamp_min(1e-20)) + noise, math.inf)
            remask = torch.zeros_like(unknown).scatter(1, confidence.topk(n_mask, dim=1, largest=False).indices, True)
            tokens = torch.where(remask, mask_id, sampled)
            n_unknown = n_mask
        return tokens


@torch.no_grad()
def stage1_r2(model: TimeVQVAE, x, batch_size: int = 64) -> float:
    """Share of the variance of records x [N, leads, T] (normalised) that stage 1 reconstructs
    through its tokens: 1 - sum((x - reconstruct(x))^2) / sum((x - per-lead mean)^2), the mean of
    each lead taken over all records and samples. Evaluated in eval mode, without gradients."""
    device = model.window.device
    x = torch.as_tensor(x, dtype=torch.float32)
    was_training = model.training
    model.eval()
    try:
        mean = x.double().mean(dim=(0, 2), keepdim=True)
        error = total = 0.0
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size]
            reconstruction = model.reconstruct(batch.to(device)).double().cpu()
            error += (batch.double() - reconstruction).pow(2).sum().item()
            total += (batch.double() - mean).pow(2).sum().item()
    finally:
        model.train(was_training)
    return 1.0 - error / total
