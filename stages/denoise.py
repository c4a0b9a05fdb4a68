"""Stage 4, denoise: a U-Net trained as a GAN on top of the frozen, trained painter."""

from __future__ import annotations

import hashlib
from pathlib import Path

import typer

from pipeline.config import load_params
from pipeline.data import load_images
from pipeline.generators import build_generator, load_generator
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
@stage_command("denoise")
def main(
    data: Path = typer.Option(Path("data/prepared"), help="Prepared dataset folder."),
    painter: Path = typer.Option(Path("models/fpa/generator.pt"), help="Trained painter file."),
    out: Path = typer.Option(
        Path("models/unet"), help="Folder for generator.pt, train.json, losses.csv."
    ),
    reference: Path = typer.Option(
        Path("data/reference"),
        help="Reference statistics folder (stats.npz), read when train.fid_every is on.",
    ),
    params: Path = ParamsOption,
    variant: str | None = VariantOption,
    verbose: bool = VerboseOption,
) -> None:
    """Train the U-Net denoiser (params: seed, unet, discriminator, train, fid)."""
    import torch

    cfg = load_params(params, variant=variant)
    images = load_images(data)
    fpa, _ = load_generator(painter)
    spec = {
        "kind": "fpa+unet",
        "painter": fpa.spec,
        "unet": {"base_channels": cfg.unet.base_channels, "levels": cfg.unet.levels},
    }
    torch.manual_seed(cfg.seed)
    generator = build_generator(spec)
    generator.painter.load_state_dict(fpa.state_dict())
    painter_hash = hashlib.sha256(painter.read_bytes()).hexdigest()[:16]
    run_gan_stage(
        stage="denoise",
        tags=run_tags(params, variant),
        cfg=cfg,
        generator=generator,
        images=images,
        steps=cfg.unet.steps,
        out=out,
        identity={"painter_sha256": painter_hash},
        reference=reference,
        read={
            "seed": cfg.seed,
            "painter_sha256": painter_hash,
            **cfg.model_dump(include={"discriminator", "unet"}),
            "train": cfg.train.model_dump(exclude={"steps"}),  # unet.steps counts here
        },
    )


if __name__ == "__main__":
    app()
