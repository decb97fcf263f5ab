"""Building blocks shared by the methods' networks."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-BN-ReLU layers, the U-Net stage."""

    def __init__(self, cin: int, cout: int):
        super().__init__(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class UNetEncoder(nn.Module):
    """U-Net contracting path: stage widths `widths`, a 2x max-pool between stages.

    With `feature_dim` set, the last stage ends in a plain 3x3 conv to `feature_dim` channels (no BN, no ReLU)
    instead of the second conv-BN-ReLU, as MNAD Sec. 3.1.1 prescribes before its L2 normalisation.
    Returns the bottleneck (B, feature_dim or widths[-1], H / 2^(L-1), W / 2^(L-1)) and the skip features.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], feature_dim: int | None = None):
        super().__init__()
        self.stages = nn.ModuleList()
        cin = in_channels
        for i, width in enumerate(widths):
            last = i == len(widths) - 1
            if last and feature_dim is not None:
                self.stages.append(nn.Sequential(conv_bn_relu(cin, width), nn.Conv2d(width, feature_dim, 3, padding=1)))
            else:
                self.stages.append(DoubleConv(cin, width))
            cin = width
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.pool(x)
            x = stage(x)
            skips.append(x)
        return x, skips[:-1]


class UNetDecoder(nn.Module):
    """U-Net expanding path mirroring `UNetEncoder(widths)`; skip connections optional; tanh output in [-1, 1]."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], out_channels: int, skip: bool = True):
        super().__init__()
        self.skip = skip
        self.ups = nn.ModuleList()
        self.stages = nn.ModuleList()
        cin = in_channels
        for width in reversed(widths[:-1]):
            self.ups.append(nn.Sequential(nn.ConvTranspose2d(cin, width, 2, stride=2, bias=False),
                                          nn.BatchNorm2d(width), nn.ReLU(inplace=True)))
            self.stages.append(DoubleConv(width * 2 if skip else width, width))
            cin = width
        self.head = nn.Conv2d(cin, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for up, stage, skip in zip(self.ups, self.stages, reversed(skips)):
            x = up(x)
            x = stage(torch.cat([x, skip], dim=1) if self.skip else x)
        return torch.tanh(self.head(x))
