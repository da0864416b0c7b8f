"""`resnet1d_wang`: the 1D ResNet of the PTB-XL benchmark (Strodthoff, Wagner, Schaeffter and
Samek, "Deep learning for ECG analysis: benchmarks and insights from PTB-XL", IEEE JBHI 2021;
helme/ecg_ptbxl_benchmarking, code/models/resnet1d.py), the benchmark's adaptation of Wang et
al.'s (2017) residual network. Our own code after the reference's layer list:

- stem: convolution of kernel 7, stride 1, 128 channels, batch norm, ReLU; no max-pool;
- three basic blocks, one per stage, all 128 channels: convolution of kernel 5 with the block's
  stride, BN, ReLU, convolution of kernel 3, BN, plus the shortcut, then ReLU. The first block
  has stride 1 and an identity shortcut; the second and third stride 2 and a 1x1 convolution of
  stride 2 with BN on the shortcut. Convolutions are bias-free, zero-padded by (k - 1) // 2;
- head (fastai's concat pooling): adaptive max pooling ‖ adaptive average pooling over time
  (2 x 128 features), then BN, dropout 0.25, Linear 256 -> 128, ReLU, BN, dropout 0.5,
  Linear 128 -> classes (the benchmark's lin_ftrs_head = [128], ps_head = 0.5: the hidden layer's
  dropout is half of the last one's);
- weights: Kaiming-normal for convolutions and linear layers, zero biases (its weight_init).

A 10 s record at 100 Hz (1000 samples) leaves 250 time steps before pooling, a 2.5 s crop 63.
12 leads, 4 classes: 473,220 parameters (tests/test_classifier.py spells the sum out).
"""

import torch
from torch import nn

DEFAULT_FILTERS = (128, 128, 128)  # channels of each block; the stem has the first block's (benchmark: inplanes 128)
DEFAULT_KERNELS = (7, 5, 3)  # stem, first and second convolution of a block (benchmark: kernel_size_stem 7, [5, 3])


def convolution(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(in_channels, out_channels, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernels: tuple[int, int], stride: int):
        super().__init__()
        self.conv1 = convolution(in_channels, out_channels, kernels[0], stride)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.conv2 = convolution(out_channels, out_channels, kernels[1])
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and in_channels == out_channels
            else nn.Sequential(nn.Conv1d(in_channels, out_channels, 1, stride=stride, bias=False),
                               nn.BatchNorm1d(out_channels))
        )

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNet1dWang(nn.Module):
    def __init__(self, n_leads: int, n_classes: int, filters: tuple[int, ...] = DEFAULT_FILTERS,
                 kernels: tuple[int, ...] = DEFAULT_KERNELS, head_hidden: int = 128,
                 head_dropout: float = 0.5):
        super().__init__()
        if len(kernels) != 3 or any(k % 2 == 0 for k in kernels):
            raise ValueError(f"resnet1d_wang needs three odd kernel sizes (stem, block, block), got {kernels}")
        self.n_classes = n_classes
        stem_kernel, *block_kernels = kernels
        self.stem = nn.Sequential(convolution(n_leads, filters[0], stem_kernel), nn.BatchNorm1d(filters[0]), nn.ReLU())
        widths = [filters[0], *filters]
        self.blocks = nn.Sequential(*(
            BasicBlock(a, b, tuple(block_kernels), stride=1 if i == 0 else 2)
            for i, (a, b) in enumerate(zip(widths, widths[1:]))
        ))
        sizes = [2 * filters[-1], *([head_hidden] if head_hidden else []), n_classes]
        dropouts = [head_dropout / 2] * (len(sizes) - 2) + [head_dropout]
        layers = []
        for i, (a, b, p) in enumerate(zip(sizes, sizes[1:], dropouts)):
            layers += [nn.BatchNorm1d(a), nn.Dropout(p), nn.Linear(a, b)]
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.head = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Records [B, leads, T] -> concat-pooled features [B, 2 x filters[-1]] (used for FID and MMD)."""
        h = self.blocks(self.stem(x))
        return torch.cat([h.amax(dim=-1), h.mean(dim=-1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Records [B, leads, T] (normalised) -> class logits [B, classes]."""
        return self.head(self.embed(x))
