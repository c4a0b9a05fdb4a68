"""Glue shared by the GAN-training stages (painter, U-Net): MLflow run, checkpoints, training-time
FID, outputs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline import fid
from pipeline.config import Params, fingerprint
from pipeline.discriminator import Discriminator
from pipeline.distributed import init_world, relaunch_under_torchrun, under_torchrun
from pipeline.scoring import GeneratorFID, load_reference, value_range
from pipeline.tracking import StageRun
from pipeline.train import BEST_FILE, GANTrainer, peek_run_id, pick_device, write_history
from stages.common import UserError, log, show_progress, write_json

# Settings that change how often we write or log, never the result: not part of the run's identity.
NOT_IDENTITY = ("log_every", "checkpoint_every", "threads", "device")  # processes: it is
PACKAGES = (Path(__file__).parent, Path(__file__).parents[1] / "pipeline")


def code_fingerprint() -> str:
    """A hash of the pipeline's own code: a checkpoint made by other code is never resumed (DVC
    re-runs a training stage when its code changes, and it must then train anew)."""
    digest = hashlib.sha256()
    for path in sorted(p for folder in PACKAGES for p in folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


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


def _network_path(cfg: Params) -> Path:
    return Path(cfg.fid.network) if cfg.fid.network else fid.default_network_path()


def fid_identity(cfg: Params, reference: Path) -> dict[str, Any]:
    """What training-time FID depends on besides train.fid_*: the reference statistics, the
    network and its batch size. Part of the run's identity, empty when training-time FID is off
    (so that new reference statistics alone never restart a training)."""
    if not cfg.train.fid_on:
        return {}
    stats = reference / "stats.npz"
    if not stats.is_file():
        raise UserError(
            f"{stats} is missing and train.fid_every is {cfg.train.fid_every}; run the reference"
            " stage first (`dvc repro reference`) or set train.fid_every to 0"
        )
    return {
        "fid_train": {
            "reference_sha256": hashlib.sha256(stats.read_bytes()).hexdigest()[:16],
            "network_sha1": fid.file_sha1(_network_path(cfg)),
            "batch_size": cfg.fid.batch_size,
            "protocol": cfg.fid.protocol,
        }
    }


def fid_scorer(cfg: Params, reference: Path, device: torch.device) -> GeneratorFID:
    """Training-time FID: cfg.train.fid_samples images against the reference statistics, the
    network loaded once per run. The latents come from `seed` through their own generator, so
    drawing them never moves the training's random streams."""
    real, _ = load_reference(reference, network_path=_network_path(cfg), protocol=cfg.fid.protocol)
    return GeneratorFID(
        network=fid.load_network(_network_path(cfg), device=device),
        reference=real,
        n=cfg.train.fid_samples,
        batch_size=cfg.fid.batch_size,
        seed=cfg.seed,
        value_range=value_range(cfg.train.real_range),
        protocol=cfg.fid.protocol,
        device=device,
    )


def run_gan_stage(
    *,
    stage: str,
    cfg: Params,
    generator: nn.Module,
    images: np.ndarray,
    steps: int,
    out: Path,
    identity: dict[str, Any],
    reference: Path,
    read: dict[str, Any],
    tags: dict[str, str] | None = None,
) -> None:
    """Train `generator` against a fresh discriminator and write out/{generator.pt, train.json,
    losses.csv}. Checkpoints live in checkpoints/<stage>/<fingerprint of identity>/, so the
    same settings resume and different settings start over. `read` is what the stage read from
    params.yaml, logged to MLflow as its params (dotted keys).

    With train.fid_every, generator.pt is the EMA generator of the lowest training-time FID
    against reference/stats.npz (also kept as best.pt beside the checkpoints); else the last."""
    if cfg.train.processes > 1 and not under_torchrun():
        relaunch_under_torchrun(cfg.train.processes, f"stages.{stage}")  # does not return
    world = init_world(pick_device(cfg.train.device))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    ignored = NOT_IDENTITY if cfg.train.fid_on else (*NOT_IDENTITY, "fid_every", "fid_samples")
    train_identity = {k: v for k, v in cfg.train.model_dump().items() if k not in ignored}
    config = {
        **identity,
        **fid_identity(cfg, reference),
        "data_sha256": hashlib.sha256(np.ascontiguousarray(images).data).hexdigest()[:16],
        "seed": cfg.seed,
        "steps": steps,
        "train": train_identity,
        "discriminator": cfg.discriminator.model_dump(),
        "spec": generator.spec,
        "code": code_fingerprint(),
    }
    checkpoint_dir = Path("checkpoints") / stage / fingerprint(config)
    torch.manual_seed(cfg.seed)
    discriminator = Discriminator(
        image_size=images.shape[1], channels=images.shape[3], cfg=cfg.discriminator.model_dump()
    )
    run_id = peek_run_id(checkpoint_dir)
    tracked = StageRun(
        stage=stage, experiment=cfg.tracking.experiment, params=read, run_id=run_id, tags=tags
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
            fid_scorer=fid_scorer(cfg, reference, world.device)
            if cfg.train.fid_on and world.is_main
            else None,
        )
        resumed_at = trainer.step
        result = trainer.train(
            steps,
            on_log=lambda step, metrics: run.log_metrics(metrics, step=step),
            logged_through=run.last_step("d_loss") if run_id else 0,
            fid_logged_through=run.last_step("fid_train") if run_id else 0,
            progress=show_progress(),
        )
        if not world.is_main:
            return
        selected = "best" if result.best is not None else "last"
        if cfg.train.fid_on and result.best is None:
            log.warning("%s: no training-time FID was finite; the output is the last EMA", stage)
        trainer.export(out / "generator.pt", selected=selected)
        training = result.seconds - result.fid_seconds
        write_history(result.history, out / "losses.csv")
        summary = {
            "steps": steps,
            "seconds": round(result.seconds, 1),
            "fid_seconds": round(result.fid_seconds, 1),  # training-time FID, part of seconds
            "resumed_at": resumed_at,  # seconds and images_per_second count from here
            "images_per_second": round(
                (steps - resumed_at)
                * cfg.train.batch_size
                * cfg.train.grad_accum
                / max(training, 1e-9),
                1,
            ),
            **{f"final_{k}": round(v, 5) for k, v in result.last_losses.items()},
            "generator_parameters": sum(p.numel() for p in generator.parameters()),
            "discriminator_parameters": sum(p.numel() for p in discriminator.parameters()),
            "checkpoints": str(checkpoint_dir),
            "mlflow_run_id": run.run_id,
            **_fid_summary(cfg, trainer, selected),
        }
        write_json(out / "train.json", summary)
        run.log_artifact(out / "losses.csv")
    log.info("%s: %d steps in %.0f s; outputs in %s", stage, steps, result.seconds, out)


def _fid_summary(cfg: Params, trainer: GANTrainer, selected: str) -> dict[str, Any]:
    """train.json's account of training-time FID: which generator was kept and why."""
    best, scorer = trainer.best, trainer.fid_scorer
    summary: dict[str, Any] = {
        "selected": selected,
        "best_step": best.step if best else None,
        "best_fid": round(best.fid, 4) if best else None,
    }
    if scorer is not None:
        summary["best_file"] = str(trainer.checkpoint_dir / BEST_FILE) if best else None
        summary["fid_protocol"] = fid.protocol(
            network_path=_network_path(cfg),
            n_real=scorer.reference.n,
            n_fake=scorer.n,
            name=scorer.protocol,
        )
    return summary
