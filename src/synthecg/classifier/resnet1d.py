"""`resnet1d_wang`: the residual 1D CNN of Wang, Yan and Oates (2017) for time-series classification,
as benchmarked on PTB-XL by Strodthoff et al. (2021), for 12-lead ECG.

Three residual blocks, each three convolutions of kernels 8, 5 and 3 with batch norm and ReLU,
64, 128 and 128 filters, a 1x1 convolution on the shortcut where the width changes; global
average pooling over time; a linear head. The same architecture serves every experiment.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from synthecg.errors import PipelineError


@dataclass(frozen=True)
class ClassifierConfig:
    filters: tuple[int, ...] = (64, 128, 128)  # output channels of each residual block
    kernels: tuple[int, ...] = (8, 5, 3)  # kernel sizes of the three convolutions in a block
    batch_size: int = 64  # records per step
    learning_rate: float = 1e-3  # AdamW
    weight_decay: float = 1e-2  # AdamW
    max_epochs: int = 50  # upper bound; early stopping usually ends sooner
    patience: int = 8  # epochs without a better validation macro-F1 before stopping
    finetune_learning_rate: float = 1e-4  # AdamW, when fine-tuning a pretrained model on real data


def make_classifier_config(overrides: Mapping | None) -> ClassifierConfig:
    known = set(ClassifierConfig.__dataclass_fields__)
    unknown = sorted(set(overrides or {}) - known)
    if unknown:
        raise PipelineError(f"config key classifier: unknown settings {unknown}; known: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in (overrides or {}).items()}
    return ClassifierConfig(**values)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernels: tuple[int, ...]):
        super().__init__()
        layers = []
        channels = in_channels
        for i, kernel in enumerate(kernels):
            layers += [
                nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0),  # "same" length, for even kernels too
                nn.Conv1d(channels, out_channels, kernel, bias=False),
                nn.BatchNorm1d(out_channels),
            ]
            if i < len(kernels) - 1:
                layers.append(nn.ReLU())
            channels = out_channels
        self.body = nn.Sequential(*layers)
        self.shortcut = (
            nn.BatchNorm1d(out_channels)
            if in_channels == out_channels
            else nn.Sequential(nn.Conv1d(in_channels, out_channels, 1, bias=False), nn.BatchNorm1d(out_channels))
        )

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet1d(nn.Module):
    def __init__(self, config: ClassifierConfig, n_leads: int, n_classes: int):
        super().__init__()
        self.config = config
        widths = [n_leads, *config.filters]
        self.blocks = nn.Sequential(*(ResidualBlock(a, b, config.kernels) for a, b in zip(widths, widths[1:])))
        self.head = nn.Linear(config.filters[-1], n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Records [B, leads, T] -> pooled features [B, filters[-1]] (used for FID and MMD)."""
        return self.blocks(x).mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Records [B, leads, T] (normalised) -> class logits [B, classes]."""
        return self.head(self.embed(x))
