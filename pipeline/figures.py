"""Figures: how a painter builds an image rank by rank (a figure and a GIF), grids of samples,
and interpolations between latents."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as F
from torchvision.utils import make_grid

from pipeline.generators import FastWeightPainter
from pipeline.rules import rank_one_updates


def to_display(images: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Map generator-space values to [0, 1] for display, clamping as the original code does."""
    low, high = value_range
    return ((images - low) / (high - low)).clamp(0, 1)


def tile_row(images: Tensor, *, columns: int) -> Tensor:
    """(N, C, d, d) images in [0, 1] -> one (C, H, W) grid, `columns` per row, 1 px white lines.

    Greyscale images come back as 3 equal channels (torchvision's make_grid does this)."""
    return make_grid(images, nrow=columns, padding=1, pad_value=1.0)


def shown_steps(steps: int, max_columns: int) -> list[int]:
    """The steps t (1-based) a figure draws: all T of them when T <= max_columns, else
    max_columns evenly spaced ones ending at T, t_k = floor(k T / max_columns) for k = 1..
    max_columns (at T = 64 and 16 columns: 4, 8, ..., 64)."""
    if steps <= max_columns:
        return list(range(1, steps + 1))
    return [k * steps // max_columns for k in range(1, max_columns + 1)]


def _rescale(x: Tensor, target: Tensor) -> Tensor:
    """Each (b, t) matrix set to the Frobenius norm target[b] (over all channels), then tanh."""
    norms = x.flatten(2).norm(dim=2).clamp_min(1e-12)  # (B, T)
    return torch.tanh(x * (target[:, None] / norms)[..., None, None, None])


@torch.no_grad()
def painting_steps(painter: FastWeightPainter, z: Tensor) -> tuple[Tensor, Tensor]:
    """Every step's rank-1 update left_t right_t^T and partial image W_t (the sum of updates
    s <= t) for latents z (B, latent), as two (B, T, C, d, d) tensors in (-1, 1).

    Both are rescaled to the Frobenius norm of the final W_T, then squashed by tanh, so that
    early steps are as visible as late ones; the last partial image is the painter's image.
    """
    painting = painter.paint(z)
    updates = rank_one_updates(painting.factors).transpose(1, 2)  # (B, T, C, d, d)
    partial = updates.cumsum(dim=1)  # (B, T, C, d, d)
    target = painting.weights.flatten(1).norm(dim=1)  # (B,)
    return _rescale(updates, target), _rescale(partial, target)


def rank_by_rank(
    painter: FastWeightPainter,
    z: Tensor,
    value_range: tuple[float, float],
    *,
    max_columns: int | None = None,
) -> Tensor:
    """Top row: the rank-1 update made at a step; bottom row: the partial image W_t after it.

    Both rescaled as in `painting_steps`. All T steps are drawn when T <= max_columns (or
    max_columns is None); otherwise only the steps `shown_steps` picks (evenly spaced, always
    ending at T), and each top tile is the one update made at that step, while each bottom tile
    still holds every update up to it. Returns a (C, H, W) grid in [0, 1], 2 rows of tiles.
    """
    updates, partial = painting_steps(painter, z[None])  # batch of one
    steps = shown_steps(updates.shape[1], max_columns or updates.shape[1])
    index = torch.tensor(steps) - 1
    tiles = torch.cat([updates[0, index], partial[0, index]])  # (2 S, C, d, d)
    return tile_row(to_display(tiles, value_range), columns=len(steps))


def painting_frames(
    painter: FastWeightPainter, z: Tensor, value_range: tuple[float, float]
) -> list[Tensor]:
    """One (C, H, W) frame per step t = 1..T: the partial images W_t of latents z (B, latent)
    side by side, drawn like the bottom row of `rank_by_rank` (rescaled to the final image's
    norm, then tanh), so the last frame shows the painter's images."""
    _, partial = painting_steps(painter, z)  # (B, T, C, d, d)
    return [
        tile_row(to_display(partial[:, t], value_range), columns=len(z))
        for t in range(partial.shape[1])
    ]


@torch.no_grad()
def sample_grid(generator: torch.nn.Module, z: Tensor, value_range: tuple[float, float]) -> Tensor:
    images = to_display(generator(z), value_range)
    side = int(len(z) ** 0.5)
    return tile_row(images, columns=max(side, 1))


def slerp(start: Tensor, end: Tensor, weights: Tensor) -> Tensor:
    """Spherical interpolation between latents start and end (P, latent) at each weight in
    [0, 1] (S,): -> (P, S, latent). Weight 0 gives start and 1 gives end exactly; it follows the
    great circle (angle and norm change smoothly), linear where the two are nearly parallel."""
    omega = torch.arccos(F.cosine_similarity(start, end, dim=-1).clamp(-1, 1))[:, None, None]
    w = weights[None, :, None]  # (1, S, 1)
    sin = torch.sin(omega)  # (P, 1, 1)
    parallel = sin.abs() < 1e-6
    safe_sin = torch.where(parallel, torch.ones_like(sin), sin)
    a = torch.where(parallel, 1 - w, torch.sin((1 - w) * omega) / safe_sin)
    b = torch.where(parallel, w, torch.sin(w * omega) / safe_sin)
    return a * start[:, None] + b * end[:, None]


@torch.no_grad()
def interpolation_images(
    generator: torch.nn.Module, start: Tensor, end: Tensor, *, steps: int
) -> Tensor:
    """The generator's images at `steps` evenly spaced points of the spherical interpolation
    (slerp) from each start latent to its end latent (P, latent): -> (P, steps, C, d, d)."""
    latents = slerp(start, end, torch.linspace(0, 1, steps))  # (P, S, latent)
    images = generator(latents.flatten(0, 1))  # (P S, C, d, d)
    return images.unflatten(0, latents.shape[:2])


def interpolation_grid(
    generator: torch.nn.Module,
    start: Tensor,
    end: Tensor,
    value_range: tuple[float, float],
    *,
    steps: int,
) -> Tensor:
    """One row per pair of latents, from start (left) to end (right) by slerp, `steps` columns."""
    images = interpolation_images(generator, start, end, steps=steps)
    return tile_row(to_display(images.flatten(0, 1), value_range), columns=steps)


def to_image(grid: Tensor, *, scale: int = 1) -> Image.Image:
    """A (C, H, W) [0, 1] grid as a PIL image, optionally enlarged with nearest-neighbour."""
    array = (grid * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    image = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image


def save_png(grid: Tensor, path: Path, *, scale: int = 1) -> None:
    """Write a (C, H, W) [0, 1] grid as PNG, optionally enlarged with nearest-neighbour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    to_image(grid, scale=scale).save(path)


def save_gif(
    frames: list[Tensor], path: Path, *, scale: int = 1, frame_ms: int = 100, hold_ms: int = 1500
) -> None:
    """Write (C, H, W) [0, 1] frames as a looping GIF, each shown frame_ms and the last hold_ms.

    PIL merges a frame identical to the one before it into that one (adding its time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [to_image(frame, scale=scale) for frame in frames]
    durations = [frame_ms] * (len(images) - 1) + [hold_ms]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
