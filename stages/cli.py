"""`fpa`: one command per pipeline stage (DVC runs the same ones as `python -m stages.<name>`)."""

from __future__ import annotations

import typer

from stages import bench, denoise, evaluate, prepare, reference, render, report, summary, train

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Fast Weight Painters: one command per pipeline stage; `dvc repro` runs them all.",
)
for name, module in (
    ("prepare", prepare),
    ("reference", reference),
    ("train", train),
    ("denoise", denoise),
    ("evaluate", evaluate),
    ("render", render),
    ("report", report),
):
    app.command(name)(module.main)
app.command("summary")(summary.main)
BENCH_HELP = "Benchmarks: painting, fid, train-step, prepare, all (the GPU device script)."
app.add_typer(bench.app, name="bench", help=BENCH_HELP)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
