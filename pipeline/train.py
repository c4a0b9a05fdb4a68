"""The GAN training loop shared by the painter and the U-Net stages, with resumable checkpoints.

One step = a discriminator update (hinge loss on both heads, auto-encoding loss on reals, gradient
penalty every `gp_every` steps) then a generator update, then the EMA schedule. Everything random
is either a function of (seed, step) (the data order) or kept in the checkpoint (latents,
augmentation), so a resumed run continues exactly where the interrupted one stopped.

With train.fid_every, the EMA generator's FID is measured every fid_every steps and at the last
step; the lowest one so far (its step, value and weights) is part of every checkpoint and is
written to best.pt beside them, so a resumed run keeps the same best as an uninterrupted one.
"""

from __future__ import annotations

import copy
import csv
import functools
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from pipeline.config import TrainConfig
from pipeline.distributed import World
from pipeline.fid import FIDError
from pipeline.generators import latent_dim, save_generator
from pipeline.losses import augment, gradient_penalty, hinge_d, hinge_g

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 1
BEST_FILE = "best.pt"  # in the checkpoint folder: the EMA generator of the best training-time FID


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

    def __init__(self, images: np.ndarray, *, cfg: TrainConfig, seed: int, world: World):
        self.device = world.device
        self.images = torch.from_numpy(np.array(images)).to(self.device)  # (N, H, W, C), a copy
        self.cfg, self.seed, self.world = cfg, seed, world
        if len(self.images) == 0:
            raise TrainingError(
                "the prepared dataset is empty; check the prepare stage's manifest"
            )

    def batch(self, step: int, round_: int) -> Tensor:
        """Images number p..p+B-1 of an endless stream of per-epoch permutations (B the global
        batch); this rank's slice of them."""
        n, size = len(self.images), self.cfg.batch_size
        part = self.world.part(size)
        positions = (torch.arange(size) + (step * self.cfg.grad_accum + round_) * size)[part]
        epochs, within = positions // n, positions % n
        index = torch.empty(len(positions), dtype=torch.long)
        for epoch in epochs.unique().tolist():
            chosen = epochs == epoch
            index[chosen] = self._order(epoch)[within[chosen]]
        x = self.images[index.to(self.device)].permute(0, 3, 1, 2).float() / 255.0  # (B, C, H, W)
        if self.cfg.hflip:
            flip = (torch.rand(size, generator=self._generator(1, step, round_)) < 0.5)[part]
            x = torch.where(flip.to(self.device)[:, None, None, None], x.flip(-1), x)
        return x if self.cfg.real_range == "unit" else x * 2 - 1

    def _generator(self, *salt: int) -> torch.Generator:
        entropy = np.random.SeedSequence([self.seed, *salt]).generate_state(1)[0]
        return torch.Generator().manual_seed(int(entropy))

    @functools.lru_cache(maxsize=2)  # noqa: B019 - one dataset object per training run
    def _order(self, epoch: int) -> Tensor:
        return torch.randperm(len(self.images), generator=self._generator(0, epoch))


@dataclass
class BestEMA:
    """The EMA generator of the lowest training-time FID so far (weights on the CPU)."""

    step: int
    fid: float
    state: dict[str, Tensor]


@dataclass
class TrainResult:
    generator: nn.Module  # the EMA generator, in eval mode
    steps: int
    last_losses: dict[str, float]
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    best: BestEMA | None = None  # set when training-time FID ran and gave a finite value
    fid_seconds: float = 0.0  # of `seconds`, the part spent on training-time FID


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


class StopRequests:
    """Turn Ctrl-C and SIGTERM into a request the loop honours between two steps, so that the
    checkpoint it writes is consistent; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False

    def _handler(self, signum, frame):  # noqa: ARG002
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stop requested: finishing this step and writing a checkpoint")

    def __enter__(self) -> StopRequests:
        self._saved = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


class GANTrainer:
    """Holds G, D, their optimisers, the EMA and every random state of one training run.

    `config` is the resolved configuration the run depends on: it is stored in every checkpoint
    and a checkpoint made with a different one is refused.

    `fid_scorer` (the FID of a generator, pipeline.scoring.GeneratorFID on rank 0) is called on
    the EMA generator every cfg.fid_every steps; the best one is kept in every checkpoint and as
    checkpoint_dir/best.pt.
    """

    def __init__(
        self,
        *,
        generator: nn.Module,
        discriminator: nn.Module,
        images: np.ndarray,
        cfg: TrainConfig,
        seed: int,
        config: dict[str, Any],
        checkpoint_dir: Path,
        world: World | None = None,
        run_id: str | None = None,
        fid_scorer: Callable[[nn.Module], float] | None = None,
    ):
        torch.manual_seed(seed)
        self.world = world or World()
        self.cfg, self.config, self.device = cfg, config, self.world.device
        self.checkpoint_dir, self.run_id = checkpoint_dir, run_id
        # Only rank 0 measures FID; under DDP the other ranks wait for it in the next step's
        # collectives, so one FID must end within the process group's timeout (torch's
        # default: 10 min NCCL, 30 min gloo): mind it for 10k samples on CPUs.
        self.fid_scorer = fid_scorer if cfg.fid_on and self.world.is_main else None
        self.initial_state = _cpu_copy(generator.state_dict())  # what the untrained G was
        self.best: BestEMA | None = None
        self.fid_seconds = 0.0  # spent on training-time FID by this process
        self.generator = generator.to(self.device)
        self.discriminator = discriminator.to(self.device)
        if cfg.channels_last:
            self.discriminator.to(memory_format=torch.channels_last)
        # DDP wrappers are used only where their gradients are wanted: G in the generator step,
        # D in the discriminator step; elsewhere the plain modules run.
        self.g_train, self.d_train = self.generator, self.discriminator
        if self.world.active:
            self.g_train = DistributedDataParallel(self.generator)
            self.d_train = DistributedDataParallel(self.discriminator)
        # torch.compile'd views of the same modules. The gradient penalty needs a double
        # backward, which compiled graphs do not support: its steps run D eagerly.
        self.g_fast, self.d_fast, self.d_frozen = self.g_train, self.d_train, self.discriminator
        if cfg.compile:
            self.g_fast, self.d_fast, self.d_frozen = (
                torch.compile(m) for m in (self.g_train, self.d_train, self.discriminator)
            )
        trainable = getattr(generator, "trainable_parameters", generator.parameters)()
        self.opt_g = torch.optim.Adam(trainable, lr=cfg.lr, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.ema = EMA(generator)
        self.reals = RealImages(images, cfg=cfg, seed=seed, world=self.world)
        self.aug_rng = torch.Generator().manual_seed(seed + 1)
        self.z_dim = latent_dim(generator.spec)
        self.step = 0
        self.history: list[dict[str, float]] = []
        state = load_latest_checkpoint(checkpoint_dir, config)
        if state is not None:
            self._restore(state)
            log.info("resuming from step %d (%s)", self.step, checkpoint_dir)

    def _restore(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.ema.model.load_state_dict(state["ema"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["rng"]["torch"])
        self.aug_rng.set_state(state["rng"]["augment"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"])
        self.step, self.history = state["step"], state["history"]
        best = state.get("best")
        if best is not None:
            self.best = BestEMA(step=best["step"], fid=best["fid"], state=best["ema"])
            if self.world.is_main:  # a best.pt newer than this checkpoint belongs to a lost future
                self.export(self.checkpoint_dir / BEST_FILE, selected="best")

    def snapshot(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "augment": self.aug_rng.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state()
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config,
            "spec": self.generator.spec,
            "step": self.step,
            "generator": self.generator.state_dict(),
            "ema": self.ema.model.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": rng,
            "history": self.history,
            "best": None
            if self.best is None
            else {"step": self.best.step, "fid": self.best.fid, "ema": self.best.state},
            "mlflow_run_id": self.run_id,
        }

    def export(self, path: Path, *, selected: Literal["best", "last"]) -> None:
        """Write the best ("best") or the current ("last") EMA generator as a generator file."""
        generator = copy.deepcopy(self.ema.model).cpu()
        step, fid_train = self.step, None
        if selected == "best":
            assert self.best is not None, "no training-time FID was finite: nothing to export"
            generator.load_state_dict(self.best.state)
            step, fid_train = self.best.step, self.best.fid
        save_generator(
            path,
            generator,
            initial_state=self.initial_state,
            steps=step,
            selected=selected,
            fid_train=fid_train,
            mlflow_run_id=self.run_id,
        )

    def _measure_fid(self) -> float | None:
        """The EMA generator's FID now; the best so far is kept. None if it is not finite."""
        began = time.perf_counter()
        try:
            score = float(self.fid_scorer(self.ema.model))
        except FIDError as exc:  # e.g. non-finite images: no number, training goes on
            log.warning("step %d: no training-time FID (%s)", self.step, exc)
            return None
        finally:
            self.fid_seconds += time.perf_counter() - began
        if not math.isfinite(score):
            log.warning("step %d: training-time FID is %s; not recorded", self.step, score)
            return None
        improved = self.best is None or score < self.best.fid
        if improved:
            self.best = BestEMA(
                step=self.step, fid=score, state=_cpu_copy(self.ema.model.state_dict())
            )
            self.export(self.checkpoint_dir / BEST_FILE, selected="best")
        log.info(
            "step %d: training-time FID %.3f%s",
            self.step,
            score,
            " (best so far)" if improved else f" (best {self.best.fid:.3f} at {self.best.step})",
        )
        return score

    def _autocast(self):
        """bf16 autocast when train.amp asks for it (the learning rule stays in float32)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp)

    def _layout(self, images: Tensor) -> Tensor:
        if self.cfg.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def _augment(self, images: Tensor) -> Tensor:
        return augment(
            images, prob=self.cfg.aug_prob, types=self.cfg.aug_types, generator=self.aug_rng
        )

    def _latents(self) -> Tensor:
        """The global batch's latents, drawn alike on every rank; this rank's slice of them."""
        z = torch.randn(self.cfg.batch_size, self.z_dim)
        return z[self.world.part(self.cfg.batch_size)].to(self.device)

    def discriminator_step(self) -> dict[str, float]:
        """Hinge loss on both heads, auto-encoding of reals, gradient penalty every gp_every."""
        cfg, rounds = self.cfg, self.cfg.grad_accum
        apply_gp = cfg.gp_weight > 0 and self.step % cfg.gp_every == 0
        self.generator.train()
        self.discriminator.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        totals = dict.fromkeys(
            ("d_loss", "d_recon", "gp") if apply_gp else ("d_loss", "d_recon"), 0.0
        )
        for round_ in range(rounds):
            real = self.reals.batch(self.step, round_).requires_grad_(apply_gp)
            with torch.no_grad(), self._autocast():
                fake = self.generator(self._latents()).float()
            # One pass over reals and fakes together (one forward per backward, as DDP wants).
            n = len(real)
            both = self._layout(torch.cat([self._augment(real), self._augment(fake)]))
            with self._autocast():
                d = self.d_train if apply_gp else self.d_fast
                logits, aux, recon = d(both, reconstruct=n)
            logits, aux, recon = logits.float(), aux.float(), recon.float()
            loss = hinge_d(logits[:n], logits[n:]) + hinge_d(aux[:n], aux[n:])
            loss = loss + cfg.recon_weight * recon
            if apply_gp:
                gp = gradient_penalty(real, (logits[:n], aux[:n]), weight=cfg.gp_weight)
                loss = loss + gp
                totals["gp"] += gp.item() / rounds
            (loss / rounds).backward()
            totals["d_loss"] += loss.item() / rounds
            totals["d_recon"] += recon.item() / rounds
        totals = self.world.mean(totals)
        self._check_finite(totals)
        self.opt_d.step()
        return totals

    def generator_step(self) -> dict[str, float]:
        """Lower the discriminator's logits of generated images on both heads."""
        rounds = self.cfg.grad_accum
        self.discriminator.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(rounds):
            with self._autocast():
                fake = self._layout(self._augment(self.g_fast(self._latents()).float()))
                fake_logits, fake_aux, _ = self.d_frozen(fake)
            fake_logits, fake_aux = fake_logits.float(), fake_aux.float()
            loss = hinge_g(fake_logits) + hinge_g(fake_aux)
            (loss / rounds).backward()
            total += loss.item() / rounds
        losses = self.world.mean({"g_loss": total})
        self._check_finite(losses)
        self.opt_g.step()
        return losses

    def ema_step(self) -> None:
        """The original schedule: periodic resets early on, averaging once past ema_start."""
        cfg, step = self.cfg, self.step
        if step % cfg.ema_every == 0 and step > cfg.ema_start:
            self.ema.update(self.generator, cfg.ema_decay)
        if step <= cfg.ema_reset_until and step % cfg.ema_reset_every == 2:
            self.ema.reset(self.generator)

    def _check_finite(self, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            if not np.isfinite(value):
                kept = _checkpoints(self.checkpoint_dir)
                where = (
                    f"the last good checkpoint ({kept[-1]}) is kept"
                    if kept
                    else "no checkpoint had been written yet"
                )
                raise TrainingError(
                    f"{name} became {value} at step {self.step + 1}; {where}; lower train.lr or"
                    " enable augmentation and run again"
                )

    def train(
        self,
        steps: int,
        *,
        on_log: Callable[[int, dict[str, float]], None] | None = None,
        logged_through: int = 0,
        fid_logged_through: int = 0,
        progress: bool = False,
    ) -> TrainResult:
        """Train until `steps`, checkpointing every checkpoint_every steps, at the end, and when
        asked to stop (Ctrl-C, SIGTERM: then KeyboardInterrupt is raised after the checkpoint).

        Losses reach `on_log` as soon as they are computed, except for steps up to
        `logged_through` (what an interrupted run already logged before it was resumed from an
        earlier checkpoint): no step is ever logged twice or skipped. Training-time FIDs reach it
        as {"fid_train": value} the same way, with `fid_logged_through`.
        """
        cfg = self.cfg
        began = time.perf_counter()
        losses: dict[str, float] = {}

        show = progress and self.world.is_main
        bar = tqdm(total=steps, initial=self.step, desc="train", unit="step", disable=not show)
        with StopRequests() as stop, bar:
            while self.step < steps:
                losses = {**self.discriminator_step(), **self.generator_step()}
                self.ema_step()
                self.step += 1
                if self.step % cfg.log_every == 0 or self.step == steps:
                    self.history.append({"step": self.step, **losses})
                    if on_log is not None and self.step > logged_through and self.world.is_main:
                        on_log(self.step, losses)
                    bar.set_postfix(d=f"{losses['d_loss']:.3f}", g=f"{losses['g_loss']:.3f}")
                if self._fid_due(steps):
                    score = self._measure_fid()
                    if on_log is not None and score is not None and self.step > fid_logged_through:
                        on_log(self.step, {"fid_train": score})
                stopping = self.world.any(stop.requested)
                if self.step % cfg.checkpoint_every == 0 or self.step == steps or stopping:
                    if self.world.is_main:
                        save_checkpoint(self.checkpoint_dir, self.snapshot())
                        if not show:  # no bar (piped output, CI): a status line per checkpoint
                            log.info("step %d/%d: %s", self.step, steps, _brief(losses))
                bar.update(1)
                if stopping:
                    raise KeyboardInterrupt
        if steps <= cfg.ema_start:
            log.warning(
                "training ended at step %d, before the EMA averages (train.ema_start=%d): the"
                " evaluated generator is the last EMA reset copy",
                steps,
                cfg.ema_start,
            )
        return TrainResult(
            generator=self.ema.model.eval(),
            steps=steps,
            last_losses=losses,
            seconds=time.perf_counter() - began,
            history=self.history,
            best=self.best,
            fid_seconds=self.fid_seconds,
        )

    def _fid_due(self, steps: int) -> bool:
        every = self.cfg.fid_every
        return self.fid_scorer is not None and (self.step % every == 0 or self.step == steps)


def _cpu_copy(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in state.items()}


def _brief(losses: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3f}" for name, value in losses.items())


def write_history(history: list[dict[str, float]], path: Path) -> None:
    """The logged losses as CSV, one row per logged step (DVC plots reads it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        if not history:
            return
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
