"""A small convolutional U-Net: image in, a same-sized correction out, in a single pass."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    groups = 8 if channels_out % 8 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1),
        nn.GroupNorm(groups, channels_out),
        nn.LeakyReLU(0.2),
        nn.Conv2d(channels_out, channels_out, 3, padding=1),
        nn.GroupNorm(groups, channels_out),
        nn.LeakyReLU(0.2),
    )


class UNet(nn.Module):
    """`levels` halvings of the resolution with skip connections; the output layer starts at 0."""

    def __init__(self, *, channels: int, base_channels: int = 32, levels: int = 3):
        super().__init__()
        widths = [base_channels * 2**i for i in range(levels + 1)]
        self.stem = _block(channels, widths[0])
        self.down = nn.ModuleList(_block(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.up = nn.ModuleList(_block(b + a, a) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Conv2d(widths[0], channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 2 ** len(self.down):
            raise ValueError(f"image size {x.shape[-1]} is not divisible by 2^{len(self.down)}")
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.avg_pool2d(skips[-1], 2)))
        h = skips.pop()
        for block in reversed(self.up):
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1))
        return self.out(h)
