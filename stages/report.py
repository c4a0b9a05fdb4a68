"""Stage 7, report: the results table in reports/, built from every metrics file."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.config import load_params
from pipeline.report import read_metrics, render_report
from pipeline.tracking import StageRun
from stages.common import ParamsOption, UserError, VerboseOption, log, stage_command

app = typer.Typer(add_completion=False)


@app.command()
@stage_command("report")
def main(
    metrics: Path = typer.Option(Path("metrics"), help="Folder of <model>.json metrics files."),
    out: Path = typer.Option(Path("reports/results.md"), help="Markdown file to write."),
    params: Path = ParamsOption,
    verbose: bool = VerboseOption,
) -> None:
    """Fill the paper-style table (models x datasets, FID with n) from the metrics files."""
    cfg = load_params(params)
    records = read_metrics(metrics)
    if not records:
        raise UserError(f"no metrics files in {metrics}; run the evaluate stage first")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(records))
    with StageRun(stage="report", experiment=cfg.tracking.experiment, params={}) as run:
        run.log_artifact(out)
    log.info("report: wrote %s (%d results)", out, len(records))


if __name__ == "__main__":
    app()
