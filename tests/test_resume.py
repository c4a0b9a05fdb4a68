"""Interrupted training: SIGKILL at arbitrary points, SIGTERM, and `dvc repro` resuming to
weights bit-for-bit identical to an uninterrupted run, in one continued MLflow run."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch
from tiny_project import make_project, sh, tool_env

STEPS = 60
CHANGES = {"train": {"steps": STEPS, "checkpoint_every": 5}}


def final_weights(root):
    return torch.load(root / "models/fpa/generator.pt", weights_only=True)["state"]


def checkpoint_steps(root):
    return sorted(int(p.stem.split("_")[1]) for p in root.glob("checkpoints/train/*/step_*.pt"))


def train_runs(root):
    db = sqlite3.connect(root / "mlflow.db")
    return db.execute(
        "select r.run_uuid, r.status from runs r join tags t on t.run_uuid = r.run_uuid"
        " where t.key = 'dvc.stage' and t.value = 'train'"
    ).fetchall(), db


def start_training(root):
    return subprocess.Popen(
        ["dvc", "repro", "train"], cwd=root, env=tool_env(), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def wait_for_checkpoint(root, process, at_least):
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if checkpoint_steps(root) and checkpoint_steps(root)[-1] >= at_least:
            return
        time.sleep(0.01)
    pytest.fail(f"no checkpoint >= {at_least} appeared:\n{process.communicate()[0]}")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("straight"), CHANGES)
    sh("dvc", "repro", "train", cwd=root)
    return final_weights(root)


def assert_identical(root, reference):
    resumed = final_weights(root)
    for name, tensor in reference.items():
        assert torch.equal(tensor, resumed[name]), name


@pytest.mark.parametrize("kill_after", [5, 25, 45])
def test_sigkill_then_dvc_repro_resumes_bit_identically(tmp_path, uninterrupted, kill_after):
    root = make_project(tmp_path, CHANGES)
    sh("dvc", "repro", "prepare", cwd=root)
    process = start_training(root)
    wait_for_checkpoint(root, process, kill_after)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpoint_steps(root)[-1] < STEPS, "killed too late to test anything"

    log = sh("dvc", "repro", "train", cwd=root)
    assert "resuming from step" in log
    assert_identical(root, uninterrupted)
    runs, db = train_runs(root)
    assert [status for _, status in runs] == ["FINISHED"], "the resumed run continues the same run"
    steps = db.execute(
        "select step from metrics where run_uuid = ? and key = 'g_loss' order by step",
        (runs[0][0],),
    ).fetchall()
    assert [s for (s,) in steps] == list(range(1, STEPS + 1)), "no repeated or missing steps"


def test_sigterm_writes_a_checkpoint_and_marks_the_run_killed(tmp_path, uninterrupted):
    root = make_project(tmp_path, CHANGES)
    sh("dvc", "repro", "prepare", cwd=root)
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=root, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    wait_for_checkpoint(root, process, 5)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output
    runs, _ = train_runs(root)
    assert [status for _, status in runs] == ["KILLED"]
    assert checkpoint_steps(root)[-1] < STEPS

    sh("dvc", "repro", "train", cwd=root)
    assert_identical(root, uninterrupted)
    runs, _ = train_runs(root)
    assert [status for _, status in runs] == ["FINISHED"]
