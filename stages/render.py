"""Stage 6, render: rank-by-rank figures for fixed latents and sample grids, as PNG."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from pipeline.config import load_params
from pipeline.figures import rank_by_rank, sample_grid, save_png
from pipeline.generators import latent_dim, load_generator
from pipeline.scoring import value_range
from pipeline.tracking import StageRun
from stages.common import ParamsOption, VerboseOption, log, stage_command

app = typer.Typer(add_completion=False)


@app.command()
@stage_command("render")
def main(
    painter: Path = typer.Option(Path("models/fpa/generator.pt"), help="Trained painter file."),
    denoiser: Path = typer.Option(
        Path("models/unet/generator.pt"), help="Trained painter + U-Net file."
    ),
    out: Path = typer.Option(Path("reports/figures"), help="Folder for the PNG figures."),
    params: Path = ParamsOption,
    verbose: bool = VerboseOption,
) -> None:
    """Draw how the painter builds images step by step, and sample grids of both generators."""
    cfg = load_params(params)
    fpa, _ = load_generator(painter)
    unet, _ = load_generator(denoiser)
    span = value_range(cfg.train.real_range)
    rng = torch.Generator().manual_seed(cfg.render.seed)
    z_rank = torch.randn(cfg.render.n_latents, latent_dim(fpa.spec), generator=rng)
    z_grid = torch.randn(cfg.render.grid_size**2, latent_dim(fpa.spec), generator=rng)
    scale = max(1, 64 // fpa.spec["image_size"])  # small images are enlarged to 64 px per tile
    written = []
    for i, z in enumerate(z_rank):
        written.append(out / f"rank_by_rank_{i}.png")
        save_png(rank_by_rank(fpa, z, span), written[-1], scale=scale)
    for name, generator in (("fpa", fpa), ("fpa_unet", unet)):
        written.append(out / f"samples_{name}.png")
        save_png(sample_grid(generator, z_grid, span), written[-1], scale=scale)
    with StageRun(
        stage="render",
        experiment=cfg.tracking.experiment,
        params={"render": cfg.render.model_dump()},
    ) as run:
        for path in written:
            run.log_artifact(path, folder="figures")
    log.info("render: wrote %d figures to %s", len(written), out)


if __name__ == "__main__":
    app()
