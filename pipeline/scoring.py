"""FID of a generator: images from fixed latents streamed through the FID network (never to disk)
and compared with the reference statistics. The evaluate stage and training-time FID share it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline import fid
from pipeline.generators import latent_dim


def value_range(real_range: str) -> tuple[float, float]:
    """Where real images live in generator space: [0, 1] in the original code, else [-1, 1]."""
    return (0.0, 1.0) if real_range == "unit" else (-1.0, 1.0)


@torch.no_grad()
def generated_batches(
    generator: nn.Module,
    *,
    n: int,
    batch_size: int,
    seed: int,
    value_range: tuple[float, float],
) -> Iterator[torch.Tensor]:
    """n uint8 images (B, H, W, C) in batches, from fixed latents; nothing touches the disk.

    The latents are drawn on the CPU, so they are the same whatever device the generator is on.
    """
    rng = torch.Generator().manual_seed(seed)
    z_dim = latent_dim(generator.spec)
    device = next(generator.parameters()).device
    for start in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - start), z_dim, generator=rng)  # (B, latent)
        yield fid.to_uint8(generator(z.to(device)), value_range=value_range).cpu()


class GeneratorFID:
    """Scores generators against one set of reference statistics with one loaded network.

    Every call uses the same n latents (from `seed`), so two scores differ only by the weights.
    """

    def __init__(
        self,
        *,
        network: torch.nn.Module,
        reference: fid.Statistics,
        n: int,
        batch_size: int,
        seed: int,
        value_range: tuple[float, float],
        protocol: str = "clean",
        device: str | torch.device = "cpu",
        progress: bool = False,
    ):
        self.network, self.reference, self.n = network, reference, n
        self.batch_size, self.seed, self.value_range = batch_size, seed, value_range
        self.protocol, self.device, self.progress = protocol, torch.device(device), progress

    def __call__(self, generator: nn.Module) -> float:
        """FID of `generator` (in eval mode) on n samples; raises FIDError if it cannot be had."""
        batches = generated_batches(
            generator,
            n=self.n,
            batch_size=self.batch_size,
            seed=self.seed,
            value_range=self.value_range,
        )
        features = fid.extract_features(
            batches,
            self.network,
            batch_size=self.batch_size,
            device=self.device,
            progress=self.progress,
            protocol=self.protocol,
        )
        return fid.frechet_distance(fid.Statistics.from_features(features), self.reference)


def load_reference(
    folder: Path, *, network_path: Path, protocol: str
) -> tuple[fid.Statistics, dict[str, Any]]:
    """The reference stage's statistics and record, refused if made under another protocol."""
    stats = folder / "stats.npz"
    if not stats.is_file():
        raise FileNotFoundError(f"{stats} is missing; run the reference stage first")
    info = json.loads((folder / "stats.json").read_text())
    real = fid.Statistics.load(stats)
    fid.check_protocol(
        info.get("protocol", {}),
        fid.protocol(network_path=network_path, n_real=real.n, n_fake=None, name=protocol),
        where=folder / "stats.json",
    )
    return real, info
