"""MLflow runs end in the right state, and nothing non-finite reaches MLflow or a metrics file."""

import json
import math

import pytest
from typer.testing import CliRunner

from pipeline.tracking import StageRun, finite_metrics
from stages.cli import app
from stages.common import write_json


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    import mlflow

    return mlflow.MlflowClient(uri)


@pytest.mark.parametrize(
    ("error", "status"),
    [(None, "FINISHED"), (RuntimeError, "FAILED"), (KeyboardInterrupt, "KILLED")],
)
def test_run_status_follows_how_the_stage_ended(store, error, status):
    with pytest.raises(error) if error else open(__file__):
        with StageRun(stage="train", experiment="t", params={"train": {"lr": 1.0}}) as run:
            run.log_metrics({"loss": 1.0, "bad": math.nan, "worse": math.inf}, step=1)
            if error:
                raise error
    stored = store.get_run(run.run_id)
    assert stored.info.status == status
    assert stored.data.metrics == {"loss": 1.0}
    assert stored.data.params == {"train.lr": "1.0"}
    assert stored.data.tags["dvc.stage"] == "train"


def test_resumed_run_continues_without_logging_params_again(store):
    with StageRun(stage="train", experiment="t", params={"a": 1}) as first:
        first.log_metrics({"loss": 1.0}, step=1)
    with StageRun(stage="train", experiment="t", params={"a": 2}, run_id=first.run_id) as again:
        again.log_metrics({"loss": 0.5}, step=2)
    history = store.get_metric_history(first.run_id, "loss")
    assert [m.step for m in history] == [1, 2]
    assert store.get_run(first.run_id).data.params == {"a": "1"}


def test_metrics_files_stay_valid_json(tmp_path):
    write_json(tmp_path / "m.json", {"fid": math.nan, "nested": {"x": math.inf}, "n": 3})
    assert json.loads((tmp_path / "m.json").read_text()) == {
        "fid": None,
        "nested": {"x": None},
        "n": 3,
    }
    assert finite_metrics({"a": 1, "b": math.nan, "c": "text", "d": True}) == {"a": 1.0}


def test_a_corrupt_model_file_is_one_sentence(store, tmp_path):
    (tmp_path / "params.yaml").write_text("{}\n")
    (tmp_path / "models/fpa").mkdir(parents=True)
    (tmp_path / "models/fpa/generator.pt").write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(app, ["render"])
    assert result.exit_code == 1
    assert "is not a generator file of this pipeline" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_crash_is_one_line_with_the_log_path(store, tmp_path):
    (tmp_path / "params.yaml").write_text("{}\n")
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "fpa.json").write_text("{}")  # a metrics file without the fields a table needs
    result = CliRunner().invoke(app, ["report", "--metrics", str(metrics)])
    assert result.exit_code == 1
    assert (
        "failed with KeyError" in result.output
        and "full trace in logs/report.log" in result.output
    )
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" in (tmp_path / "logs/report.log").read_text()
