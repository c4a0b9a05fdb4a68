"""Benchmarks users can run: each comparison is measured in one process, interleaved (A B A B),
after warm-up, as the median of repeats, and reports its shapes, device and thread count."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipeline import fid
from pipeline.config import Params
from pipeline.data import prepare
from pipeline.discriminator import Discriminator
from pipeline.distributed import World
from pipeline.generators import build_generator
from pipeline.rules import DeltaRule, fast_weights
from pipeline.train import GANTrainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    fns: dict[str, Callable[[], Any]], *, repeats: int, warmup: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per call of each function, run in turn so drift hits all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def saved_for_backward_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of the tensors autograd keeps between forward and backward (each storage once)."""
    seen: dict[tuple[int, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn()
    out.sum().backward()
    return sum(seen.values())


def painting_inputs(
    batch: int, channels: int, dim: int, steps: int, *, device: torch.device, seed: int = 0
):
    gen = torch.Generator().manual_seed(seed)
    keys = torch.randn(batch, channels, steps, dim, generator=gen).softmax(-1)
    values = torch.randn(batch, channels, steps, dim, generator=gen)
    rates = torch.rand(batch, channels, steps, 1, generator=gen)
    return [t.to(device).requires_grad_() for t in (keys, values, rates)]


def bench_painting(
    *,
    batch: int = 32,
    channels: int = 3,
    dim: int = 64,
    steps: int = 64,
    repeats: int = 10,
    warmup: int = 3,
    device: torch.device = torch.device("cpu"),
) -> dict[str, Any]:
    """Step-by-step delta rule vs the parallel form, forward + backward, float32."""
    rule = DeltaRule()
    keys, values, rates = painting_inputs(batch, channels, dim, steps, device=device)

    def loop() -> torch.Tensor:
        return torch.tanh(rule.loop(keys, values, rates))

    def parallel() -> torch.Tensor:
        return torch.tanh(fast_weights(rule.factors(keys, values, rates)))

    def forward_backward(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        return lambda: fn().sum().backward()

    seconds = interleaved(
        {"loop": forward_backward(loop), "parallel": forward_backward(parallel)},
        repeats=repeats,
        warmup=warmup,
        device=device,
    )
    with torch.no_grad():
        reference, result = loop(), parallel()
        max_rel_err = ((result - reference).abs().max() / reference.abs().max()).item()
    loop_mem, parallel_mem = saved_for_backward_bytes(loop), saved_for_backward_bytes(parallel)
    return {
        "shape": {"B": batch, "C": channels, "d": dim, "T": steps},
        "device": str(device),
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "loop_ms": seconds["loop"] * 1e3,
        "parallel_ms": seconds["parallel"] * 1e3,
        "speedup": seconds["loop"] / seconds["parallel"],
        "loop_mem_mb": loop_mem / 2**20,
        "parallel_mem_mb": parallel_mem / 2**20,
        "mem_ratio": loop_mem / parallel_mem,
        "max_rel_err": max_rel_err,
    }


class _CleanFIDWrapper(torch.nn.Module):
    """What clean-fid's InceptionV3W does around the network: scale, run, flatten."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network((x - 128) / 128).reshape(len(x), -1)


def bench_fid(
    images: np.ndarray,
    *,
    network_path: Path | None = None,
    batch_size: int = 32,
    repeats: int = 3,
    workers: int = 1,
) -> dict[str, Any]:
    """Our feature extraction vs clean-fid's folder path (its loader, resizer and dataset) with
    the same network on the same images; FID of the first half against the second by both."""
    from cleanfid.fid import fid_from_feats, get_folder_features

    network = fid.load_network(network_path)
    cpu = torch.device("cpu")
    with tempfile.TemporaryDirectory() as folder:
        for i, image in enumerate(images):
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(
                Path(folder) / f"{i:05d}.png"
            )
        results: dict[str, np.ndarray] = {}

        def ours() -> None:
            results["ours"] = fid.extract_features(
                images, network, batch_size=batch_size, num_workers=workers
            )

        def cleanfid() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results["cleanfid"] = get_folder_features(
                    folder, _CleanFIDWrapper(network), num_workers=workers, batch_size=batch_size,
                    device=cpu, mode="clean", verbose=False,
                )  # fmt: skip

        seconds = interleaved(
            {"ours": ours, "cleanfid": cleanfid}, repeats=repeats, warmup=0, device=cpu
        )
    half = len(images) // 2
    ours_feats, their_feats = results["ours"], results["cleanfid"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fid_ours = fid.frechet_distance(
            fid.Statistics.from_features(ours_feats[:half]),
            fid.Statistics.from_features(ours_feats[half:]),
        )
        fid_cleanfid = float(fid_from_feats(their_feats[:half], their_feats[half:]))
    return {
        "images": len(images),
        "image_shape": list(images.shape[1:]),
        "batch_size": batch_size,
        "workers": workers,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "ours_img_s": len(images) / seconds["ours"],
        "cleanfid_img_s": len(images) / seconds["cleanfid"],
        "ratio": seconds["cleanfid"] / seconds["ours"],
        "fid_ours": fid_ours,
        "fid_cleanfid": fid_cleanfid,
        "fid_rel_diff": abs(fid_ours - fid_cleanfid) / max(abs(fid_cleanfid), 1e-12),
        "max_feature_diff": float(np.abs(ours_feats - their_feats).max()),
    }


def bench_train_step(
    params: Params, *, device: torch.device, repeats: int = 5, warmup: int = 2
) -> dict[str, Any]:
    """One full GAN step of the configured painter and discriminator on random images:
    images per second, and the step split into generator, discriminator and penalty time."""
    size, channels = params.data.image_size, params.data.channels
    spec = params.generator.spec(image_size=size, channels=channels)
    torch.manual_seed(params.seed)
    generator = build_generator(spec)
    disc = Discriminator(image_size=size, channels=channels, cfg=params.discriminator.model_dump())
    images = np.random.default_rng(0).integers(0, 256, (256, size, size, channels), np.uint8)
    cfg = params.train.model_copy(update={"gp_every": 2})  # even steps: penalty, odd: none
    with tempfile.TemporaryDirectory() as folder:
        trainer = GANTrainer(
            generator=generator, discriminator=disc, images=images, cfg=cfg, seed=params.seed,
            config={}, checkpoint_dir=Path(folder), world=World(device=device),
        )  # fmt: skip

        def at_step(step: int, fn: Callable[[], Any]) -> Callable[[], None]:
            def run() -> None:
                trainer.step = step
                fn()

            return run

        seconds = interleaved(
            {
                "d": at_step(1, trainer.discriminator_step),
                "d_gp": at_step(0, trainer.discriminator_step),
                "g": at_step(1, trainer.generator_step),
            },
            repeats=repeats,
            warmup=warmup,
            device=device,
        )
    gp = max(seconds["d_gp"] - seconds["d"], 0.0)
    per_step = seconds["d"] + seconds["g"] + gp / params.train.gp_every
    batch = params.train.batch_size * params.train.grad_accum
    return {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch_size": batch,
        "image_size": size,
        "generator_kind": params.generator.kind,
        "painting_steps": params.generator.steps if params.generator.kind == "fpa" else None,
        "generator_parameters": sum(p.numel() for p in generator.parameters()),
        "discriminator_parameters": sum(p.numel() for p in disc.parameters()),
        "img_s": batch / per_step,
        "step_ms": per_step * 1e3,
        "g_ms": seconds["g"] * 1e3,
        "d_ms": seconds["d"] * 1e3,
        "gp_ms": gp * 1e3,
    }


def bench_prepare(
    *, source: str, path: str | None, image_size: int, categories: list[str] | None,
    repeats: int = 3,
) -> dict[str, Any]:  # fmt: skip
    """The prepare stage's decoding with every core vs one."""
    workers = len(os.sched_getaffinity(0))
    counts: dict[str, int] = {}

    def run(n_workers: int) -> Callable[[], None]:
        def go() -> None:
            counts["n"] = prepare(
                source=source, path=path, image_size=image_size, categories=categories,
                workers=n_workers,
            ).images.shape[0]  # fmt: skip

        return go

    seconds = interleaved(
        {"all": run(workers), "one": run(1)},
        repeats=repeats,
        warmup=1,
        device=torch.device("cpu"),
    )
    return {
        "source": source,
        "images": counts["n"],
        "workers": workers,
        "repeats": repeats,
        "img_s": counts["n"] / seconds["all"],
        "img_s_one_core": counts["n"] / seconds["one"],
        "ratio": seconds["one"] / seconds["all"],
    }


def write_photos(folder: Path, n: int, *, width: int = 178, height: int = 218) -> Path:
    """n JPEG files of CelebA's aligned size (178x218): smooth colour fields plus noise, so that
    decoding and resizing cost what a folder of photos costs. Returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    for i in range(n):
        a, b, c = rng.uniform(0, 255, (3, 3))
        field = np.stack([a[k] + b[k] * x + c[k] * y for k in range(3)], axis=-1) % 256
        noisy = field + rng.normal(0, 12, field.shape)
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(
            folder / f"{i:05d}.jpg", quality=90
        )
    return folder


def bench_inception(
    *, device: torch.device, n: int = 256, batch_size: int = 64, workers: int = 4
) -> dict[str, Any]:
    """Images per second through the FID path (clean resize + InceptionV3) on `device`."""
    network = fid.load_network(device=device)
    images = np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), np.uint8)
    run = lambda: fid.extract_features(  # noqa: E731
        images, network, batch_size=batch_size, device=device, num_workers=workers
    )
    seconds = interleaved({"fid": run}, repeats=2, warmup=1, device=device)["fid"]
    return {"device": str(device), "images": n, "batch_size": batch_size, "img_s": n / seconds}


def paper_params() -> Params:
    """The CelebA recipe of the paper: 64x64, batch 20, T = 64, latent 512, LSTM 1024."""
    from pipeline.config import DataConfig

    return Params(data=DataConfig(image_size=64))


def bench_all(*, device: torch.device, celeba_steps: int = 450_000) -> dict[str, Any]:
    """The device script: painting, one paper-size training step, and Inception throughput."""
    step = bench_train_step(paper_params(), device=device, repeats=5, warmup=3)
    return {
        "painting": bench_painting(device=device),
        "train_step_celeba": step,
        "inception": bench_inception(device=device),
        "celeba_run_hours": celeba_steps * step["step_ms"] / 3.6e6,
    }
