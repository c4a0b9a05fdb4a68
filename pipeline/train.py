"""The GAN training loop shared by the painter and the U-Net stages, with resumable checkpoints.

One step = a discriminator update (hinge loss on both heads, auto-encoding loss on reals, gradient
penalty every `gp_every` steps) then a generator update, then the EMA schedule. Everything random
is either a function of (seed, step) (the data order) or kept in the checkpoint (latents,
augmentation), so a resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import copy
import csv
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from pipeline.config import TrainConfig
from pipeline.generators import latent_dim
from pipeline.losses import augment, gradient_penalty, hinge_d, hinge_g

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 1


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what was kept."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(
            f"train.device is {name!r} but no CUDA GPU is visible; use auto or cpu"
        )
    return torch.device(name)


class EMA:
    """Exponential moving average of a generator's weights (buffers are copied)."""

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        for mine, theirs in zip(self.model.parameters(), model.parameters()):
            mine.lerp_(theirs, 1.0 - decay)
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            mine.copy_(theirs)

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        self.model.load_state_dict(model.state_dict())


class RealImages:
    """Prepared images held as one uint8 tensor on the device; batch order is f(seed, step)."""

    def __init__(self, images: np.ndarray, *, cfg: TrainConfig, seed: int, device: torch.device):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # (N, H, W, C)
        self.cfg, self.seed, self.device = cfg, seed, device
        if len(self.images) == 0:
            raise TrainingError(
                "the prepared dataset is empty; check the prepare stage's manifest"
            )

    def batch(self, step: int, round_: int) -> Tensor:
        """Images number p..p+B-1 of an endless stream of per-epoch permutations."""
        n, size = len(self.images), self.cfg.batch_size
        positions = torch.arange(size) + (step * self.cfg.grad_accum + round_) * size
        epochs, within = positions // n, positions % n
        index = torch.empty(size, dtype=torch.long)
        for epoch in epochs.unique().tolist():
            chosen = epochs == epoch
            index[chosen] = self._order(epoch)[within[chosen]]
        x = self.images[index.to(self.device)].permute(0, 3, 1, 2).float() / 255.0  # (B, C, H, W)
        if self.cfg.hflip:
            flip = torch.rand(size, generator=self._generator(1, step, round_)) < 0.5
            x = torch.where(flip.to(self.device)[:, None, None, None], x.flip(-1), x)
        return x if self.cfg.real_range == "unit" else x * 2 - 1

    def _generator(self, *salt: int) -> torch.Generator:
        entropy = np.random.SeedSequence([self.seed, *salt]).generate_state(1)[0]
        return torch.Generator().manual_seed(int(entropy))

    @functools.lru_cache(maxsize=2)  # noqa: B019 - one dataset object per training run
    def _order(self, epoch: int) -> Tensor:
        return torch.randperm(len(self.images), generator=self._generator(0, epoch))


@dataclass
class TrainResult:
    generator: nn.Module  # the EMA generator, in eval mode
    steps: int
    last_losses: dict[str, float]
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("step_*.pt"))


def save_checkpoint(folder: Path, state: dict[str, Any], *, keep: int = 2) -> Path:
    """Write atomically (temp file + rename): a half-written file is never a checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step_{state['step']:09d}.pt"
    partial = final.with_suffix(".pt.partial")
    torch.save(state, partial)
    os.replace(partial, final)
    for old in _checkpoints(folder)[:-keep]:
        old.unlink()
    return final


def load_latest_checkpoint(folder: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The newest readable checkpoint in `folder`, refused if it was made with another config."""
    for path in reversed(_checkpoints(folder)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is skipped, not fatal
            log.warning("skipping unreadable checkpoint %s (%s)", path, exc)
            continue
        if state.get("config") != config:
            theirs = state.get("config", {})
            keys = sorted(k for k in set(config) | set(theirs) if config.get(k) != theirs.get(k))
            raise TrainingError(
                f"checkpoint {path} was made with different settings ({', '.join(keys)}); "
                f"delete {folder} to start over"
            )
        return state
    return None


def peek_run_id(folder: Path) -> str | None:
    """The MLflow run of the newest checkpoint in `folder`, so a resumed run continues it."""
    for path in reversed(_checkpoints(folder)):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(
                "mlflow_run_id"
            )
        except Exception:  # noqa: BLE001 - unreadable: load_latest_checkpoint says so
            continue
    return None


def train_gan(
    *,
    generator: nn.Module,
    discriminator: nn.Module,
    images: np.ndarray,
    cfg: TrainConfig,
    steps: int,
    seed: int,
    config: dict[str, Any],
    checkpoint_dir: Path,
    device: torch.device,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    run_id: str | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train until `steps`, resuming from the newest checkpoint in `checkpoint_dir` if any.

    `config` is the resolved configuration this run depends on: it is stored in every checkpoint
    and a checkpoint with a different one is refused.
    """
    torch.manual_seed(seed)
    generator.to(device)
    discriminator.to(device)
    trainable = getattr(generator, "trainable_parameters", generator.parameters)()
    opt_g = torch.optim.Adam(trainable, lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr, betas=cfg.betas)
    ema = EMA(generator)
    reals = RealImages(images, cfg=cfg, seed=seed, device=device)
    aug_rng = torch.Generator().manual_seed(seed + 1)
    z_dim = latent_dim(generator.spec)
    start, history = 0, []

    state = load_latest_checkpoint(checkpoint_dir, config)
    if state is not None:
        generator.load_state_dict(state["generator"])
        ema.model.load_state_dict(state["ema"])
        discriminator.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["rng"]["torch"])
        aug_rng.set_state(state["rng"]["augment"])
        if device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"])
        start, history = state["step"], state["history"]
        log.info("resuming from step %d (%s)", start, checkpoint_dir)

    def snapshot(step: int) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "augment": aug_rng.get_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state()
        return {
            "format": CHECKPOINT_FORMAT,
            "config": config,
            "spec": generator.spec,
            "step": step,
            "generator": generator.state_dict(),
            "ema": ema.model.state_dict(),
            "discriminator": discriminator.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "rng": rng,
            "history": history,
            "mlflow_run_id": run_id,
        }

    def aug(x: Tensor) -> Tensor:
        return augment(x, prob=cfg.aug_prob, types=cfg.aug_types, generator=aug_rng)

    def latents() -> Tensor:
        return torch.randn(cfg.batch_size, z_dim).to(device)

    began = time.perf_counter()
    losses: dict[str, float] = {}
    # Losses reach `on_log` only once the checkpoint covering them is written: a run killed in
    # between logs them again after resuming, so no step is ever logged twice or skipped.
    pending: list[tuple[int, dict[str, float]]] = []
    bar = tqdm(total=steps, initial=start, desc="train", unit="step", disable=not progress)
    for step in range(start, steps):
        generator.train()
        # Discriminator: hinge on both heads, auto-encoding of reals, penalty every gp_every.
        apply_gp = cfg.gp_weight > 0 and step % cfg.gp_every == 0
        discriminator.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        totals = dict.fromkeys(("d_loss", "d_recon", "gp", "g_loss"), 0.0)
        for round_ in range(cfg.grad_accum):
            real = reals.batch(step, round_).requires_grad_(apply_gp)
            with torch.no_grad():
                fake = generator(latents())
            real_logits, real_aux, recon = discriminator(aug(real), reconstruct=True)
            fake_logits, fake_aux, _ = discriminator(aug(fake))
            loss = hinge_d(real_logits, fake_logits) + hinge_d(real_aux, fake_aux)
            loss = loss + cfg.recon_weight * recon
            if apply_gp:
                gp = gradient_penalty(real, (real_logits, real_aux), weight=cfg.gp_weight)
                loss = loss + gp
                totals["gp"] += gp.item() / cfg.grad_accum
            (loss / cfg.grad_accum).backward()
            totals["d_loss"] += loss.item() / cfg.grad_accum
            totals["d_recon"] += recon.item() / cfg.grad_accum
        _check_finite(step, totals, checkpoint_dir)
        opt_d.step()

        # Generator: lower the discriminator's logits of its images on both heads.
        discriminator.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        for _ in range(cfg.grad_accum):
            fake_logits, fake_aux, _ = discriminator(aug(generator(latents())))
            loss = hinge_g(fake_logits) + hinge_g(fake_aux)
            (loss / cfg.grad_accum).backward()
            totals["g_loss"] += loss.item() / cfg.grad_accum
        _check_finite(step, totals, checkpoint_dir)
        opt_g.step()

        # EMA schedule of the original recipe: periodic resets early, averaging after ema_start.
        if step % cfg.ema_every == 0 and step > cfg.ema_start:
            ema.update(generator, cfg.ema_decay)
        if step <= cfg.ema_reset_until and step % cfg.ema_reset_every == 2:
            ema.reset(generator)

        done = step + 1
        losses = {k: v for k, v in totals.items() if k != "gp" or apply_gp}
        if done % cfg.log_every == 0 or done == steps:
            history.append({"step": done, **totals})
            pending.append((done, losses))
            bar.set_postfix(d=f"{totals['d_loss']:.3f}", g=f"{totals['g_loss']:.3f}")
        if done % cfg.checkpoint_every == 0 or done == steps:
            save_checkpoint(checkpoint_dir, snapshot(done))
            for logged_step, logged in pending if on_log is not None else ():
                on_log(logged_step, logged)
            pending.clear()
        bar.update(1)
    bar.close()

    if steps <= cfg.ema_start:
        log.warning(
            "training stopped at step %d, before the EMA starts averaging (train.ema_start=%d): "
            "the evaluated generator is the last EMA reset copy",
            steps,
            cfg.ema_start,
        )
    return TrainResult(
        generator=ema.model.eval(),
        steps=steps,
        last_losses=losses,
        seconds=time.perf_counter() - began,
        history=history,
    )


def _check_finite(step: int, losses: dict[str, float], checkpoint_dir: Path) -> None:
    for name, value in losses.items():
        if not np.isfinite(value):
            raise TrainingError(
                f"{name} became {value} at step {step + 1}; the last good checkpoint in "
                f"{checkpoint_dir} is kept; lower train.lr or enable augmentation and run again"
            )


def write_history(history: list[dict[str, float]], path: Path) -> None:
    """The logged losses as CSV, one row per logged step (DVC plots reads it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        if not history:
            return
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
