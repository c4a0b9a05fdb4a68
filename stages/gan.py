"""Glue shared by the GAN-training stages (painter, U-Net): MLflow run, checkpoints, outputs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.config import Params, fingerprint
from pipeline.discriminator import Discriminator
from pipeline.distributed import init_world, relaunch_under_torchrun, under_torchrun
from pipeline.generators import save_generator
from pipeline.tracking import StageRun
from pipeline.train import GANTrainer, peek_run_id, pick_device, write_history
from stages.common import log, show_progress, write_json

# Settings that change how often we write or log, never the result: not part of the run's identity.
NOT_IDENTITY = ("log_every", "checkpoint_every", "threads", "device")  # processes: it is


class NoRun:
    """Stands in for the MLflow run on ranks other than 0: they log nothing."""

    run_id = None

    def __enter__(self) -> NoRun:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def log_metrics(self, *args, **kwargs) -> None:
        return None

    def last_step(self, key: str) -> int:
        return 0


def run_gan_stage(
    *,
    stage: str,
    cfg: Params,
    generator: nn.Module,
    images: np.ndarray,
    steps: int,
    out: Path,
    identity: dict[str, Any],
) -> None:
    """Train `generator` against a fresh discriminator and write out/{generator.pt, train.json,
    losses.csv}. Checkpoints live in checkpoints/<stage>/<fingerprint of identity>/, so the
    same settings resume and different settings start over."""
    if cfg.train.processes > 1 and not under_torchrun():
        relaunch_under_torchrun(cfg.train.processes, f"stages.{stage}")  # does not return
    world = init_world(pick_device(cfg.train.device))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    train_identity = {k: v for k, v in cfg.train.model_dump().items() if k not in NOT_IDENTITY}
    config = {
        **identity,
        "seed": cfg.seed,
        "steps": steps,
        "train": train_identity,
        "discriminator": cfg.discriminator.model_dump(),
        "spec": generator.spec,
    }
    checkpoint_dir = Path("checkpoints") / stage / fingerprint(config)
    torch.manual_seed(cfg.seed)
    discriminator = Discriminator(
        image_size=images.shape[1], channels=images.shape[3], cfg=cfg.discriminator.model_dump()
    )
    initial = copy.deepcopy(generator.state_dict())
    params = {"seed": cfg.seed, "steps": steps, **{k: v for k, v in config.items() if k != "seed"}}
    run_id = peek_run_id(checkpoint_dir)
    tracked = StageRun(
        stage=stage, experiment=cfg.tracking.experiment, params=params, run_id=run_id
    )
    with tracked if world.is_main else NoRun() as run:
        trainer = GANTrainer(
            generator=generator,
            discriminator=discriminator,
            images=images,
            cfg=cfg.train,
            seed=cfg.seed,
            config=config,
            checkpoint_dir=checkpoint_dir,
            world=world,
            run_id=run.run_id,
        )
        result = trainer.train(
            steps,
            on_log=lambda step, losses: run.log_metrics(losses, step=step),
            logged_through=run.last_step("d_loss") if run_id else 0,
            progress=show_progress(),
        )
        if not world.is_main:
            return
        save_generator(
            out / "generator.pt",
            result.generator.cpu(),
            initial_state=initial,
            steps=steps,
            mlflow_run_id=run.run_id,
        )
        write_history(result.history, out / "losses.csv")
        summary = {
            "steps": steps,
            "seconds": round(result.seconds, 1),
            "images_per_second": round(
                steps * cfg.train.batch_size * cfg.train.grad_accum / max(result.seconds, 1e-9), 1
            ),
            **{f"final_{k}": round(v, 5) for k, v in result.last_losses.items()},
            "generator_parameters": sum(p.numel() for p in generator.parameters()),
            "discriminator_parameters": sum(p.numel() for p in discriminator.parameters()),
            "checkpoints": str(checkpoint_dir),
            "mlflow_run_id": run.run_id,
        }
        write_json(out / "train.json", summary)
        run.log_artifact(out / "losses.csv")
    log.info("%s: %d steps in %.0f s; outputs in %s", stage, steps, result.seconds, out)
