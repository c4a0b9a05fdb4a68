"""Two DVC experiments run at once from the queue: both finish, both land in one MLflow store."""

import sqlite3
import time

from tiny_project import make_project, sh

STAGES = {"prepare", "reference", "train", "denoise", "evaluate", "render", "report"}


def test_two_queued_experiments_run_concurrently_into_one_store(tmp_path):
    root = make_project(tmp_path)
    for name, lr in (("exp-a", "1e-4"), ("exp-b", "3e-4")):
        sh("dvc", "exp", "run", "--queue", "-n", name, "-S", f"train.lr={lr}", cwd=root)
    sh("dvc", "queue", "start", "-j", "2", cwd=root)
    deadline = time.time() + 900
    while time.time() < deadline:
        status = sh("dvc", "queue", "status", cwd=root)
        if "Running" not in status and "Queued" not in status:
            break
        time.sleep(5)
    assert status.count("Success") == 2, status

    db = sqlite3.connect(root / "mlflow.db")
    rows = db.execute(
        "select e.value, s.value, r.status from runs r"
        " join tags e on e.run_uuid = r.run_uuid and e.key = 'dvc.experiment'"
        " join tags s on s.run_uuid = r.run_uuid and s.key = 'dvc.stage'"
    ).fetchall()
    for name in ("exp-a", "exp-b"):
        assert {stage for exp, stage, _ in rows if exp == name} == STAGES, rows
    assert {status for _, _, status in rows} == {"FINISHED"}
    lrs = db.execute(
        "select t.value, p.value from params p join tags t on t.run_uuid = p.run_uuid"
        " where p.key = 'train.lr' and t.key = 'dvc.experiment'"
    ).fetchall()
    assert sorted(set(lrs)) == [("exp-a", "0.0001"), ("exp-b", "0.0003")]
    shown = sh("dvc", "exp", "show", "--csv", cwd=root)
    assert "exp-a" in shown and "exp-b" in shown
