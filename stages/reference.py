"""Stage 2, reference: FID statistics of the prepared real images, computed once (a DVC output)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline import fid
from pipeline.config import load_params
from pipeline.data import load_images, load_manifest
from pipeline.tracking import StageRun
from stages.common import (
    ParamsOption,
    VerboseOption,
    log,
    run_tags,
    show_progress,
    stage_command,
    write_json,
)

app = typer.Typer(add_completion=False)


def dataset_label(data: Path) -> str:
    """emoji, emoji-twitter[Smileys & Emotion], fashion-mnist, or a folder's directory name."""
    manifest = load_manifest(data)
    source = manifest["source"]
    if source == "folder":
        return Path(manifest["path"]).name
    categories = manifest.get("categories")
    return f"{source}[{', '.join(categories)}]" if categories else source


@app.command()
@stage_command("reference")
def main(
    data: Path = typer.Option(Path("data/prepared"), help="Prepared dataset folder."),
    out: Path = typer.Option(Path("data/reference"), help="Folder for stats.npz + stats.json."),
    params: Path = ParamsOption,
    verbose: bool = VerboseOption,
) -> None:
    """Compute the mean and covariance of InceptionV3 pool3 features of the real images."""
    cfg = load_params(params)
    images = load_images(data)
    n = len(images) if cfg.fid.n_real is None else min(cfg.fid.n_real, len(images))
    with StageRun(
        stage="reference",
        experiment=cfg.tracking.experiment,
        params={"fid": cfg.fid.model_dump()},
        tags=run_tags(params),
    ) as run:
        network_path = Path(cfg.fid.network) if cfg.fid.network else fid.default_network_path()
        network = fid.load_network(network_path)
        features = fid.extract_features(
            images[:n],
            network,
            batch_size=cfg.fid.batch_size,
            progress=show_progress(),
            protocol=cfg.fid.protocol,
        )
        stats = fid.Statistics.from_features(features)
        out.mkdir(parents=True, exist_ok=True)
        stats.save(out / "stats.npz")
        write_json(
            out / "stats.json",
            {
                "dataset": dataset_label(data),
                "n_real": n,
                "n_available": len(images),
                "protocol": fid.protocol(
                    network_path=network_path, n_real=n, n_fake=None, name=cfg.fid.protocol
                ),
                "mlflow_run_id": run.run_id,
            },
        )
        run.log_metrics({"n_real": n, "images_processed": n})
    log.info(
        "reference: computed features of %d real images (of %d prepared), FID protocol %s",
        n,
        len(images),
        cfg.fid.protocol,
    )


if __name__ == "__main__":
    app()
