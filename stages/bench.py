"""`fpa bench <name>`: benchmarks that print a table for people and, with --json, one JSON
object on the last line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from stages.common import ParamsOption, UserError, VerboseOption, stage_command

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Benchmarks with ratios.")
JsonOption = typer.Option(False, "--json", help="Also print one JSON object on the last line.")
DeviceOption = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N.")


def _device(name: str):
    import torch

    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise UserError(f"--device {name} is not a device here; use cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for, but no CUDA GPU is visible; use --device cpu")
    return torch.device(name)


def _show(title: str, result: dict[str, Any], as_json: bool) -> None:
    table = Table(title=title, show_header=False)
    for key, value in result.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        table.add_row(key, shown)
    Console(stderr=as_json).print(table)
    if as_json:
        print(json.dumps(result))


@app.command()
@stage_command("bench painting")
def painting(
    batch: int = typer.Option(32, min=1, help="B: images per batch."),
    channels: int = typer.Option(3, min=1, help="C: fast weight matrices per image."),
    dim: int = typer.Option(64, min=1, help="d: image side = key and value size."),
    steps: int = typer.Option(64, min=1, help="T: painting steps."),
    repeats: int = typer.Option(10, min=1, help="Timed repeats (median is reported)."),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
    verbose: bool = VerboseOption,
) -> None:
    """Step-by-step loop vs parallel delta rule, forward + backward."""
    from pipeline.bench import bench_painting

    result = bench_painting(
        batch=batch, channels=channels, dim=dim, steps=steps, repeats=repeats,
        device=_device(device),
    )  # fmt: skip
    _show("painting: loop vs parallel delta rule", result, as_json)


@app.command()
@stage_command("bench fid")
def fid(
    data: Path = typer.Option(Path("data/prepared"), help="Prepared dataset to take images from."),
    n: int = typer.Option(64, min=4, help="Images (FID compares the two halves)."),
    batch_size: int = typer.Option(32, min=1, help="Images per forward pass."),
    workers: int = typer.Option(1, min=0, help="Resize workers for both code paths."),
    repeats: int = typer.Option(3, min=1, help="Timed repeats (median is reported)."),
    as_json: bool = JsonOption,
    verbose: bool = VerboseOption,
) -> None:
    """Our FID feature extraction vs clean-fid's own code path, same network and images."""
    from pipeline.bench import bench_fid
    from pipeline.data import load_images

    images = load_images(data)[:n]
    result = bench_fid(images, batch_size=batch_size, repeats=repeats, workers=workers)
    _show("fid: ours vs clean-fid", result, as_json)


@app.command("train-step")
@stage_command("bench train-step")
def train_step(
    params: Path = ParamsOption,
    device: str = DeviceOption,
    repeats: int = typer.Option(5, min=1, help="Timed repeats (median is reported)."),
    as_json: bool = JsonOption,
    verbose: bool = VerboseOption,
) -> None:
    """Images per second of one full GAN step (G and D) for the config in --params."""
    from pipeline.bench import bench_train_step
    from pipeline.config import load_params

    result = bench_train_step(load_params(params), device=_device(device), repeats=repeats)
    _show("train-step", result, as_json)


@app.command("prepare")
@stage_command("bench prepare")
def prepare_(
    params: Path = ParamsOption,
    repeats: int = typer.Option(3, min=1, help="Timed repeats (median is reported)."),
    photos: int = typer.Option(
        0, min=0, help="Instead of --params' data: a folder of this many 178x218 JPEG photos."
    ),
    as_json: bool = JsonOption,
    verbose: bool = VerboseOption,
) -> None:
    """Images per second of the prepare stage with all cores vs one (data section of --params)."""
    import tempfile

    from pipeline.bench import bench_prepare, write_photos
    from pipeline.config import load_params

    data = load_params(params).data
    with tempfile.TemporaryDirectory() as tmp:
        source, path, categories = data.source, data.path, data.categories
        if photos:
            source, path, categories = "folder", str(write_photos(Path(tmp), photos)), None
        result = bench_prepare(
            source=source, path=path, image_size=data.image_size, categories=categories,
            repeats=repeats,
        )  # fmt: skip
    _show("prepare: all cores vs one", result, as_json)


@app.command("all")
@stage_command("bench all")
def all_(
    device: str = DeviceOption,
    as_json: bool = JsonOption,
    verbose: bool = VerboseOption,
) -> None:
    """The device script: painting, a paper-size (CelebA recipe) GAN step, Inception images/s,
    and the hours a 450k-step CelebA run would take at that speed."""
    from pipeline.bench import bench_all

    result = bench_all(device=_device(device))
    for name in ("painting", "train_step_celeba", "inception"):
        _show(name, result[name], False)
    Console().print(f"450k-step CelebA run: {result['celeba_run_hours']:.1f} hours at this speed")
    if as_json:
        print(json.dumps(result))
