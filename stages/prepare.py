"""Stage 1, prepare: a data source -> one uint8 array of resized images plus a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.config import load_params
from pipeline.data import prepare, save_prepared
from pipeline.tracking import StageRun
from stages.common import (
    ParamsOption,
    VerboseOption,
    log,
    run_tags,
    show_progress,
    stage_command,
)

app = typer.Typer(add_completion=False)


def summary_line(manifest: dict) -> str:
    """kept 2430 (3 upscaled, 64 converted), skipped 2 (1 empty file, 1 truncated or corrupt)"""
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(manifest["summary"].items()))
    return (
        f"kept {manifest['n_kept']} ({manifest['n_upscaled']} upscaled, "
        f"{manifest['n_converted']} converted), skipped {manifest['n_skipped']}"
        + (f" ({reasons})" if reasons else "")
    )


@app.command()
@stage_command("prepare")
def main(
    out: Path = typer.Option(Path("data/prepared"), help="Folder for images.npy + manifest.json."),
    params: Path = ParamsOption,
    verbose: bool = VerboseOption,
) -> None:
    """Decode, check, resize and store the dataset named in params.yaml (data section)."""
    cfg = load_params(params)
    data_cfg = cfg.data
    with StageRun(
        stage="prepare",
        experiment=cfg.tracking.experiment,
        params={"data": data_cfg.model_dump()},
        tags=run_tags(params),
    ) as run:
        prepared = prepare(
            source=data_cfg.source,
            path=data_cfg.path,
            image_size=data_cfg.image_size,
            channels=data_cfg.channels,
            categories=data_cfg.categories,
            background=data_cfg.background,
            max_images=data_cfg.max_images,
            max_skipped_fraction=data_cfg.max_skipped_fraction,
            workers=data_cfg.workers,
            progress=show_progress(),
        )
        prepared.manifest["mlflow_run_id"] = run.run_id
        save_prepared(prepared, out)
        m = prepared.manifest
        run.log_metrics({k: m[k] for k in ("n_kept", "n_skipped", "n_upscaled", "n_converted")})
        run.log_artifact(out / "manifest.json")
    log.info("prepare: %s", summary_line(m))


if __name__ == "__main__":
    app()
