"""Interrupted training: SIGKILL at arbitrary points, SIGTERM, and `dvc repro` resuming to
weights bit-for-bit identical to an uninterrupted run, in one continued MLflow run."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch
from tiny_project import make_project, sh, tool_env, write_params

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


FID_STEPS = 20
FID_CHANGES = {
    "train": {"steps": FID_STEPS, "checkpoint_every": 5, "fid_every": 5, "fid_samples": 6}
}


def generator_file(path):
    """A generator file's content, less the MLflow run id (each project has its own run)."""
    payload = torch.load(path, weights_only=True)
    del payload["meta"]["mlflow_run_id"]
    return payload


def assert_same_file(a, b):
    assert a.keys() == b.keys() and a["spec"] == b["spec"]
    for part in ("state", "meta"):
        for key in a[part].keys() | b[part].keys():
            x, y = a[part][key], b[part][key]
            if isinstance(x, dict):
                assert x.keys() == y.keys(), key
                assert all(torch.equal(x[k], y[k]) for k in x), key
            else:
                assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y, key


def fid_outputs(root):
    summary = json.loads((root / "models/fpa/train.json").read_text())
    return (
        summary,
        generator_file(root / "models/fpa/generator.pt"),
        generator_file(root / summary["best_file"]),
    )


@pytest.fixture(scope="module")
def uninterrupted_fid(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("straight_fid"), FID_CHANGES)
    sh("dvc", "repro", "train", cwd=root)
    return root, fid_outputs(root)


def test_training_time_fid_keeps_the_best_through_sigkill_and_resume(tmp_path, uninterrupted_fid):
    straight_root, (summary, generator, best) = uninterrupted_fid
    assert summary["selected"] == "best" and summary["best_step"] in (5, 10, 15, 20)
    assert summary["fid_protocol"]["n_fake"] == 6 and summary["fid_protocol"]["n_real"] == 24
    assert_same_file(generator, best)
    runs, db = train_runs(straight_root)
    fids = db.execute(
        "select step, value from metrics where run_uuid = ? and key = 'fid_train' order by step",
        (runs[0][0],),
    ).fetchall()
    assert [step for step, _ in fids] == [5, 10, 15, 20]
    assert summary["best_step"] == min(fids, key=lambda row: row[1])[0]
    assert summary["best_fid"] == pytest.approx(min(value for _, value in fids), abs=1e-4)

    root = make_project(tmp_path, FID_CHANGES)
    sh("dvc", "repro", "reference", cwd=root)
    process = start_training(root)
    wait_for_checkpoint(root, process, 10)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpoint_steps(root)[-1] < FID_STEPS, "killed too late to test anything"
    assert "Running stage 'reference'" not in sh("dvc", "repro", "train", cwd=root)

    resumed_summary, resumed_generator, resumed_best = fid_outputs(root)
    for key in ("selected", "best_step", "best_fid"):
        assert resumed_summary[key] == summary[key], key
    assert_same_file(resumed_generator, generator)
    assert_same_file(resumed_best, best)
    runs, db = train_runs(root)
    steps = db.execute(
        "select step from metrics where run_uuid = ? and key = 'fid_train' order by step",
        (runs[0][0],),
    ).fetchall()
    assert [s for (s,) in steps] == [5, 10, 15, 20], "each FID logged once"

    write_params(root, {"train": {"fid_samples": 7}})
    dry = sh("dvc", "repro", "--dry", "train", cwd=root)
    assert "Running stage 'train'" in dry
    assert "Running stage 'prepare'" not in dry and "Running stage 'reference'" not in dry
