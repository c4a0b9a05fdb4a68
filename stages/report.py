"""Stage 7, report: the results tables in reports/, built from the metrics files."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.config import load_params
from pipeline.report import (
    load_entered,
    paper_tables,
    read_metrics,
    read_table_metrics,
    render_report,
)
from pipeline.tracking import StageRun
from stages.common import ParamsOption, UserError, VerboseOption, log, stage_command

app = typer.Typer(add_completion=False)


@app.command()
@stage_command("report")
def main(
    metrics: Path = typer.Option(
        Path("metrics"),
        help="Folder of <model>.json files (with --paper: of <dataset>/<model>.json files).",
    ),
    out: Path = typer.Option(Path("reports/results.md"), help="Markdown file to write."),
    paper: bool = typer.Option(
        False, help="The paper's two tables over params.yaml's table.datasets and table.models."
    ),
    entered: Path = typer.Option(
        Path("reports/reference_fids.yaml"), help="With --paper: FIDs entered by hand."
    ),
    params: Path = ParamsOption,
    verbose: bool = VerboseOption,
) -> None:
    """Fill the results table (models x datasets, FID with n) from the metrics files."""
    cfg = load_params(params)
    records = read_table_metrics(metrics) if paper else read_metrics(metrics)
    if not records:
        raise UserError(f"no metrics files in {metrics}; run the evaluate stage first")
    if paper:
        table = cfg.table
        steps_set_by = {
            name for name, changes in table.variants.items()
            if "steps" in (changes.get("generator") or {})
        }  # fmt: skip
        text = paper_tables(
            records,
            datasets=table.datasets,
            models=table.models,
            steps_set_by=steps_set_by,
            entered=load_entered(entered),
        )
    else:
        text = render_report(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    with StageRun(stage="report", experiment=cfg.tracking.experiment, params={}) as run:
        run.log_artifact(out)
    log.info("report: wrote %s (%d results)", out, len(records))


if __name__ == "__main__":
    app()
