"""What every stage command shares: params loading, logging, progress, and turning errors into
one sentence for the user (exit 1, no traceback) while the full trace goes to a log file."""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import math
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from pipeline.config import ParamsError

log = logging.getLogger("fpa")
LOG_DIR = Path("logs")

ParamsOption = typer.Option(Path("params.yaml"), "--params", help="Parameters file to read.")
VerboseOption = typer.Option(False, "--verbose", "-v", help="Log debug messages.")
VariantOption = typer.Option(
    None,
    "--variant",
    help="A name in params.yaml's table.variants, whose changes are written over --params.",
)


def run_tags(params: Path, variant: str | None = None) -> dict[str, str]:
    """MLflow tags that tell runs of the same stage apart: the params file read and the table
    variant; `fpa.run` (e.g. `tiny-emoji/fpa-v1`) also goes into the run's name."""
    tags = {"fpa.params_file": str(params)}
    if variant:
        tags["fpa.variant"] = variant
    if variant or Path(params).name != "params.yaml":
        tags["fpa.run"] = "/".join(filter(None, (Path(params).stem, variant)))
    return tags


class UserError(Exception):
    """A mistake the user can fix; its message is one sentence saying what and how."""


def user_errors() -> tuple[type[BaseException], ...]:
    from pipeline.data import DataError
    from pipeline.fid import FIDError
    from pipeline.generators import GeneratorKindError, ModelFileError
    from pipeline.report import EnteredFIDsError
    from pipeline.train import TrainingError

    return (
        UserError, ParamsError, DataError, FIDError, TrainingError, ModelFileError,
        GeneratorKindError, FileNotFoundError, EnteredFIDsError,
    )  # fmt: skip


def show_progress() -> bool:
    """Progress bars for people at a terminal; none under CI or when output is piped."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def _sigterm_as_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def _stop_with_parent() -> None:
    """Ask Linux for a SIGTERM when the parent dies, so that a stage never outlives a killed
    `dvc repro` (it then stops as on Ctrl-C: a training writes its checkpoint first)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _log_warnings(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
    """Warnings for people: one log line, without the source line Python would print."""
    logging.getLogger("fpa").warning("%s", message)


def stage_command(name: str) -> Callable:
    """Wrap a stage's main function: logging, SIGTERM handling and error reporting."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            logging.basicConfig(
                level=logging.DEBUG if kwargs.get("verbose") else logging.INFO,
                format="%(asctime)s %(name)s: %(message)s",
                datefmt="%H:%M:%S",
            )
            signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
            warnings.showwarning = _log_warnings
            _stop_with_parent()
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt:
                typer.secho(f"{name}: interrupted", err=True, fg="yellow")
                raise typer.Exit(130) from None
            except user_errors() as exc:
                typer.secho(f"{name}: {exc}", err=True, fg="red")
                raise typer.Exit(1) from None
            except Exception as exc:  # noqa: BLE001 - report, keep the trace in a file
                LOG_DIR.mkdir(exist_ok=True)
                path = LOG_DIR / f"{name.replace(' ', '-')}.log"
                path.write_text(traceback.format_exc())
                first_line = (str(exc).strip().splitlines() or [""])[0][:200]
                typer.secho(
                    f"{name}: failed with {type(exc).__name__}: {first_line} "
                    f"(full trace in {path})",
                    err=True,
                    fg="red",
                )
                raise typer.Exit(1) from None

        return wrapper

    return decorate


def _finite(value: Any) -> Any:
    """NaN and infinity become null: a metrics file must stay valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(data), indent=2, sort_keys=True, allow_nan=False) + "\n")
