"""Tests for pipeline.data and pipeline.sources (no network: npm and apt-get never run; every
fixture, the fake packages included, is generated here)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import stat
import sys
from dataclasses import replace
from pathlib import Path

import fixtures_images as fx
import numpy as np
import pytest
from PIL import Image

from pipeline import data, sources
from pipeline.data import DataError, PreparedData, load_images, prepare, save_prepared

SIZE = fx.CORPUS_IMAGE_SIZE


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def prepared(corpus: Path) -> PreparedData:
    return prepare(
        source="folder",
        path=str(corpus),
        image_size=SIZE,
        workers=1,
        max_pixels=fx.CORPUS_MAX_PIXELS,
    )


def pixel_of(result: PreparedData, name: str) -> np.ndarray:
    return result.images[result.manifest["kept"].index(name)].astype(int)


def assert_close(actual: np.ndarray, expected: tuple[int, ...], tol: int) -> None:
    diff = np.abs(actual.astype(int) - np.asarray(expected, dtype=int))
    assert diff.max() <= tol, f"{actual.reshape(-1, actual.shape[-1])[:2]} vs {expected}"


# Folder listing --------------------------------------------------------------------------------


def test_listing_is_recursive_sorted_case_insensitive_and_skips_hidden(corpus: Path) -> None:
    listed = data.list_image_files(corpus)
    assert listed == sorted(fx.CORPUS_KEPT + list(fx.CORPUS_SKIPPED))
    for name in ("upper.JPG", "upper.PNG", "upper.JPEG"):
        assert listed.count(name) == 1
    assert not any(part.startswith(".") for name in listed for part in name.split("/"))
    assert not any(
        name.startswith("__MACOSX") or name.endswith((".gif", ".txt")) for name in listed
    )


# Folder corpus outcomes --------------------------------------------------------------------------


def test_corpus_counts_and_manifest(prepared: PreparedData, corpus: Path) -> None:
    m = prepared.manifest
    assert prepared.images.dtype == np.uint8
    assert prepared.images.shape == (len(fx.CORPUS_KEPT), SIZE, SIZE, 3)
    assert m["source"] == "folder" and m["path"] == str(corpus)
    assert m["image_size"] == SIZE and m["channels"] == 3 and m["background"] == [255, 255, 255]
    assert m["kept"] == fx.CORPUS_KEPT
    assert m["n_found"] == len(fx.CORPUS_KEPT) + len(fx.CORPUS_SKIPPED)
    assert m["n_kept"] == len(fx.CORPUS_KEPT)
    assert m["n_skipped"] == len(fx.CORPUS_SKIPPED)
    assert {s["file"]: s["reason"] for s in m["skipped"]} == fx.CORPUS_SKIPPED
    assert [s["file"] for s in m["skipped"]] == sorted(fx.CORPUS_SKIPPED)
    assert m["summary"] == {reason: 1 for reason in fx.CORPUS_SKIPPED.values()}
    assert m["n_upscaled"] == len(fx.CORPUS_UPSCALED)
    assert m["n_converted"] == len(fx.CORPUS_CONVERTED)
    counts = [m[key] for key in ("n_found", "n_kept", "n_skipped", "n_upscaled", "n_converted")]
    assert counts == [18, 14, 4, 1, 5]
    huge = next(s for s in m["skipped"] if s["file"] == "huge.png")
    assert "100x100" in huge["detail"] and str(fx.CORPUS_MAX_PIXELS) in huge["detail"]
    json.dumps(m)  # serialisable as is


def test_plain_rgb_and_upper_case_extensions(prepared: PreparedData) -> None:
    assert_close(pixel_of(prepared, "rgb.png"), (10, 200, 30), 0)
    assert_close(pixel_of(prepared, "upper.PNG"), (30, 10, 200), 0)
    assert_close(pixel_of(prepared, "upper.JPG"), (200, 10, 30), 4)
    assert_close(pixel_of(prepared, "upper.JPEG"), (120, 120, 10), 4)
    assert_close(pixel_of(prepared, "nested/deeper/plain.bmp"), (7, 8, 9), 0)


def test_cmyk_jpeg_comes_out_red_not_cyan(prepared: PreparedData) -> None:
    r, g, b = pixel_of(prepared, "cmyk.jpg").reshape(-1, 3).mean(axis=0)
    assert r > 240 and g < 15 and b < 15


def test_16_bit_greyscale_is_scaled_not_clipped(prepared: PreparedData) -> None:
    assert_close(pixel_of(prepared, "grey16.png"), (128, 128, 128), 0)


def test_grey_alpha_composited_on_white(prepared: PreparedData) -> None:
    # black with alpha 128 over white: 255 * (255 - 128) / 255 = 127
    assert_close(pixel_of(prepared, "grey_alpha.png"), (127, 127, 127), 1)


def test_palette_transparency_composited(prepared: PreparedData) -> None:
    img = pixel_of(prepared, "palette_trns.png")
    assert_close(img[:4], fx.RED, 0)  # opaque top half
    assert_close(img[-4:], fx.WHITE, 0)  # transparent bottom half shows the background


def test_rgba_composited_on_background(prepared: PreparedData) -> None:
    assert_close(pixel_of(prepared, "rgba.png"), fx.WHITE, 0)


def test_non_square_images_are_centre_cropped(prepared: PreparedData) -> None:
    # 48x16 (red|green|blue): short side already 16, so this is a pure crop.
    assert_close(pixel_of(prepared, "wide.png"), fx.GREEN, 0)
    # 32x96 stacked red/green/blue: resized to 16x48, the middle third is green.
    tall = pixel_of(prepared, "tall.png")
    assert_close(tall[4:12], fx.GREEN, 0)
    assert_close(tall.reshape(-1, 3).mean(axis=0).round(), fx.GREEN, 12)


def test_small_image_upscaled(prepared: PreparedData) -> None:
    assert_close(pixel_of(prepared, "small.png"), (50, 100, 150), 0)


def test_resize_matches_pil_short_side_then_centre_crop(prepared: PreparedData, corpus) -> None:
    with Image.open(corpus / "nested" / "photo.webp") as img:  # 40x20 noise
        img = img.convert("RGB")
    resized = img.resize((32, SIZE), data.RESAMPLE)  # short side 20 -> 16, long side 40 -> 32
    expected = np.asarray(resized.crop((8, 0, 8 + SIZE, SIZE)))
    np.testing.assert_array_equal(pixel_of(prepared, "nested/photo.webp"), expected)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_workers_do_not_change_the_result(
    prepared: PreparedData, corpus: Path, start_method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if start_method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{start_method} is not available on this platform")
    monkeypatch.setattr(data, "MP_START_METHOD", start_method)
    parallel = prepare(
        source="folder",
        path=str(corpus),
        image_size=SIZE,
        workers=2,
        max_pixels=fx.CORPUS_MAX_PIXELS,
    )
    np.testing.assert_array_equal(parallel.images, prepared.images)
    assert parallel.manifest == prepared.manifest


def test_greyscale_output(corpus: Path) -> None:
    result = prepare(
        source="folder", path=corpus, image_size=SIZE, channels=1, workers=1, max_pixels=5000
    )
    assert result.images.shape == (len(fx.CORPUS_KEPT), SIZE, SIZE, 1)
    assert_close(pixel_of(result, "grey16.png"), (128,), 0)
    assert_close(pixel_of(result, "rgb.png"), (124,), 0)  # ITU-R 601 luma of (10, 200, 30)
    assert_close(pixel_of(result, "rgba.png"), (255,), 0)
    # Every corpus image is colour or 16-bit, so each one needed a mode conversion.
    assert result.manifest["n_converted"] == len(fx.CORPUS_KEPT)


def test_custom_background(corpus: Path) -> None:
    result = prepare(
        source="folder",
        path=corpus,
        image_size=SIZE,
        background=(0, 128, 0),
        workers=1,
        max_pixels=fx.CORPUS_MAX_PIXELS,
    )
    assert result.manifest["background"] == [0, 128, 0]
    assert_close(pixel_of(result, "rgba.png"), (0, 128, 0), 0)
    assert_close(pixel_of(result, "palette_trns.png")[-4:], (0, 128, 0), 0)
    assert_close(pixel_of(result, "grey_alpha.png"), (0, 64, 0), 1)
    assert_close(pixel_of(result, "rgb.png"), (10, 200, 30), 0)  # opaque images unaffected


def test_max_images_keeps_the_first_usable_ones(corpus: Path) -> None:
    result = prepare(
        source="folder", path=corpus, image_size=SIZE, max_images=3, workers=2, max_pixels=5000
    )
    assert result.manifest["kept"] == fx.CORPUS_KEPT[:3]
    assert result.images.shape[0] == 3
    assert [s["file"] for s in result.manifest["skipped"]] == ["empty.png"]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (16, 16), fx.RED)
    img.paste(fx.GREEN, (8, 0, 16, 16))  # stored: red left, green right
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: red on top
    img.save(tmp_path / "rotated.png", exif=exif)
    result = prepare(source="folder", path=tmp_path, image_size=16, workers=1)
    out = result.images[0].astype(int)
    assert_close(out[:6], fx.RED, 0)
    assert_close(out[-6:], fx.GREEN, 0)


# Errors -----------------------------------------------------------------------------------------


def test_too_many_skipped_is_an_error_with_counts(tmp_path: Path) -> None:
    fx.save(fx.solid("RGB", (8, 8), fx.RED), tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "c.jpg").write_bytes(fx.truncated_jpeg_bytes())
    with pytest.raises(DataError, match=r"2 of 3 images .* were skipped") as info:
        prepare(source="folder", path=tmp_path, image_size=8, workers=1)
    assert "max_skipped_fraction" in str(info.value)
    ok = prepare(source="folder", path=tmp_path, image_size=8, workers=1, max_skipped_fraction=0.7)
    assert ok.manifest["n_kept"] == 1 and ok.manifest["n_skipped"] == 2


def test_skipped_fraction_at_the_limit_is_allowed(tmp_path: Path) -> None:
    fx.save(fx.solid("RGB", (8, 8), fx.RED), tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"")
    result = prepare(
        source="folder", path=tmp_path, image_size=8, max_skipped_fraction=0.5, workers=1
    )
    assert result.manifest["summary"] == {"empty file": 1}


def test_empty_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    fx.save(fx.solid("RGB", (8, 8), fx.RED), tmp_path / ".hidden" / "a.png")
    with pytest.raises(DataError, match="No image files") as info:
        prepare(source="folder", path=str(tmp_path), image_size=8)
    assert str(tmp_path) in str(info.value)


def test_folder_with_no_readable_image_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_text("nope")
    with pytest.raises(DataError, match="No readable image") as info:
        prepare(source="folder", path=tmp_path, image_size=8, max_skipped_fraction=1.0, workers=1)
    assert str(tmp_path) in str(info.value) and "not a decodable image" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "lsun"}, "Unknown data source 'lsun'"),
        ({"path": "/nonexistent/dir"}, "does not exist"),
        ({"path": None}, "needs a path"),
        ({"channels": 4}, "channels must be 1"),
        ({"image_size": 0}, "image_size must be a positive"),
        ({"background": (0, 0)}, "background must be three integers"),
        ({"background": (0, 0, 256)}, "background must be three integers"),
        ({"workers": 0}, "workers must be"),
        ({"max_skipped_fraction": 1.5}, "max_skipped_fraction must lie"),
        ({"categories": ["Flags"]}, "categories only apply"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"source": "folder", "path": str(tmp_path), "image_size": 8} | kwargs
    with pytest.raises(DataError, match=message):
        prepare(**args)


def test_path_that_is_a_file(tmp_path: Path) -> None:
    file = fx.save(fx.solid("RGB", (8, 8), fx.RED), tmp_path / "a.png")
    with pytest.raises(DataError, match="is not a directory"):
        prepare(source="folder", path=file, image_size=8)


# Save / load ------------------------------------------------------------------------------------


def test_save_and_load_round_trip(prepared: PreparedData, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    save_prepared(prepared, out)
    assert sorted(p.name for p in out.iterdir()) == ["images.npy", "manifest.json"]
    loaded = load_images(out)
    assert isinstance(loaded, np.memmap) and not loaded.flags.writeable
    np.testing.assert_array_equal(loaded, prepared.images)
    assert json.loads((out / "manifest.json").read_text()) == prepared.manifest
    assert data.load_manifest(out) == prepared.manifest
    assert np.load(out / "images.npy").dtype == np.uint8


def test_load_images_missing_tells_to_run_prepare(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run the prepare stage"):
        load_images(tmp_path / "nothing")


# Built-in sources: fakes of the pinned packages; npm and apt-get never run -----------------------

GOOGLE = sources.EMOJI_SETS["emoji"]
TWITTER = sources.EMOJI_SETS["emoji-twitter"]


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError(f"nothing may be downloaded in tests: {args}")

    monkeypatch.setattr(sources.subprocess, "run", forbidden)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pin(monkeypatch: pytest.MonkeyPatch, source: str, sha256: str) -> sources.Package:
    """Make a built-in source expect ``sha256`` (the hash of a fake file); return its package."""
    if source in sources.EMOJI_SETS:
        emoji_set = sources.EMOJI_SETS[source]
        package = replace(emoji_set.package, sha256=sha256)
        monkeypatch.setitem(sources.EMOJI_SETS, source, replace(emoji_set, package=package))
    else:
        package = replace(sources.FASHION_MNIST.package, sha256=sha256)
        monkeypatch.setattr(
            sources, "FASHION_MNIST", replace(sources.FASHION_MNIST, package=package)
        )
    return package


def assert_one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith(".") and ". " not in message, message


@pytest.fixture
def emoji_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_download) -> Path:
    cache = tmp_path / "cache"
    tarball = fx.make_fake_emoji_tarball(cache / GOOGLE.package.file_name)
    pin(monkeypatch, "emoji", sha256_of(tarball))
    return cache


def test_the_pinned_packages() -> None:
    assert GOOGLE.package.spec == "emoji-datasource-google@16.0.0"
    assert GOOGLE.package.file_name == "emoji-datasource-google-16.0.0.tgz"
    assert TWITTER.package.spec == "emoji-datasource-twitter@16.0.0"
    assert TWITTER.package.file_name == "emoji-datasource-twitter-16.0.0.tgz"
    fashion = sources.FASHION_MNIST.package
    assert fashion.spec == "dataset-fashion-mnist=0.0~git20200523.55506a9-1"
    assert fashion.file_name == "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb"
    assert fashion.command == "apt-get download dataset-fashion-mnist=0.0~git20200523.55506a9-1"
    assert (GOOGLE.package.licence, TWITTER.package.licence, fashion.licence) == (
        "Apache-2.0",
        "CC-BY-4.0",
        "MIT",
    )
    assert data.SOURCES == ("emoji", "emoji-twitter", "fashion-mnist", "folder")


def test_emoji_reads_the_cached_tarball(emoji_cache: Path) -> None:
    result = prepare(source="emoji", path=None, image_size=16, cache_dir=emoji_cache, workers=1)
    m = result.manifest
    assert m["kept"] == ["1f34e.png", "1f44b-1f3fb.png", "1f44b.png", "1f600.png"]
    assert m["package"] == "emoji-datasource-google@16.0.0" and m["version"] == "16.0.0"
    assert m["sha256"] == sources.EMOJI_SETS["emoji"].package.sha256
    assert m["licence"] == "Apache-2.0" and m["categories"] is None
    assert "path" not in m
    assert (m["n_kept"], m["n_skipped"], m["n_upscaled"], m["n_converted"]) == (4, 0, 0, 4)
    assert result.images.shape == (4, 16, 16, 3)
    assert_close(pixel_of(result, "1f600.png"), (255, 200, 0), 0)
    assert_close(pixel_of(result, "1f34e.png"), fx.WHITE, 0)  # transparent -> background
    again = prepare(source="emoji", path=None, image_size=16, cache_dir=emoji_cache, workers=2)
    np.testing.assert_array_equal(again.images, result.images)


def test_emoji_twitter_reads_its_own_images_and_flags(tmp_path, monkeypatch, no_download) -> None:
    cache = tmp_path / "cache"
    tarball = fx.make_fake_emoji_tarball(cache / TWITTER.package.file_name, image_set="twitter")
    pin(monkeypatch, "emoji-twitter", sha256_of(tarball))
    result = prepare(
        source="emoji-twitter",
        path=None,
        image_size=8,
        categories=["People & Body", "Smileys & Emotion"],
        cache_dir=cache,
        workers=1,
    )
    m = result.manifest
    assert m["kept"] == ["1f44b-1f3fb.png", "1f44b-1f3ff.png", "1f44b.png", "1f600.png"]
    assert m["source"] == "emoji-twitter" and m["package"] == "emoji-datasource-twitter@16.0.0"
    assert m["licence"] == "CC-BY-4.0" and m["sha256"] == sha256_of(tarball)
    assert_close(pixel_of(result, "1f44b-1f3ff.png"), (90, 60, 40), 0)


def test_emoji_twitter_does_not_read_the_google_folder(tmp_path, monkeypatch, no_download):
    cache = tmp_path / "cache"
    tarball = fx.make_fake_emoji_tarball(cache / TWITTER.package.file_name, image_set="google")
    pin(monkeypatch, "emoji-twitter", sha256_of(tarball))
    with pytest.raises(DataError, match="No readable image") as info:
        prepare(source="emoji-twitter", path=None, image_size=8, cache_dir=cache, workers=1)
    assert "4 missing from tarball" in str(info.value)


def test_emoji_category_filter_includes_skin_variations(emoji_cache: Path) -> None:
    result = prepare(
        source="emoji",
        path=None,
        image_size=8,
        categories=["People & Body"],
        cache_dir=emoji_cache,
        workers=1,
    )
    assert result.manifest["kept"] == ["1f44b-1f3fb.png", "1f44b.png"]
    assert result.manifest["categories"] == ["People & Body"]


def test_emoji_unknown_category_lists_valid_ones(emoji_cache: Path) -> None:
    with pytest.raises(DataError, match="Unknown emoji category 'Smileys'") as info:
        prepare(
            source="emoji", path=None, image_size=8, categories=["Smileys"], cache_dir=emoji_cache
        )
    for name in ("Smileys & Emotion", "People & Body", "Flags", "Food & Drink"):
        assert repr(name) in str(info.value)


def test_emoji_image_missing_from_tarball_is_skipped(tmp_path, monkeypatch, no_download) -> None:
    cache = tmp_path / "cache"
    tarball = fx.make_fake_emoji_tarball(cache / GOOGLE.package.file_name, omit=("1f600.png",))
    pin(monkeypatch, "emoji", sha256_of(tarball))
    result = prepare(source="emoji", path=None, image_size=8, cache_dir=cache, workers=1)
    assert result.manifest["skipped"][0]["file"] == "1f600.png"
    assert result.manifest["summary"] == {"missing from tarball": 1}


def test_cache_dir_from_environment(emoji_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("FPA_CACHE_DIR", str(emoji_cache))
    assert data.default_cache_dir() == emoji_cache
    package = sources.EMOJI_SETS["emoji"].package
    assert sources.fetch_package(package) == emoji_cache / GOOGLE.package.file_name
    monkeypatch.delenv("FPA_CACHE_DIR")
    assert data.default_cache_dir() == Path.home() / ".cache" / "fpa" / "npm"


def test_hash_mismatch_deletes_file_and_names_both_hashes(emoji_cache: Path) -> None:
    tarball = emoji_cache / GOOGLE.package.file_name
    actual = sha256_of(tarball)
    wrong = "0" * 64
    with pytest.raises(DataError) as info:
        sources.fetch_package(replace(GOOGLE.package, sha256=wrong), emoji_cache)
    assert actual in str(info.value) and wrong in str(info.value)
    assert_one_sentence(str(info.value))
    assert not tarball.exists()


def test_emoji_hash_mismatch_stops_prepare(emoji_cache: Path, monkeypatch) -> None:
    pin(monkeypatch, "emoji", "f" * 64)
    with pytest.raises(DataError, match="f" * 64):
        prepare(source="emoji", path=None, image_size=8, cache_dir=emoji_cache)
    assert not (emoji_cache / GOOGLE.package.file_name).exists()


def test_emoji_without_npm_says_what_to_do(tmp_path: Path, monkeypatch, no_download) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(DataError, match="install Node.js/npm") as info:
        sources.fetch_package(TWITTER.package, tmp_path / "cache")
    assert str(tmp_path / "cache") in str(info.value)
    assert TWITTER.package.file_name in str(info.value) and TWITTER.package.sha256 in str(
        info.value
    )
    assert_one_sentence(str(info.value))


def _fake_tool(bin_dir: Path, name: str, body: str) -> None:
    """A stand-in executable (a Python script) so fetching is tested without a network."""
    bin_dir.mkdir(parents=True)
    script = bin_dir / name
    script.write_text(f"#!{sys.executable}\nimport shutil, sys\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def _on_path(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ["PATH"])


@pytest.mark.parametrize("image_set", ["google", "twitter"])
def test_emoji_fetch_with_npm_pack_caches_the_tarball(tmp_path, monkeypatch, image_set) -> None:
    emoji_set = GOOGLE if image_set == "google" else TWITTER
    source = fx.make_fake_emoji_tarball(tmp_path / "registry" / "pkg.tgz", image_set=image_set)
    _fake_tool(
        tmp_path / "bin",
        "npm",
        f"assert sys.argv[1:] == ['pack', {emoji_set.package.spec!r}, '--ignore-scripts',"
        f" '--silent'], sys.argv\nshutil.copy({str(source)!r}, {emoji_set.package.file_name!r})",
    )
    _on_path(monkeypatch, tmp_path / "bin")
    package = replace(emoji_set.package, sha256=sha256_of(source))
    cache = tmp_path / "cache"
    path = sources.fetch_package(package, cache)
    assert path == cache / package.file_name and path.read_bytes() == source.read_bytes()
    assert [p.name for p in cache.iterdir()] == [package.file_name]  # temp dir removed
    source.unlink()  # a second call must use the cache, not npm
    assert sources.fetch_package(package, cache) == path


def test_emoji_fetch_failure_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    _fake_tool(
        tmp_path / "bin", "npm", "sys.stderr.write('npm ERR! network unreachable\\n'); sys.exit(1)"
    )
    _on_path(monkeypatch, tmp_path / "bin")
    with pytest.raises(DataError, match="network unreachable") as info:
        sources.fetch_package(GOOGLE.package, tmp_path / "cache")
    assert "`npm pack emoji-datasource-google@16.0.0` failed" in str(info.value)
    assert "place emoji-datasource-google-16.0.0.tgz" in str(info.value)
    assert_one_sentence(str(info.value))
    assert list((tmp_path / "cache").iterdir()) == []


def test_emoji_fetched_file_with_wrong_hash_is_not_cached(tmp_path: Path, monkeypatch) -> None:
    source = fx.make_fake_emoji_tarball(tmp_path / "registry" / "pkg.tgz")
    _fake_tool(tmp_path / "bin", "npm", f"shutil.copy({str(source)!r}, 'x.tgz')")
    _on_path(monkeypatch, tmp_path / "bin")
    with pytest.raises(DataError, match=GOOGLE.package.sha256):
        sources.fetch_package(GOOGLE.package, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


# Fashion-MNIST (a fake .deb built here) --------------------------------------------------------

FASHION = sources.FASHION_MNIST.package


def fashion_pixels(n: int = 5) -> np.ndarray:
    """(n, 28, 28) uint8: noise, so resizing and channel handling are checked pixel by pixel."""
    return np.random.default_rng(3).integers(0, 256, (n, 28, 28), dtype=np.uint8)


@pytest.fixture
def fashion_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_download) -> Path:
    cache = tmp_path / "cache"
    deb = fx.make_fake_deb(cache / FASHION.file_name, fashion_pixels())
    pin(monkeypatch, "fashion-mnist", sha256_of(deb))
    return cache


def lanczos(pixels: np.ndarray, size: int) -> np.ndarray:
    return np.stack(
        [np.asarray(Image.fromarray(p).resize((size, size), data.RESAMPLE)) for p in pixels]
    )


def test_fashion_mnist_greyscale_upscaled(fashion_cache: Path) -> None:
    result = prepare(
        source="fashion-mnist", path=None, image_size=32, channels=1, cache_dir=fashion_cache
    )
    m = result.manifest
    assert result.images.shape == (5, 32, 32, 1)
    np.testing.assert_array_equal(result.images[..., 0], lanczos(fashion_pixels(), 32))
    assert m["kept"] == [f"train/{i:05d}" for i in range(5)]
    assert (m["n_found"], m["n_kept"], m["n_upscaled"], m["n_converted"]) == (5, 5, 5, 0)
    assert m["source"] == "fashion-mnist" and m["licence"] == "MIT"
    assert m["package"] == "dataset-fashion-mnist=0.0~git20200523.55506a9-1"
    assert m["version"] == "0.0~git20200523.55506a9-1"
    assert m["sha256"] == sha256_of(fashion_cache / FASHION.file_name)
    assert m["member"] == "usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
    assert "categories" not in m and "path" not in m
    json.dumps(m)


def test_fashion_mnist_rgb_repeats_the_grey_channel(fashion_cache: Path) -> None:
    grey = prepare(
        source="fashion-mnist", path=None, image_size=16, channels=1, cache_dir=fashion_cache
    )
    rgb = prepare(source="fashion-mnist", path=None, image_size=16, cache_dir=fashion_cache)
    assert rgb.images.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(rgb.images, np.repeat(grey.images, 3, axis=-1))
    assert (rgb.manifest["n_upscaled"], rgb.manifest["n_converted"]) == (0, 5)  # 28 -> 16


def test_fashion_mnist_max_images_and_workers(fashion_cache: Path) -> None:
    args = {"source": "fashion-mnist", "path": None, "image_size": 32, "cache_dir": fashion_cache}
    one = prepare(**args, max_images=3, workers=1)
    two = prepare(**args, max_images=3, workers=2)
    assert one.manifest["kept"] == ["train/00000", "train/00001", "train/00002"]
    np.testing.assert_array_equal(one.images, two.images)
    assert one.manifest == two.manifest


@pytest.mark.parametrize(("compression", "slash"), [("xz", False), ("gz", True), ("bz2", False)])
def test_deb_layouts_are_read_alike(tmp_path: Path, compression: str, slash: bool) -> None:
    deb = fx.make_fake_deb(
        tmp_path / "x.deb", fashion_pixels(3), compression=compression, slash=slash
    )
    pixels = sources.read_idx_set(deb, sources.FASHION_MNIST)
    np.testing.assert_array_equal(pixels, fashion_pixels(3))


def test_idx_round_trip_and_bad_sizes() -> None:
    pixels = fashion_pixels(2)
    np.testing.assert_array_equal(sources.read_idx_images(fx.idx3_bytes(pixels)), pixels)
    with pytest.raises(ValueError, match="magic"):
        sources.read_idx_images(b"\x00\x00\x08\x01" + bytes(12))
    with pytest.raises(ValueError, match="2x28x28"):
        sources.read_idx_images(fx.idx3_bytes(pixels)[:-1])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.write_bytes(b"PK\x03\x04 not a deb"), "not an ar archive"),
        (
            lambda path: path.write_bytes(fx.ar_archive([("debian-binary", b"2.0\n")])),
            "no data.tar",
        ),
        (
            lambda path: fx.make_fake_deb(
                path, fashion_pixels(1), idx=b"\x00\x00\x08\x03" + bytes(5)
            ),
            "not a gzipped IDX3 image file",
        ),
    ],
)
def test_broken_deb_is_one_sentence(tmp_path: Path, monkeypatch, no_download, make, message):
    cache = tmp_path / "cache"
    cache.mkdir()
    make(cache / FASHION.file_name)
    pin(monkeypatch, "fashion-mnist", sha256_of(cache / FASHION.file_name))
    with pytest.raises(DataError, match=message) as info:
        prepare(source="fashion-mnist", path=None, image_size=32, cache_dir=cache)
    assert "delete" in str(info.value) and "run prepare again" in str(info.value)
    assert_one_sentence(str(info.value))


def test_fashion_mnist_hash_mismatch_is_one_sentence(fashion_cache: Path, monkeypatch) -> None:
    deb = fashion_cache / FASHION.file_name
    actual = sha256_of(deb)
    pin(monkeypatch, "fashion-mnist", FASHION.sha256)  # the real pin; the fake differs
    with pytest.raises(DataError) as info:
        prepare(source="fashion-mnist", path=None, image_size=32, cache_dir=fashion_cache)
    message = str(info.value)
    assert message.startswith(f"{FASHION.file_name} has SHA-256 {actual} but {FASHION.sha256}")
    assert str(fashion_cache) in message
    assert_one_sentence(message)
    assert not deb.exists()


def test_fashion_mnist_without_apt_says_what_to_do(tmp_path, monkeypatch, no_download) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(DataError, match="apt-get was not found") as info:
        prepare(source="fashion-mnist", path=None, image_size=32, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert (
        f"place {FASHION.file_name} (sha256 {FASHION.sha256}) in {tmp_path / 'cache'}" in message
    )
    assert_one_sentence(message)


def test_fashion_mnist_fetch_with_apt_get_download(tmp_path: Path, monkeypatch) -> None:
    source = fx.make_fake_deb(tmp_path / "archive" / "pkg.deb", fashion_pixels())
    _fake_tool(
        tmp_path / "bin",
        "apt-get",
        f"assert sys.argv[1:] == ['download', {FASHION.spec!r}, '-q'], sys.argv\n"
        f"shutil.copy({str(source)!r}, 'dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb')",
    )
    _on_path(monkeypatch, tmp_path / "bin")
    pin(monkeypatch, "fashion-mnist", sha256_of(source))
    cache = tmp_path / "cache"
    result = prepare(source="fashion-mnist", path=None, image_size=32, cache_dir=cache)
    assert result.manifest["n_kept"] == 5
    assert [p.name for p in cache.iterdir()] == [FASHION.file_name]
    source.unlink()  # a second run must use the cache, not apt-get
    again = prepare(source="fashion-mnist", path=None, image_size=32, cache_dir=cache)
    np.testing.assert_array_equal(again.images, result.images)


def test_fashion_mnist_fetch_failure_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    _fake_tool(
        tmp_path / "bin",
        "apt-get",
        "sys.stderr.write('E: Unable to locate package dataset-fashion-mnist\\n'); sys.exit(100)",
    )
    _on_path(monkeypatch, tmp_path / "bin")
    with pytest.raises(DataError, match="Unable to locate package") as info:
        sources.fetch_package(FASHION, tmp_path / "cache")
    message = str(info.value)
    assert f"`apt-get download {FASHION.spec}` failed (exit status 100" in message
    assert "apt-get update" in message and f"place {FASHION.file_name}" in message
    assert_one_sentence(message)
    assert list((tmp_path / "cache").iterdir()) == []


def test_progress_bar_only_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fx.save(fx.solid("RGB", (8, 8), fx.RED), tmp_path / "a.png")
    prepare(source="folder", path=tmp_path, image_size=8, workers=1)
    assert capsys.readouterr().err == ""
    prepare(source="folder", path=tmp_path, image_size=8, workers=1, progress=True)
    assert "prepare folder" in capsys.readouterr().err
