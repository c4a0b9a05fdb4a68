"""MLflow tracking: one run per stage execution, in one store for the whole repository.

The store defaults to `sqlite:///<repo root>/mlflow.db`, where the root is `DVC_ROOT` when DVC
runs the stage (also for queued experiments, which run in temporary copies) and otherwise the
nearest folder above the working directory holding `dvc.yaml`. `MLFLOW_TRACKING_URI` overrides.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from filelock import FileLock

from pipeline.config import flatten


def repo_root() -> Path:
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"])
    here = Path.cwd().resolve()
    return next((p for p in (here, *here.parents) if (p / "dvc.yaml").is_file()), here)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def finite_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Numbers only, and never NaN or infinity (MLflow and JSON metrics must stay valid)."""
    clean = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            clean[key] = float(value)
    return clean


def _ensure_experiment(mlflow, name: str, *, default_store: bool) -> None:
    """Select the experiment, creating it with artifacts beside the default store if needed.

    Without an explicit location a queued DVC experiment would keep its artifacts in its own
    temporary copy of the repository, and lose them.
    """
    if mlflow.get_experiment_by_name(name) is None:
        location = (repo_root() / "mlartifacts").as_uri() if default_store else None
        try:
            mlflow.create_experiment(name, artifact_location=location)
        except mlflow.exceptions.MlflowException:
            pass  # created meanwhile by a concurrent stage
    mlflow.set_experiment(name)


class StageRun:
    """Context manager around one MLflow run.

    A new run gets its params logged once (flattened to dotted keys); passing `run_id` continues
    an existing run (a resumed training) without logging params again. The run ends FINISHED,
    KILLED on Ctrl-C or SIGTERM (raised as KeyboardInterrupt), or FAILED on any other error.
    """

    def __init__(
        self,
        *,
        stage: str,
        experiment: str,
        params: dict[str, Any],
        run_id: str | None = None,
        tags: dict[str, str] | None = None,
    ):
        self.stage, self.experiment, self.params = stage, experiment, params
        self.run_id, self.tags = run_id, dict(tags or {})

    def __enter__(self) -> StageRun:
        logging.getLogger("alembic").setLevel(logging.WARNING)
        import mlflow

        self._mlflow = mlflow
        default_store = not os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(tracking_uri())  # this also sets MLFLOW_TRACKING_URI...
        if default_store:
            del os.environ["MLFLOW_TRACKING_URI"]  # ...which must not look like the user's choice
        # Queued experiments start stages at the same moment: the first one to touch a new
        # SQLite store creates its tables, and a second one doing so at once would fail.
        lock = FileLock(repo_root() / ".mlflow.db.lock") if default_store else nullcontext()
        with lock:
            run = self._start(mlflow, default_store)
        self.run_id = run.info.run_id
        return self

    def _start(self, mlflow, default_store: bool):
        if self.run_id is not None:
            return mlflow.start_run(run_id=self.run_id)
        _ensure_experiment(mlflow, self.experiment, default_store=default_store)
        dvc_exp = os.environ.get("DVC_EXP_NAME")
        tags = {"dvc.stage": self.stage, "git.commit": git_commit() or "unknown", **self.tags}
        if dvc_exp:
            tags["dvc.experiment"] = dvc_exp
        name = "-".join(
            filter(None, (self.stage, self.tags.get("fpa.run"), dvc_exp or "workspace"))
        )
        run = mlflow.start_run(run_name=name, tags=tags)
        items = [(k, str(v)) for k, v in flatten(self.params).items()]
        for i in range(0, len(items), 100):
            mlflow.log_params(dict(items[i : i + 100]))
        return run

    def last_step(self, key: str) -> int:
        """The highest step logged for `key` in this run (0 if none)."""
        history = self._mlflow.MlflowClient().get_metric_history(self.run_id, key)
        return max((m.step for m in history), default=0)

    def log_metrics(self, metrics: dict[str, Any], *, step: int | None = None) -> None:
        clean = finite_metrics(metrics)
        if clean:
            self._mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=folder)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        self._mlflow.end_run(status=status)
