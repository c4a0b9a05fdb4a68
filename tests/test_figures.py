"""Figures: the painting GIF, latent interpolations, rank-by-rank figures that stay legible at
T = 64, and the render stage for a painter (colour or grey, with its U-Net) and the baseline."""

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageSequence
from typer.testing import CliRunner

from pipeline.config import GeneratorConfig
from pipeline.figures import (
    interpolation_images,
    painting_frames,
    painting_steps,
    rank_by_rank,
    save_gif,
    shown_steps,
    slerp,
    to_display,
)
from pipeline.generators import build_generator, save_generator
from stages.cli import app

LATENT = 8
SPAN = (-1.0, 1.0)


def tiny_painter(*, steps=4, channels=3, size=8):
    cfg = GeneratorConfig(latent_dim=LATENT, chunk_proj_dim=4, lstm_hidden=8, steps=steps)
    return build_generator(cfg.spec(image_size=size, channels=channels)).eval()


def tiny_baseline(*, channels=3, size=16):
    cfg = GeneratorConfig(kind="base", latent_dim=LATENT, fmap_max=16, fmap_inverse_coef=8)
    return build_generator(cfg.spec(image_size=size, channels=channels)).eval()


def as_uint8(images):
    """(N, C, d, d) generator images -> (N, d, d, 3) uint8, as a figure shows them."""
    display = to_display(images, SPAN).expand(-1, 3, -1, -1)
    return (display * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("channels", [1, 3])
def test_painting_gif_has_one_frame_per_step_ending_on_the_images(tmp_path, channels):
    steps, size, scale = 5, 8, 2
    painter = tiny_painter(steps=steps, channels=channels, size=size)
    z = torch.randn(3, LATENT, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "painting.gif"
    save_gif(painting_frames(painter, z, SPAN), path, scale=scale, frame_ms=80, hold_ms=900)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == steps and gif.info["loop"] == 0
        frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(gif)]
        gif.seek(steps - 1)
        assert gif.info["duration"] == 900  # the final image is held longer
    width, height = (3 * (size + 1) + 1) * scale, (size + 2) * scale
    assert all(frame.size == (width, height) for frame in frames)
    last = np.asarray(frames[-1])[::scale, ::scale]  # undo the nearest-neighbour enlargement
    tiles = [last[1 : 1 + size, 1 + i * (size + 1) : 1 + i * (size + 1) + size] for i in range(3)]
    with torch.no_grad():
        expected = as_uint8(painter(z))
    np.testing.assert_allclose(np.stack(tiles), expected, atol=1)


def test_rank_by_rank_at_64_steps_draws_max_columns_evenly_spaced_steps_ending_at_t():
    assert shown_steps(64, 16) == list(range(4, 65, 4))
    assert shown_steps(16, 16) == list(range(1, 17))  # drawn in full
    uneven = shown_steps(20, 16)
    assert len(set(uneven)) == 16 and uneven[-1] == 20 and uneven == sorted(uneven)

    size = 8
    painter = tiny_painter(steps=64, size=size)
    z = torch.randn(LATENT)
    grid = rank_by_rank(painter, z, SPAN, max_columns=16)
    assert grid.shape == (3, 2 * (size + 1) + 1, 16 * (size + 1) + 1)

    def bottom_tile(column):
        left = 1 + column * (size + 1)
        return grid[:, size + 2 : 2 * size + 2, left : left + size]

    with torch.no_grad():
        image = (painter(z[None])[0] + 1) / 2
    torch.testing.assert_close(bottom_tile(15), image)  # the last column is the image itself
    _, partial = painting_steps(painter, z[None])
    torch.testing.assert_close(bottom_tile(2), (partial[0, 11] + 1) / 2)  # the third is t = 12


def test_sixteen_steps_are_drawn_in_full():
    grid = rank_by_rank(tiny_painter(steps=16), torch.randn(LATENT), SPAN, max_columns=16)
    assert grid.shape[-1] == 16 * 9 + 1


def test_slerp_keeps_the_ends_and_follows_the_great_circle():
    start, end = torch.eye(2)[None, 0], torch.eye(2)[None, 1]  # orthogonal unit vectors
    path = slerp(start, end, torch.linspace(0, 1, 5))
    assert path.shape == (1, 5, 2)
    torch.testing.assert_close(path.norm(dim=-1), torch.ones(1, 5))
    torch.testing.assert_close(path[0, 2], torch.tensor([0.5, 0.5]).sqrt())
    same = slerp(start, start, torch.linspace(0, 1, 3))  # parallel: no division by sin(0)
    torch.testing.assert_close(same, start[:, None].expand(1, 3, 2))


@pytest.mark.parametrize("make", [tiny_painter, tiny_baseline], ids=["painter", "baseline"])
def test_interpolation_ends_on_the_generators_images_at_both_latents(make):
    generator = make()
    start, end = torch.randn(2, 3, LATENT, generator=torch.Generator().manual_seed(1))
    images = interpolation_images(generator, start, end, steps=6)
    assert images.shape[:2] == (3, 6)
    with torch.no_grad():
        torch.testing.assert_close(images[:, 0], generator(start))
        torch.testing.assert_close(images[:, -1], generator(end))
    assert not torch.allclose(images[:, 1], images[:, 0])


@pytest.fixture
def render(tmp_path, monkeypatch):
    """Run the render stage's command in tmp_path with a tiny params file and its own MLflow
    store; returns the written files and the artifacts logged, by name."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    params = {
        "train": {"real_range": "symmetric"},
        "render": {"n_latents": 2, "grid_size": 2, "interpolation_steps": 3},
        "tracking": {"experiment": "figures"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    def run(*options):
        result = CliRunner().invoke(app, ["render", "--out", "figures", *options])
        assert result.exit_code == 0, result.output
        import mlflow

        client = mlflow.MlflowClient()
        [experiment] = [e for e in client.search_experiments() if e.name == "figures"]
        [last] = client.search_runs([experiment.experiment_id], max_results=1)
        logged = {a.path for a in client.list_artifacts(last.info.run_id, "figures")}
        written = {p.name for p in (tmp_path / "figures").iterdir()}
        return written, {path.removeprefix("figures/") for path in logged}

    return run


def test_render_draws_a_grey_painter_and_its_unet(tmp_path, render):
    painter = tiny_painter(channels=1, size=16)
    save_generator(tmp_path / "fpa.pt", painter)
    unet_spec = {"kind": "fpa+unet", "painter": painter.spec, "unet": {"base_channels": 4}}
    save_generator(tmp_path / "unet.pt", build_generator(unet_spec))
    written, logged = render("--painter", "fpa.pt", "--denoiser", "unet.pt")
    assert written == logged == {
        "rank_by_rank_0.png", "rank_by_rank_1.png", "painting.gif",
        "samples_fpa.png", "interpolation_fpa.png",
        "samples_fpa_unet.png", "interpolation_fpa_unet.png",
    }  # fmt: skip
    with Image.open(tmp_path / "figures/painting.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (4 * (2 * 17 + 1), 4 * 18)
    with Image.open(tmp_path / "figures/interpolation_fpa.png") as grid:
        assert grid.size == (4 * (3 * 17 + 1), 4 * (3 * 17 + 1))  # 3 pairs x 3 steps


@pytest.mark.parametrize("denoiser", [[], ["--denoiser", ""]], ids=["absent", "empty"])
def test_render_draws_the_baseline_without_painting_figures(tmp_path, render, denoiser):
    save_generator(tmp_path / "base.pt", tiny_baseline())
    written, logged = render("--painter", "base.pt", *denoiser)
    assert written == logged == {"samples_base.png", "interpolation_base.png"}
