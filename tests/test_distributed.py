"""Training under torchrun with 2 CPU processes (gloo, DDP) against one process with the same
global batch: the same gradients and losses, and only rank 0 writes outputs and MLflow."""

import sqlite3
import sys
from pathlib import Path

import torch
from tiny_project import REPO, make_project, sh

CHANGES = {"train": {"steps": 6, "batch_size": 4, "checkpoint_every": 3, "hflip": True}}


def test_gradients_of_two_processes_equal_one(tmp_path):
    script = str(Path(__file__).with_name("ddp_step.py"))
    sh(sys.executable, script, str(tmp_path), cwd=REPO)
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
    ]
    sh(*torchrun, script, str(tmp_path), cwd=REPO)
    one, two = torch.load(tmp_path / "grads_1.pt"), torch.load(tmp_path / "grads_2.pt")
    assert one.keys() == two.keys() and any(k.startswith("loss.gp") for k in one)
    # float32 sums in another order: within 1e-5 of the tensor's largest entry, plus 1e-7 of the
    # model's largest gradient (a tiny gradient carries the rounding of the large terms it sums)
    model_scale = {
        m: max(v.abs().max().item() for k, v in one.items() if k.startswith(m)) for m in "dg"
    }
    for name, value in one.items():
        scale = value.abs().max().item()
        slack = 1e-7 * model_scale.get(name[0], 0.0)  # losses: no slack
        atol = 1e-5 * scale + slack + 1e-12
        torch.testing.assert_close(two[name], value, rtol=0, atol=atol, msg=name)


def test_dvc_repro_with_two_processes_trains_like_one(tmp_path):
    single = make_project(tmp_path / "single", CHANGES)
    double = make_project(tmp_path / "double", {"train": {**CHANGES["train"], "processes": 2}})
    for root in (single, double):
        sh("dvc", "repro", "train", cwd=root)
    losses = [
        (root / "models/fpa/losses.csv").read_text().splitlines() for root in (single, double)
    ]
    for row_one, row_two in zip(*losses[0:2]):
        if row_one.startswith("step"):
            continue
        for a, b in zip(row_one.split(","), row_two.split(",")):
            assert (a == b == "") or abs(float(a) - float(b)) <= 1e-2 * abs(float(a)) + 1e-6
    # Weights agree to a few Adam steps: a gradient that is exactly 0 in one process can be a
    # rounding-sized 1e-8 in the other, and Adam scales that to a step of up to lr (2e-4).
    one, two = (
        torch.load(r / "models/fpa/generator.pt", weights_only=True)["state"]
        for r in (single, double)
    )
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, rtol=0, atol=6 * 2e-4, msg=name)
    db = sqlite3.connect(double / "mlflow.db")
    stages = db.execute("select value from tags where key = 'dvc.stage'").fetchall()
    assert sorted(stages) == [("prepare",), ("reference",), ("train",)], "one run for training"
    assert len(list((double / "checkpoints/train").glob("*/step_*.pt"))) == 2
