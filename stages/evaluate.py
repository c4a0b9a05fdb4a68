"""Stage 5, evaluate: FID of each generator (EMA weights) against the cached real statistics."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline import fid
from pipeline.config import load_params
from pipeline.generators import load_generator
from pipeline.scoring import GeneratorFID, load_reference, value_range
from pipeline.tracking import StageRun
from stages.common import (
    ParamsOption,
    VerboseOption,
    log,
    show_progress,
    stage_command,
    write_json,
)

app = typer.Typer(add_completion=False)


@app.command()
@stage_command("evaluate")
def main(
    painter: Path = typer.Option(Path("models/fpa/generator.pt"), help="Trained painter file."),
    denoiser: Path = typer.Option(
        Path("models/unet/generator.pt"), help="Trained painter + U-Net file."
    ),
    reference: Path = typer.Option(Path("data/reference"), help="Reference statistics folder."),
    out: Path = typer.Option(Path("metrics"), help="Folder for one <model>.json per model."),
    params: Path = ParamsOption,
    verbose: bool = VerboseOption,
) -> None:
    """FID of the untrained painter, the trained painter and the painter + U-Net."""
    cfg = load_params(params)
    network_path = Path(cfg.fid.network) if cfg.fid.network else fid.default_network_path()
    real, reference_info = load_reference(
        reference, network_path=network_path, protocol=cfg.fid.protocol
    )
    models = {
        "fpa_untrained": load_generator(painter, untrained=True)[0],
        "fpa": load_generator(painter)[0],
        "fpa_unet": load_generator(denoiser)[0],
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
        stage="evaluate", experiment=cfg.tracking.experiment, params={"fid": cfg.fid.model_dump()}
    ) as run:
        for name, generator in models.items():
            score = score_of(generator)
            record = {
                "model": name,
                "fid": round(score, 4),
                "n_fake": cfg.fid.n_fake,
                "n_real": real.n,
                "dataset": reference_info["dataset"],
                "image_size": generator.spec.get("image_size")
                or generator.spec["painter"]["image_size"],
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
