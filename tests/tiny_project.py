"""Shared test helpers: a tiny real project (code copy, generated images, tiny params)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from pipeline.config import merged

REPO = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
TINY = {
    "data": {"source": "folder", "path": "images", "categories": None, "image_size": 16},
    "fid": {"n_real": 24, "n_fake": 12, "batch_size": 12},
    "generator": {"latent_dim": 8, "chunk_proj_dim": 8, "lstm_hidden": 16, "steps": 4},
    "discriminator": {"fmap_max": 8, "aux_channels": 8, "decoder_rounds": 1},
    "train": {
        "steps": 4, "batch_size": 4, "ema_start": 1, "ema_reset_until": 1,
        "checkpoint_every": 2, "log_every": 1,
    },
    "unet": {"base_channels": 4, "levels": 1, "steps": 2},
    "render": {"n_latents": 1, "grid_size": 2},
}  # fmt: skip


def write_params(root: Path, changes: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(merged(params, changes), sort_keys=False))


def tool_env() -> dict[str, str]:
    """This interpreter's tools first on PATH; no MLflow or DVC settings leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def sh(*args, cwd: Path, env: dict | None = None, timeout: int = 900) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env or tool_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def make_project(root: Path, changes: dict | None = None) -> Path:
    """Copy the code (tracked and new files, no tests), add 30 images, tiny params, git init."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    for name in listed.stdout.splitlines():
        if name.startswith("tests/") or not (REPO / name).is_file():
            continue
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):  # coloured squares on white: a small, learnable image folder
        array = np.full((24, 24, 3), 255, np.uint8)
        top, left = rng.integers(0, 12, 2)
        array[top : top + 10, left : left + 10] = rng.integers(0, 256, 3)
        Image.fromarray(array).save(images / f"{i:03d}.png")
    write_params(root, merged(TINY, changes or {}))
    sh("git", "init", "-q", cwd=root)
    sh(*GIT, "add", "-A", cwd=root)
    sh(*GIT, "commit", "-qm", "tiny project", cwd=root)
    return root
