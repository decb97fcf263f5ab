"""Building blocks shared by the methods' networks."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Dropout16(nn.Module):
    """Element dropout as `nn.Dropout` (zero each element with probability p while training, scale the kept ones by
    1 / (1 - p)), its mask drawn from 16-bit random integers, two per 32-bit draw, where `nn.Dropout` draws a float
    per element (`bernoulli_`: 36 % of MAAM-Net's `cpu` training step on 2 cores, benchmarks/README). The same
    distribution of masks with p rounded to a multiple of 1/65536 (0.3 -> 0.3000031), other random draws; about 2.3x
    faster on CPU. Ours (issue 27); `nn.Dropout` stays a config value away where a method offers both."""

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout p={p}: must be in [0, 1)")
        self.p = p
        self.threshold = round(p * 65536) - 32768  # keep where the signed 16-bit word >= threshold
        self.scale = 1.0 / (1.0 - p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        n = x.numel()
        words = torch.randint(-2**31, 2**31, ((n + 1) // 2,), dtype=torch.int32, device=x.device)
        keep = words.view(torch.int16)[:n].view(x.shape) >= self.threshold
        return x * (keep.to(x.dtype) * self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


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
    """U-Net expanding path mirroring `UNetEncoder(widths)`; skip connections optional; tanh output in [-1, 1].

    `style="reference"` is the decoder of MNAD's public code (`model/final_future_prediction_with_memory_spatial_
    sumonly_weight_ranking_top1.py` and `model/Reconstruction.py`, class Decoder): two 3x3 conv-BN-ReLU layers from
    `in_channels` (MNAD: query and read concatenated, 2C) to widths[-1] at the bottleneck resolution, so query and
    read are mixed spatially before any upsampling; then 3x3 stride-2 transposed convs (padding 1, output padding 1)
    with BN and ReLU. With skips each upsampling goes to the next width and the stage after reads (skip, upsampled);
    without skips an upsampling keeps its width and the stage after halves it (MNAD-R).
    `style="lite"` has no bottleneck block and 2x2 stride-2 transposed convs to the next width (vadlab before the
    MNAD parity work). Convs in front of batch norm carry no bias (the norm's shift replaces it).
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], out_channels: int, skip: bool = True,
                 style: str = "lite"):
        super().__init__()
        if style not in ("lite", "reference"):
            raise ValueError(f"style must be 'lite' or 'reference', got {style!r}")
        self.skip = skip
        self.entry = DoubleConv(in_channels, widths[-1]) if style == "reference" else nn.Identity()
        self.ups = nn.ModuleList()
        self.stages = nn.ModuleList()
        cin = widths[-1] if style == "reference" else in_channels
        for width in reversed(widths[:-1]):
            if style == "reference":
                up_out = width if skip else cin
                up = nn.ConvTranspose2d(cin, up_out, 3, stride=2, padding=1, output_padding=1, bias=False)
            else:
                up_out = width
                up = nn.ConvTranspose2d(cin, up_out, 2, stride=2, bias=False)
            self.ups.append(nn.Sequential(up, nn.BatchNorm2d(up_out), nn.ReLU(inplace=True)))
            self.stages.append(DoubleConv(up_out + width if skip else up_out, width))
            cin = width
        self.head = nn.Conv2d(cin, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.entry(x)  # (B, widths[-1], h, w) for "reference"; unchanged for "lite"
        for up, stage, skip in zip(self.ups, self.stages, reversed(skips)):
            x = up(x)
            x = stage(torch.cat([x, skip], dim=1) if self.skip else x)
        return torch.tanh(self.head(x))
