"""`fpa summary`: parameter counts of the generator (painter or baseline) and discriminator a
params file builds."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from stages.common import ParamsOption, VerboseOption, stage_command


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@stage_command("summary")
def main(
    params: Path = ParamsOption,
    paper: bool = typer.Option(False, "--paper", help="The paper's CelebA recipe instead."),
    verbose: bool = VerboseOption,
) -> None:
    """Print the parameter count of every part of the generator and the discriminator."""
    from pipeline.bench import paper_params
    from pipeline.config import load_params
    from pipeline.discriminator import Discriminator
    from pipeline.generators import build_generator

    cfg = paper_params() if paper else load_params(params)
    size, channels = cfg.data.image_size, cfg.data.channels
    generator = build_generator(cfg.generator.spec(image_size=size, channels=channels))
    disc = Discriminator(image_size=size, channels=channels, cfg=cfg.discriminator.model_dump())
    what = f"T = {cfg.generator.steps}" if cfg.generator.kind == "fpa" else "LightGAN baseline"
    table = Table(title=f"{size}x{size}x{channels}, {what}")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    for title, model in (("generator", generator), ("discriminator", disc)):
        table.add_row(title, f"{count(model):,}")
        for name, part in model.named_children():
            table.add_row(f"  {name}", f"{count(part):,}")
            if name == "inputs":  # the painter's input generator: its layers, one by one
                for layer, module in part.named_children():
                    table.add_row(f"    {layer}", f"{count(module):,}")
    Console().print(table)
