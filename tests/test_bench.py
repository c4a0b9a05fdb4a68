"""`fpa bench`: each benchmark runs on tiny shapes and prints its JSON keys (no timing asserts)."""

import json

import numpy as np
import yaml
from PIL import Image
from tiny_project import TINY
from typer.testing import CliRunner

from stages.cli import app

runner = CliRunner()


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_bench_painting_reports_speed_memory_and_error():
    args = ["bench", "painting", "--batch", "2", "--dim", "8", "--steps", "8", "--repeats", "2"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = last_json(result.output)
    for key in (
        "loop_ms",
        "parallel_ms",
        "speedup",
        "loop_mem_mb",
        "parallel_mem_mb",
        "mem_ratio",
    ):
        assert report[key] > 0
    assert report["max_rel_err"] < 1e-5
    assert report["mem_ratio"] > 1, "the loop keeps every intermediate W for backward"


def test_bench_train_step_splits_the_step(tmp_path):
    params = tmp_path / "params.yaml"
    tiny = {**{k: v for k, v in TINY.items() if k != "data"}, "data": {"image_size": 16}}
    params.write_text(yaml.safe_dump(tiny))
    result = runner.invoke(
        app, ["bench", "train-step", "--params", str(params), "--repeats", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = last_json(result.output)
    assert {"img_s", "g_ms", "d_ms", "gp_ms"} <= set(report)
    assert report["img_s"] > 0 and report["d_ms"] > 0 and report["g_ms"] > 0


def test_bench_prepare_compares_all_cores_with_one(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.full((20, 20, 3), i * 40, np.uint8)).save(folder / f"{i}.png")
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"data": {"source": "folder", "path": str(folder), "image_size": 16}})
    )
    result = runner.invoke(
        app, ["bench", "prepare", "--params", str(params), "--repeats", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = last_json(result.output)
    assert report["images"] == 6 and {"img_s", "img_s_one_core", "ratio"} <= set(report)


def test_bench_fid_matches_cleanfid(tmp_path):
    from pipeline.data import PreparedData, save_prepared

    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), np.uint8)
    save_prepared(PreparedData(images=images, manifest={}), tmp_path / "prepared")
    args = ["bench", "fid", "--data", str(tmp_path / "prepared"), "--n", "6", "--repeats", "1"]
    result = runner.invoke(app, [*args, "--batch-size", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = last_json(result.output)
    assert {"ours_img_s", "cleanfid_img_s", "ratio", "fid_ours", "fid_cleanfid"} <= set(report)
    assert report["fid_rel_diff"] < 1e-4


def test_bench_prepare_on_generated_photos(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"image_size": 16}}))
    args = ["bench", "prepare", "--params", str(params), "--photos", "8", "--repeats", "1"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = last_json(result.output)
    assert (report["source"], report["images"]) == ("folder", 8)
