"""The LightweightGAN (FastGAN) discriminator used by the paper, with a configurable width.

Two heads score an image: the main head on the full image, a second one on a 32x32 copy. A small
decoder reconstructs the real image from the 8x8 features (the auto-encoding loss).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional as F


class Blur(nn.Module):
    """Fixed [1 2 1] x [1 2 1] / 16 low-pass filter, reflect padding, per channel."""

    def __init__(self):
        super().__init__()
        kernel = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (kernel[:, None] * kernel[None, :] / 16)[None, None])

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.kernel.expand(channels, 1, 3, 3), groups=channels)


class ChannelNorm(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.gain + self.bias


class LinearAttention(nn.Module):
    """Linear (global) attention plus 3x3-neighbourhood full attention, summed by a 1x1 conv."""

    def __init__(self, channels: int, *, heads: int = 8, dim_head: int = 64, kernel_size: int = 3):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head, self.kernel_size = heads, dim_head, kernel_size
        self.scale = dim_head**-0.5
        self.to_lin_q = nn.Conv2d(channels, inner, 1, bias=False)
        self.to_lin_kv = nn.Sequential(  # depthwise 3x3 then pointwise
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.Conv2d(channels, inner * 2, 1, bias=False),
        )
        self.to_q = nn.Conv2d(channels, inner, 1, bias=False)
        self.to_kv = nn.Conv2d(channels, inner * 2, 1, bias=False)
        self.to_out = nn.Conv2d(inner * 2, channels, 1)

    def forward(self, fmap: Tensor) -> Tensor:
        height, width = fmap.shape[-2:]
        heads = self.heads

        q, k, v = (self.to_lin_q(fmap), *self.to_lin_kv(fmap).chunk(2, dim=1))
        q, k, v = (rearrange(t, "b (h c) x y -> (b h) (x y) c", h=heads) for t in (q, k, v))
        q = q.softmax(dim=-1) * self.scale
        context = torch.einsum("bnd,bne->bde", k.softmax(dim=-2), v)
        linear = torch.einsum("bnd,bde->bne", q, context)
        linear = rearrange(linear, "(b h) (x y) d -> b (h d) x y", h=heads, x=height, y=width)

        q, k, v = (self.to_q(fmap), *self.to_kv(fmap).chunk(2, dim=1))
        q, k, v = (rearrange(t, "b (h c) x y -> (b h) c x y", h=heads) for t in (q, k, v))
        pad = self.kernel_size // 2
        k, v = (F.unfold(t, kernel_size=self.kernel_size, padding=pad) for t in (k, v))
        k, v = (rearrange(t, "b (d j) n -> b n j d", d=self.dim_head) for t in (k, v))
        q = rearrange(q, "b c x y -> b (x y) c") * self.scale
        sim = torch.einsum("bid,bijd->bij", q, k)
        attn = (sim - sim.amax(dim=-1, keepdim=True).detach()).softmax(dim=-1)
        local = torch.einsum("bij,bijd->bid", attn, v)
        local = rearrange(local, "(b h) (x y) d -> b (h d) x y", h=heads, x=height, y=width)

        return self.to_out(torch.cat([F.gelu(linear), local], dim=1))


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fn(x)


def _attention(channels: int, cfg: dict[str, Any]) -> nn.Module:
    return Residual(
        nn.Sequential(
            ChannelNorm(channels),
            LinearAttention(channels, heads=cfg["attn_heads"], dim_head=cfg["attn_dim_head"]),
        )
    )


class DownBlock(nn.Module):
    """Two branches that halve the resolution, summed: a strided 4x4 conv path and a pooled
    shortcut (the LightweightGAN version the paper used; later versions downsample differently)."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.conv = nn.Sequential(
            Blur(),
            nn.Conv2d(channels_in, channels_out, 4, stride=2, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(channels_out, channels_out, 3, padding=1),
            nn.LeakyReLU(0.1),
        )
        self.skip = nn.Sequential(
            Blur(), nn.AvgPool2d(2), nn.Conv2d(channels_in, channels_out, 1), nn.LeakyReLU(0.1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + self.skip(x)


class Decoder(nn.Module):
    """(upsample, conv, GLU) rounds: 8x8 features back to an image; four rounds give 128x128."""

    def __init__(self, channels_in: int, channels_out: int, rounds: int = 4):
        super().__init__()
        layers, width = [], channels_in
        for i in range(rounds):
            produced = channels_out * 2 if i == rounds - 1 else width
            layers += [
                nn.Upsample(scale_factor=2),
                nn.Conv2d(width, produced, 3, padding=1),
                nn.GLU(dim=1),
            ]
            width //= 2
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Discriminator(nn.Module):
    def __init__(self, *, image_size: int, channels: int, cfg: dict[str, Any]):
        super().__init__()
        resolution = int(math.log2(image_size))
        if 2**resolution != image_size or not 4 <= resolution <= 8:
            raise ValueError(f"image size must be a power of two from 16 to 256, not {image_size}")
        # Features at resolution 2^r: 2^(coef - r), at most fmap_max; the image enters at the top.
        widths = [
            min(2 ** (cfg["fmap_inverse_coef"] - r), cfg["fmap_max"])
            for r in range(resolution, 2, -1)
        ]
        widths[0] = channels
        self.blocks = nn.ModuleList()
        for r, (w_in, w_out) in zip(range(resolution, 2, -1), zip(widths[:-1], widths[1:])):
            attention = _attention(w_in, cfg) if 2**r in cfg["attn_res_layers"] else nn.Identity()
            self.blocks.append(nn.Sequential(attention, DownBlock(w_in, w_out)))
        last = widths[-1]
        if cfg["output_size"] == 5:
            self.to_logits = nn.Sequential(
                nn.Conv2d(last, last, 1), nn.LeakyReLU(0.1), nn.Conv2d(last, 1, 4)
            )
        else:
            self.to_logits = nn.Sequential(
                Blur(),
                nn.Conv2d(last, last, 3, stride=2, padding=1),
                nn.LeakyReLU(0.1),
                nn.Conv2d(last, 1, 4),
            )
        aux = cfg["aux_channels"]
        self.to_aux_logits = nn.Sequential(
            nn.Conv2d(channels, aux, 3, padding=1),
            _attention(aux, cfg) if cfg["aux_attention"] else nn.Identity(),
            DownBlock(aux, aux // 2),
            _attention(aux // 2, cfg) if cfg["aux_attention"] else nn.Identity(),
            nn.AdaptiveAvgPool2d((4, 4)),
            nn.Conv2d(aux // 2, 1, 4),
        )
        self.decoder = Decoder(last, channels, rounds=cfg["decoder_rounds"])

    def forward(self, images: Tensor, *, reconstruct: int = 0):
        """Returns (main logits (B, k), 32x32-head logits (B, 1), auto-encoding loss or None).

        `reconstruct` = n > 0 decodes the first n images (the reals of a real + fake batch) and
        returns the mean squared error against them.
        """
        x = images
        for block in self.blocks:
            x = block(x)  # ends at (B, last, 8, 8)
        logits = self.to_logits(x).flatten(1)
        small = F.interpolate(images, size=(32, 32))
        aux_logits = self.to_aux_logits(small).flatten(1)
        if not reconstruct:
            return logits, aux_logits, None
        recon = self.decoder(x[:reconstruct])
        target = F.interpolate(images[:reconstruct], size=recon.shape[-2:])
        return logits, aux_logits, F.mse_loss(recon, target)
