"""`wang2017_resnet`: the residual 1D CNN of Wang, Yan and Oates (2017) for time-series
classification, as implemented in dl-4-tsc (Fawaz et al. 2019), for 12-lead ECG.

Three residual blocks, each three convolutions of kernels 8, 5 and 3 with batch norm and ReLU,
64, 128 and 128 filters, no striding; a 1x1 convolution on the shortcut where the width changes;
global average pooling over time; a linear head. It was this project's classifier before the
PTB-XL benchmark's `resnet1d_wang` (resnet1d_wang.py); `architecture: wang2017_resnet` selects it.
"""

import torch
from torch import nn

DEFAULT_FILTERS = (64, 128, 128)  # output channels of each residual block (Wang et al. 2017)
DEFAULT_KERNELS = (8, 5, 3)  # kernel sizes of the three convolutions in a block (Wang et al. 2017)


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


class Wang2017ResNet(nn.Module):
    def __init__(self, n_leads: int, n_classes: int, filters: tuple[int, ...] = DEFAULT_FILTERS,
                 kernels: tuple[int, ...] = DEFAULT_KERNELS):
        super().__init__()
        self.n_classes = n_classes
        widths = [n_leads, *filters]
        self.blocks = nn.Sequential(*(ResidualBlock(a, b, kernels) for a, b in zip(widths, widths[1:])))
        self.head = nn.Linear(filters[-1], n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Records [B, leads, T] -> pooled features [B, filters[-1]] (used for FID and MMD)."""
        return self.blocks(x).mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Records [B, leads, T] (normalised) -> class logits [B, classes]."""
        return self.head(self.embed(x))
