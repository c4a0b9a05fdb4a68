"""Stage 3, train: the fast weight painter (or the LightGAN baseline), trained as a GAN."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.config import load_params
from pipeline.data import load_images
from pipeline.generators import build_generator
from stages.common import (
    ParamsOption,
    VariantOption,
    VerboseOption,
    run_tags,
    stage_command,
)
from stages.gan import run_gan_stage

app = typer.Typer(add_completion=False)


@app.command()
@stage_command("train")
def main(
    data: Path = typer.Option(Path("data/prepared"), help="Prepared dataset folder."),
    out: Path = typer.Option(
        Path("models/fpa"), help="Folder for generator.pt, train.json, losses.csv."
    ),
    reference: Path = typer.Option(
        Path("data/reference"),
        help="Reference statistics folder (stats.npz), read when train.fid_every is on.",
    ),
    params: Path = ParamsOption,
    variant: str | None = VariantOption,
    verbose: bool = VerboseOption,
) -> None:
    """Train the painter or the baseline (params: seed, generator, discriminator, train, fid)."""
    import torch

    cfg = load_params(params, variant=variant)
    images = load_images(data)
    torch.manual_seed(cfg.seed)
    generator = build_generator(
        cfg.generator.spec(image_size=images.shape[1], channels=images.shape[3])
    )
    run_gan_stage(
        stage="train",
        tags=run_tags(params, variant),
        cfg=cfg,
        generator=generator,
        images=images,
        steps=cfg.train.steps,
        out=out,
        identity={},
        reference=reference,
        read={
            "seed": cfg.seed,
            **cfg.model_dump(include={"generator", "discriminator", "train"}),
        },
    )


if __name__ == "__main__":
    app()
