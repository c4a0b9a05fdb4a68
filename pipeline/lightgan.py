"""The LightGAN baseline generator (the paper's `base`): the generator of LightweightGAN in the
version the paper's code carries, with a configurable width.

z (B, latent) becomes a 4x4 map by a transposed conv, then one upsampling block per doubling
reaches the image size. Skip-layer excitation (SLE) lets the 16x16 map gate the channels of the
128x128 one (32x32 gates 256x256): in that version the source is always 8 times narrower, so
images of 64 px or less have no SLE at all. A 3x3 conv makes the image, tanh bounds it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional as F

from pipeline.discriminator import Blur, ChannelNorm, LinearAttention, Residual

SLE_SPAN = 8  # an SLE module gates the map this many times wider than its source


class Noise(nn.Module):
    """Adds per-pixel Gaussian noise times a learned scale (starting at 0), in training only.

    The original adds it in evaluation too; without it there, fixed latents give fixed images
    for FID and figures. Remove the `training` test if evaluation should match the original.
    """

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        batch, _, height, width = x.shape
        noise = torch.randn(batch, 1, height, width, device=x.device, dtype=x.dtype)
        return x + self.scale * noise


def up_block(channels_in: int, channels_out: int) -> nn.Sequential:
    """Double the resolution: nearest upsample, blur, 4x4 "same" conv, noise, batch norm, GLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2),
        Blur(),
        nn.ZeroPad2d((2, 1, 2, 1)),  # left, right, top, bottom: keeps the size for kernel 4
        nn.Conv2d(channels_in, 2 * channels_out, 4),
        Noise(),
        nn.BatchNorm2d(2 * channels_out),
        nn.GLU(dim=1),
    )


class SkipExcitation(nn.Module):
    """SLE: a small map, pooled by a learned spatial softmax, becomes one gate in (0, 1) per
    channel of a wider map (a global-context block)."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        hidden = max(3, channels_out // 2)
        self.to_logits = nn.Conv2d(channels_in, 1, 1)
        self.net = nn.Sequential(
            nn.Conv2d(channels_in, hidden, 1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, channels_out, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        attention = self.to_logits(x).flatten(2).softmax(dim=-1)  # (B, 1, H*W)
        pooled = torch.einsum("bon,bcn->bco", attention, x.flatten(2))  # (B, C_in, 1)
        return self.net(pooled.unsqueeze(-1))  # (B, C_out, 1, 1)


class LightGAN(nn.Module):
    """Rebuilt from its spec alone: latent_dim, fmap_max, fmap_inverse_coef, attn_res_layers,
    image_size, channels. Maps z (B, latent_dim) to images (B, C, d, d) in [-1, 1].

    The paper's `base` returns the last conv's output unbounded (its images are clamped when
    saved); the tanh here keeps every generator of this pipeline in [-1, 1].
    """

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.spec = dict(spec)
        size, latent = spec["image_size"], spec["latent_dim"]
        resolution = int(math.log2(size))
        if 2**resolution != size or not 4 <= resolution <= 8:
            raise ValueError(f"image size must be a power of two from 16 to 256, not {size}")
        # The block reading a map 2^r px wide makes 2^(coef - r) features, at most fmap_max.
        widths = [latent] + [
            min(2 ** (spec["fmap_inverse_coef"] - r), spec["fmap_max"])
            for r in range(2, resolution)
        ]
        features = {4 * 2**i: width for i, width in enumerate(widths)}  # map width -> features
        self.initial = nn.Sequential(  # (B, latent, 1, 1) -> (B, latent, 4, 4)
            nn.ConvTranspose2d(latent, 2 * latent, 4), nn.BatchNorm2d(2 * latent), nn.GLU(dim=1)
        )
        self.attention = nn.ModuleDict(  # keyed by the width of the map it reads
            {
                str(px): Residual(
                    nn.Sequential(ChannelNorm(features[px]), LinearAttention(features[px]))
                )
                for px in spec["attn_res_layers"]
                if 4 <= px < size
            }
        )
        self.blocks = nn.ModuleList(
            up_block(features[px], features[2 * px]) for px in features if px < size
        )
        self.excitations = nn.ModuleDict(  # keyed by the width of the map it reads
            {
                str(px): SkipExcitation(features[px], features[SLE_SPAN * px])
                for px in features
                if px >= 16 and SLE_SPAN * px <= size
            }
        )
        self.to_image = nn.Conv2d(widths[-1], spec["channels"], 3, padding=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # as LightweightGAN initialises its convolutions
                nn.init.kaiming_normal_(
                    module.weight, a=0, mode="fan_in", nonlinearity="leaky_relu"
                )

    def forward(self, z: Tensor) -> Tensor:
        x = F.normalize(self.initial(rearrange(z, "b l -> b l 1 1")), dim=1)  # (B, latent, 4, 4)
        gates: dict[int, Tensor] = {}  # map width -> (B, features, 1, 1) gates for that map
        for block in self.blocks:
            px = x.shape[-1]
            if str(px) in self.attention:
                x = self.attention[str(px)](x)  # residual
            x = block(x)  # (B, features[2 px], 2 px, 2 px)
            if str(2 * px) in self.excitations:
                gates[SLE_SPAN * 2 * px] = self.excitations[str(2 * px)](x)
            if 2 * px in gates:
                x = x * gates.pop(2 * px)
        return torch.tanh(self.to_image(x))
