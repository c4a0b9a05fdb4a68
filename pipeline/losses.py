"""GAN losses and differentiable augmentation, as in the LightweightGAN recipe the paper uses.

Sign convention of that recipe: the discriminator pushes real logits down and fake logits up;
the generator lowers the logits of its own images.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def hinge_d(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    return (F.relu(1 + real_logits) + F.relu(1 - fake_logits)).mean()


def hinge_g(fake_logits: Tensor) -> Tensor:
    return fake_logits.mean()


def gradient_penalty(images: Tensor, outputs: tuple[Tensor, ...], *, weight: float) -> Tensor:
    """weight * E[(||d(sum of outputs)/d images||_2 - 1)^2] on real images."""
    (grads,) = torch.autograd.grad(
        outputs=[o.sum() for o in outputs], inputs=images, create_graph=True
    )
    return weight * ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def _translation(x: Tensor, generator: torch.Generator, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ratio * size pixels, filling with zeros."""
    batch, _, height, width = x.shape
    max_h, max_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    shift = torch.stack(
        [
            torch.randint(-max_h, max_h + 1, (batch,), generator=generator),
            torch.randint(-max_w, max_w + 1, (batch,), generator=generator),
        ],
        dim=1,
    ).to(x.device)
    rows = torch.arange(height, device=x.device)[None, :] - shift[:, :1]  # (B, H)
    cols = torch.arange(width, device=x.device)[None, :] - shift[:, 1:]  # (B, W)
    valid = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None]
    rows, cols = rows.clamp(0, height - 1), cols.clamp(0, width - 1)
    index = torch.arange(batch, device=x.device)[:, None, None]
    moved = x.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return moved * valid[:, None].to(x.dtype)


def _cutout(x: Tensor, generator: torch.Generator, ratio: float = 0.5) -> Tensor:
    """Zero one random square of ratio * size per image."""
    batch, _, height, width = x.shape
    cut_h, cut_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height - cut_h + 1, (batch, 1), generator=generator).to(x.device)
    left = torch.randint(0, width - cut_w + 1, (batch, 1), generator=generator).to(x.device)
    rows = torch.arange(height, device=x.device)[None, :] - top  # (B, H)
    cols = torch.arange(width, device=x.device)[None, :] - left  # (B, W)
    inside = ((rows >= 0) & (rows < cut_h))[:, :, None] & ((cols >= 0) & (cols < cut_w))[:, None]
    return x * (~inside)[:, None].to(x.dtype)


def _color(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random brightness, saturation and contrast per image."""
    batch = x.shape[0]

    def draw() -> Tensor:
        return torch.rand(batch, 1, 1, 1, generator=generator).to(x.device, x.dtype)

    x = x + (draw() - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (draw() * 2) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (draw() + 0.5) + mean


AUGMENTATIONS = {"translation": _translation, "cutout": _cutout, "color": _color}


def augment(
    images: Tensor, *, prob: float, types: list[str], generator: torch.Generator
) -> Tensor:
    """With probability `prob` (drawn once per batch), random flips then DiffAugment `types`."""
    if prob <= 0 or torch.rand((), generator=generator).item() >= prob:
        return images
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    images = torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)
    for name in types:
        images = AUGMENTATIONS[name](images, generator)
    return images
