"""Stage 5, evaluate: FID of each generator (EMA weights) against the cached real statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from pipeline import fid
from pipeline.config import load_params
from pipeline.generators import load_generator
from pipeline.scoring import GeneratorFID, load_reference, value_range
from pipeline.tracking import StageRun
from stages.common import (
    ParamsOption,
    UserError,
    VariantOption,
    VerboseOption,
    log,
    run_tags,
    show_progress,
    stage_command,
    write_json,
)

app = typer.Typer(add_completion=False)


def named_files(pairs: list[str], option: str) -> dict[str, Path]:
    """["fpa=models/fpa/generator.pt"] -> {"fpa": Path(...)}: the models to score, in order."""
    files: dict[str, Path] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise UserError(f"{option} {pair!r} is not NAME=PATH; write e.g. {option} fpa=g.pt")
        if name in files:
            raise UserError(f"{option} names {name!r} twice; give every model its own name")
        files[name] = Path(path)
    return files


def describe(spec: dict[str, Any]) -> dict[str, Any]:
    """What the tables need to know of a generator: kind, input generator, T, U-Net or not."""
    painter = spec.get("painter", spec)
    fpa = painter.get("kind", "fpa") == "fpa"
    return {
        "kind": painter.get("kind", "fpa"),
        "input_generator": painter["input_generator"] if fpa else None,
        "steps": painter["steps"] if fpa else None,
        "rule": painter["rule"] if fpa else None,
        "unet": spec.get("kind") == "fpa+unet",
        "image_size": painter["image_size"],
    }


@app.command()
@stage_command("evaluate")
def main(
    generator: list[str] = typer.Option(
        [], "--generator", help="NAME=PATH of a trained generator file; repeat for more."
    ),
    untrained: list[str] = typer.Option(
        [], help="NAME=PATH: score the weights the training of this file started from."
    ),
    reference: Path = typer.Option(Path("data/reference"), help="Reference statistics folder."),
    out: Path = typer.Option(Path("metrics"), help="Folder for one <NAME>.json per model."),
    params: Path = ParamsOption,
    variant: str | None = VariantOption,
    verbose: bool = VerboseOption,
) -> None:
    """FID of every generator named, e.g. --untrained fpa_untrained=g.pt --generator fpa=g.pt."""
    cfg = load_params(params, variant=variant)
    files = {
        **{(name, True): path for name, path in named_files(untrained, "--untrained").items()},
        **{(name, False): path for name, path in named_files(generator, "--generator").items()},
    }
    if not files:
        raise UserError("no model to score; pass --generator NAME=PATH (and --untrained)")
    if len({name for name, _ in files}) < len(files):
        raise UserError("--untrained and --generator share a NAME; give every model its own")
    network_path = Path(cfg.fid.network) if cfg.fid.network else fid.default_network_path()
    real, reference_info = load_reference(
        reference, network_path=network_path, protocol=cfg.fid.protocol
    )
    models = {
        name: load_generator(path, untrained=flag)[0] for (name, flag), path in files.items()
    }
    score_of = GeneratorFID(
        network=fid.load_network(network_path),
        reference=real,
        n=cfg.fid.n_fake,
        batch_size=cfg.fid.batch_size,
        seed=cfg.fid.seed,
        value_range=value_range(cfg.train.real_range),
        protocol=cfg.fid.protocol,
        progress=show_progress(),
    )
    with StageRun(
        stage="evaluate",
        experiment=cfg.tracking.experiment,
        params={"fid": cfg.fid.model_dump()},
        tags=run_tags(params, variant),
    ) as run:
        for name, model in models.items():
            score = score_of(model)
            record = {
                "model": name,
                "variant": variant,
                "fid": round(score, 4),
                "n_fake": cfg.fid.n_fake,
                "n_real": real.n,
                "dataset": reference_info["dataset"],
                **describe(model.spec),
                "protocol": fid.protocol(
                    network_path=network_path,
                    n_real=real.n,
                    n_fake=cfg.fid.n_fake,
                    name=cfg.fid.protocol,
                ),
                "mlflow_run_id": run.run_id,
            }
            write_json(out / f"{name}.json", record)
            run.log_metrics({f"fid_{name}": score})
            log.info(
                "evaluate: FID %-14s %8.2f  (n_fake=%d, n_real=%d)",
                name,
                score,
                cfg.fid.n_fake,
                real.n,
            )


if __name__ == "__main__":
    app()
