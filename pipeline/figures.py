"""Figures: how a painter builds an image rank by rank, and grids of samples."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from pipeline.generators import FastWeightPainter
from pipeline.rules import rank_one_updates


def to_display(images: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Map generator-space values to [0, 1] for display, clamping as the original code does."""
    low, high = value_range
    return ((images - low) / (high - low)).clamp(0, 1)


@torch.no_grad()
def rank_by_rank(
    painter: FastWeightPainter, z: Tensor, value_range: tuple[float, float]
) -> Tensor:
    """Top row: each rank-1 update left_t right_t^T; bottom row: the partial image W_t, their
    sum over s <= t.

    Both are rescaled to the Frobenius norm of the final W_T, then squashed by tanh.
    Returns a (C, H, W) grid in [0, 1] with 2 rows of T tiles.
    """
    painting = painter.paint(z[None])  # batch of one
    updates = rank_one_updates(painting.factors)[0]  # (C, T, d, d)
    partial = updates.cumsum(dim=1)  # (C, T, d, d)
    target = painting.weights[0].norm()

    def rescale(x: Tensor) -> Tensor:  # per step t, over all channels
        norms = x.pow(2).sum(dim=(0, 2, 3), keepdim=True).sqrt().clamp_min(1e-12)
        return torch.tanh(x * target / norms)

    tiles = torch.cat([rescale(updates), rescale(partial)], dim=1)  # (C, 2T, d, d)
    tiles = to_display(tiles.transpose(0, 1), value_range)  # (2T, C, d, d)
    return make_grid(tiles, nrow=updates.shape[1], padding=1, pad_value=1.0)


@torch.no_grad()
def sample_grid(generator: torch.nn.Module, z: Tensor, value_range: tuple[float, float]) -> Tensor:
    images = to_display(generator(z), value_range)
    side = int(len(z) ** 0.5)
    return make_grid(images, nrow=max(side, 1), padding=1, pad_value=1.0)


def save_png(grid: Tensor, path: Path, *, scale: int = 1) -> None:
    """Write a (C, H, W) [0, 1] grid as PNG, optionally enlarged with nearest-neighbour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (grid * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    image = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    image.save(path)
