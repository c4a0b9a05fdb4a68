"""End to end: the real stages through `dvc repro` in a temporary copy of the repository."""

import json
import sqlite3

import numpy as np
import pytest
import yaml
from tiny_project import make_project, sh, tool_env

STAGES = ["prepare", "reference", "train", "denoise", "evaluate", "render", "report"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("project"))
    env = tool_env()
    return root, env, sh("dvc", "repro", cwd=root, env=env)


def test_repro_writes_every_output(project):
    root, _, log = project
    for stage in STAGES:
        assert f"Running stage '{stage}'" in log
    metrics = {
        name: json.loads((root / "metrics" / f"{name}.json").read_text())
        for name in ("fpa_untrained", "fpa", "fpa_unet")
    }
    for record in metrics.values():
        assert record["fid"] >= 0 and record["n_fake"] == 12 and record["n_real"] == 24
        assert record["protocol"]["network_sha1"]
    manifest = json.loads((root / "data/prepared/manifest.json").read_text())
    assert manifest["n_kept"] == 30
    assert np.load(root / "data/prepared/images.npy").shape == (30, 16, 16, 3)
    assert (root / "reports/figures/rank_by_rank_0.png").is_file()
    assert (root / "reports/figures/samples_fpa_unet.png").is_file()
    table = (root / "reports/results.md").read_text()
    assert "FPA v2 + U-Net" in table and "(12 vs 24)" in table


def test_one_mlflow_run_per_stage_with_params_metrics_and_run_ids(project):
    root, _, _ = project
    db = sqlite3.connect(root / "mlflow.db")
    runs = db.execute(
        "select r.run_uuid, r.status, t.value from runs r join tags t on t.run_uuid = r.run_uuid"
        " where t.key = 'dvc.stage'"
    ).fetchall()
    assert sorted(stage for _, _, stage in runs) == sorted(STAGES)
    assert {status for _, status, _ in runs} == {"FINISHED"}
    by_stage = {stage: run for run, _, stage in runs}
    params = dict(
        db.execute(
            "select key, value from params where run_uuid = ?", (by_stage["train"],)
        ).fetchall()
    )
    assert params["train.batch_size"] == "4" and params["generator.lstm_hidden"] == "16"
    steps = db.execute(
        "select step from metrics where run_uuid = ? and key = 'd_loss' order by step",
        (by_stage["train"],),
    ).fetchall()
    assert [s for (s,) in steps] == [1, 2, 3, 4]
    commit = db.execute(
        "select value from tags where key = 'git.commit' and run_uuid = ?", (by_stage["train"],)
    ).fetchone()
    assert len(commit[0]) == 40
    assert (
        json.loads((root / "models/fpa/train.json").read_text())["mlflow_run_id"]
        == by_stage["train"]
    )
    assert (
        json.loads((root / "metrics/fpa.json").read_text())["mlflow_run_id"]
        == by_stage["evaluate"]
    )
    artifacts = list((root / "mlartifacts").rglob("samples_fpa.png"))
    assert artifacts, "figures are logged as MLflow artifacts"


def test_second_repro_runs_nothing_and_a_training_param_reruns_from_train(project):
    root, env, _ = project
    again = sh("dvc", "repro", cwd=root, env=env)
    assert "Running stage" not in again
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["lr"] = 1e-4
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = sh("dvc", "repro", cwd=root, env=env)
    ran = {stage for stage in STAGES if f"Running stage '{stage}'" in changed}
    assert ran == {"train", "denoise", "evaluate", "render", "report"}


def test_changed_training_code_trains_anew_instead_of_resuming(project):
    """DVC re-runs train when its code changes; a checkpoint of the old code must not be reused."""
    root, env, _ = project
    losses = root / "pipeline/losses.py"
    losses.write_text(losses.read_text() + "\n# a change to the training code\n")
    log = sh("dvc", "repro", "train", cwd=root, env=env)
    assert "Running stage 'train'" in log
    assert "resuming from step" not in log
    assert json.loads((root / "models/fpa/train.json").read_text())["resumed_at"] == 0


def test_changed_images_train_anew_instead_of_resuming(project):
    """New prepared images with the same params: the old images' checkpoint must not be reused."""
    root, env, _ = project
    first = sorted((root / "images").glob("*.png"))[0]
    first.unlink()
    sh("dvc", "repro", "-f", "prepare", cwd=root, env=env)  # as the README says for a folder
    log = sh("dvc", "repro", "train", cwd=root, env=env)
    assert "Running stage 'train'" in log
    assert "resuming from step" not in log
    assert json.loads((root / "models/fpa/train.json").read_text())["resumed_at"] == 0
