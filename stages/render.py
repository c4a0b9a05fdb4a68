"""Stage 6, render: figures of the trained generators, as PNG and GIF.

For a fast weight painter: rank-by-rank figures of fixed latents and `painting.gif`, the
painting process step by step. For every generator given (the painter or the LightGAN
baseline, and optionally the painter + U-Net): a sample grid and latent interpolations.
"""

from __future__ import annotations

from pathlib import Path

import torch
import typer
from torch import nn

from pipeline.config import RenderConfig, load_params
from pipeline.figures import (
    interpolation_grid,
    painting_frames,
    rank_by_rank,
    sample_grid,
    save_gif,
    save_png,
)
from pipeline.generators import FastWeightPainter, latent_dim, load_generator
from pipeline.scoring import value_range
from pipeline.tracking import StageRun
from stages.common import (
    ParamsOption,
    UserError,
    VariantOption,
    VerboseOption,
    log,
    run_tags,
    stage_command,
)

app = typer.Typer(add_completion=False)

FIGURE_NAMES = {"fpa": "fpa", "fpa+unet": "fpa_unet", "base": "base"}  # generator kind -> name


def figure_name(generator: nn.Module) -> str:
    return FIGURE_NAMES[generator.spec.get("kind", "fpa")]


def painter_figures(
    painter: FastWeightPainter,
    z: torch.Tensor,
    *,
    out: Path,
    cfg: RenderConfig,
    span: tuple[float, float],
    scale: int,
) -> list[Path]:
    """rank_by_rank_<i>.png for each latent in z (N, latent), and painting.gif of all of them."""
    written = []
    for i, latent in enumerate(z):
        written.append(out / f"rank_by_rank_{i}.png")
        grid = rank_by_rank(painter, latent, span, max_columns=cfg.max_columns)
        save_png(grid, written[-1], scale=scale)
    written.append(out / "painting.gif")
    frames = painting_frames(painter, z, span)
    save_gif(frames, written[-1], scale=scale, frame_ms=cfg.gif_frame_ms, hold_ms=cfg.gif_hold_ms)
    return written


def render_figures(
    *,
    generators: list[nn.Module],
    out: Path,
    cfg: RenderConfig,
    span: tuple[float, float],
) -> list[Path]:
    """Write every figure of `generators` (the first one decides the latents) into `out`.

    The latents come from cfg.seed in a fixed order (rank-by-rank, grid, interpolation pairs),
    so adding a figure never changes the latents of an earlier one.
    """
    z_dim = latent_dim(generators[0].spec)
    if any(latent_dim(g.spec) != z_dim for g in generators):
        raise UserError(
            "the painter and the denoiser take latents of different sizes; pass the denoiser"
            " trained on this painter"
        )
    rng = torch.Generator().manual_seed(cfg.seed)
    z_rank = torch.randn(cfg.n_latents, z_dim, generator=rng)
    z_grid = torch.randn(cfg.grid_size**2, z_dim, generator=rng)
    z_start, z_end = torch.randn(2, cfg.interpolation_pairs, z_dim, generator=rng)
    scale = max(1, 64 // generators[0].spec["image_size"])  # small images: 64 px per tile
    written = []
    if isinstance(generators[0], FastWeightPainter):
        written += painter_figures(generators[0], z_rank, out=out, cfg=cfg, span=span, scale=scale)
    for generator in generators:
        name = figure_name(generator)
        written.append(out / f"samples_{name}.png")
        save_png(sample_grid(generator, z_grid, span), written[-1], scale=scale)
        written.append(out / f"interpolation_{name}.png")
        grid = interpolation_grid(generator, z_start, z_end, span, steps=cfg.interpolation_steps)
        save_png(grid, written[-1], scale=scale)
    return written


@app.command()
@stage_command("render")
def main(
    painter: Path = typer.Option(
        Path("models/fpa/generator.pt"), help="Trained painter (or LightGAN baseline) file."
    ),
    denoiser: str = typer.Option(
        "", help="Trained painter + U-Net file; empty or not given: no U-Net figures."
    ),
    out: Path = typer.Option(Path("reports/figures"), help="Folder for the figures."),
    params: Path = ParamsOption,
    variant: str | None = VariantOption,
    verbose: bool = VerboseOption,
) -> None:
    """Draw how the painter builds images step by step, sample grids and interpolations."""
    cfg = load_params(params, variant=variant)
    generators = [load_generator(painter)[0]]
    if denoiser:
        generators.append(load_generator(Path(denoiser))[0])
    written = render_figures(
        generators=generators, out=out, cfg=cfg.render, span=value_range(cfg.train.real_range)
    )
    with StageRun(
        stage="render",
        experiment=cfg.tracking.experiment,
        params={"render": cfg.render.model_dump()},
        tags=run_tags(params, variant),
    ) as run:
        for path in written:
            run.log_artifact(path, folder="figures")
    log.info("render: wrote %d figures to %s", len(written), out)


if __name__ == "__main__":
    app()
