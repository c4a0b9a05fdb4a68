"""Small, generated image fixtures for the data-preparation tests (no downloads)."""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def noise(size: tuple[int, int], seed: int = 0, mode: str = "RGB") -> Image.Image:
    """Random image of ``size`` (width, height): compresses badly, like a real photo crop."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(array.squeeze(-1) if channels == 1 else array)


def solid(mode: str, size: tuple[int, int], colour: int | tuple[int, ...]) -> Image.Image:
    return Image.new(mode, size, colour)


def stripes(
    colours: list[tuple[int, int, int]], block: int, vertical: bool = False
) -> Image.Image:
    """Square blocks of ``colours`` side by side (or stacked when ``vertical``)."""
    n = len(colours)
    size = (block, block * n) if vertical else (block * n, block)
    img = Image.new("RGB", size)
    for i, colour in enumerate(colours):
        box = (
            (0, i * block, block, (i + 1) * block)
            if vertical
            else (i * block, 0, (i + 1) * block, block)
        )
        img.paste(colour, box)
    return img


def save(img: Image.Image, path: Path, fmt: str | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt, **kwargs)
    return path


def grey16(size: tuple[int, int], value: int) -> Image.Image:
    """16-bit greyscale ("I;16") image filled with ``value`` (0..65535)."""
    return Image.fromarray(np.full((size[1], size[0]), value, dtype=np.uint16))


def palette_with_transparency(size: tuple[int, int]) -> Image.Image:
    """Palette image: top half opaque red (index 0), bottom half transparent blue (index 1)."""
    img = Image.new("P", size, 0)
    img.putpalette([*RED, *BLUE] + [0, 0, 0] * 254)
    img.paste(1, (0, size[1] // 2, size[0], size[1]))
    img.info["transparency"] = 1
    return img


def truncated_jpeg_bytes(size: tuple[int, int] = (32, 32), keep: float = 0.5) -> bytes:
    """A noise JPEG with everything after the first ``keep`` fraction of its bytes cut off."""
    buffer = io.BytesIO()
    noise(size, seed=1).save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    return data[: int(len(data) * keep)]


# Folder corpus -------------------------------------------------------------------------------

# Expected outcome for every file make_corpus writes (relative path -> None if kept, else the
# skip reason). Files that must not even be listed are not in this table.
CORPUS_KEPT = [
    "cmyk.jpg",
    "grey16.png",
    "grey_alpha.png",
    "nested/deeper/plain.bmp",
    "nested/photo.webp",
    "palette_trns.png",
    "rgb.png",
    "rgba.png",
    "small.png",
    "tall.png",
    "upper.JPEG",
    "upper.JPG",
    "upper.PNG",
    "wide.png",
]
CORPUS_SKIPPED = {
    "empty.png": "empty file",
    "huge.png": "too large",
    "truncated.jpg": "truncated or corrupt",
    "x.png": "not a decodable image",
}
CORPUS_CONVERTED = {"cmyk.jpg", "grey16.png", "grey_alpha.png", "palette_trns.png", "rgba.png"}
CORPUS_UPSCALED = {"small.png"}
CORPUS_MAX_PIXELS = 5000  # huge.png is 100x100; every other file is smaller
CORPUS_IMAGE_SIZE = 16


def make_corpus(root: Path) -> Path:
    """Write the mixed-format folder corpus described by the CORPUS_* constants under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    save(solid("RGB", (32, 32), (10, 200, 30)), root / "rgb.png")
    save(solid("RGB", (32, 32), (200, 10, 30)), root / "upper.JPG", "JPEG", quality=95)
    save(solid("RGB", (32, 32), (30, 10, 200)), root / "upper.PNG", "PNG")
    save(solid("RGB", (32, 32), (120, 120, 10)), root / "upper.JPEG", "JPEG", quality=95)
    # Pure red in CMYK: C=0, M=255, Y=255, K=0.
    save(solid("CMYK", (32, 32), (0, 255, 255, 0)), root / "cmyk.jpg", "JPEG", quality=95)
    save(grey16((32, 32), 32768), root / "grey16.png")
    save(solid("LA", (32, 32), (0, 128)), root / "grey_alpha.png")  # black at ~half alpha
    save(palette_with_transparency((32, 32)), root / "palette_trns.png", transparency=1)
    save(solid("RGBA", (32, 32), (0, 0, 255, 0)), root / "rgba.png")  # fully transparent blue
    save(stripes([RED, GREEN, BLUE], 16), root / "wide.png")  # 48x16: centre block is green
    save(stripes([RED, GREEN, BLUE], 32, vertical=True), root / "tall.png")  # 32x96, downscaled
    save(solid("RGB", (8, 8), (50, 100, 150)), root / "small.png")  # upscaled to 16
    save(solid("RGB", (100, 100), (1, 2, 3)), root / "huge.png")  # refused by max_pixels
    save(noise((40, 20), seed=2), root / "nested" / "photo.webp", "WEBP", lossless=True)
    save(solid("RGB", (20, 20), (7, 8, 9)), root / "nested" / "deeper" / "plain.bmp", "BMP")
    (root / "truncated.jpg").write_bytes(truncated_jpeg_bytes())
    (root / "empty.png").write_bytes(b"")
    (root / "x.png").write_text("this is not an image\n")
    # Ignored: hidden files, AppleDouble files, hidden directories, __MACOSX, other extensions.
    save(solid("RGB", (32, 32), RED), root / "._rgb.jpg", "JPEG")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    save(solid("RGB", (32, 32), RED), root / ".secret.png")
    save(solid("RGB", (32, 32), RED), root / ".hidden" / "inside.png")
    save(solid("RGB", (32, 32), RED), root / "__MACOSX" / "junk.png")
    (root / "notes.txt").write_text("not an image extension\n")
    save(solid("RGB", (32, 32), RED), root / "image.gif", "GIF")
    return root


def make_png_dataset(root: Path, n: int, size: int = 64, seed: int = 0) -> Path:
    """``n`` smooth-plus-noise RGB PNGs of ``size`` x ``size`` (for throughput measurements)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(n):
        phase = rng.uniform(0, 6.28, size=3)
        base = np.stack([np.sin(6 * xx + 4 * yy + p) for p in phase], axis=-1) * 100 + 128
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"img_{i:05d}.png")
    return root


# Fake emoji tarball ---------------------------------------------------------------------------

# The two sets draw different emoji: Twitter has the dark skin tone but no apple.
FAKE_EMOJI_JSON = [
    {
        "image": "1f600.png",
        "category": "Smileys & Emotion",
        "has_img_google": True,
        "has_img_twitter": True,
    },
    {
        "image": "1f44b.png",
        "category": "People & Body",
        "has_img_google": True,
        "has_img_twitter": True,
        "skin_variations": {
            "1F3FB": {"image": "1f44b-1f3fb.png", "has_img_google": True, "has_img_twitter": True},
            "1F3FF": {
                "image": "1f44b-1f3ff.png",
                "has_img_google": False,
                "has_img_twitter": True,
            },
        },
    },
    {
        "image": "1f1e9-1f1ea.png",
        "category": "Flags",
        "has_img_google": False,
        "has_img_twitter": False,
    },
    {
        "image": "1f34e.png",
        "category": "Food & Drink",
        "has_img_google": True,
        "has_img_twitter": False,
    },
]
# Colour of every PNG in the fake tarball (all 64x64 RGBA; 1f34e.png is fully transparent).
FAKE_EMOJI_COLOURS = {
    "1f600.png": (255, 200, 0, 255),
    "1f44b.png": (250, 180, 60, 255),
    "1f44b-1f3fb.png": (240, 210, 180, 255),
    "1f44b-1f3ff.png": (90, 60, 40, 255),  # in both tarballs, flagged for Twitter only
    "1f1e9-1f1ea.png": (0, 0, 0, 255),
    "1f34e.png": (200, 0, 0, 0),  # fully transparent
}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def make_fake_emoji_tarball(
    path: Path, omit: tuple[str, ...] = (), image_set: str = "google"
) -> Path:
    """A tiny .tgz with the emoji-datasource layout: package/emoji.json + 64px PNGs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        _add(
            tar,
            "package/package.json",
            json.dumps({"name": f"emoji-datasource-{image_set}"}).encode(),
        )
        _add(tar, "package/emoji.json", json.dumps(FAKE_EMOJI_JSON).encode())
        for name, colour in FAKE_EMOJI_COLOURS.items():
            if name in omit:
                continue
            buffer = io.BytesIO()
            Image.new("RGBA", (64, 64), colour).save(buffer, "PNG")
            _add(tar, f"package/img/{image_set}/64/{name}", buffer.getvalue())
        _add(tar, f"package/img/{image_set}/sheets/64.png", b"not used")
    return path


# Fake Debian package --------------------------------------------------------------------------

FASHION_DIR = "./usr/share/datasets/fashion-mnist/"


def idx3_bytes(images: np.ndarray) -> bytes:
    """uint8 (N, rows, cols) -> the IDX3 file MNIST-style datasets ship."""
    n, rows, cols = images.shape
    return b"\x00\x00\x08\x03" + struct.pack(">3I", n, rows, cols) + images.tobytes()


def ar_archive(members: list[tuple[str, bytes]], slash: bool = False) -> bytes:
    """A Unix ar archive, as dpkg-deb writes it (GNU ar adds "/" after each name)."""
    out = [b"!<arch>\n"]
    for name, data in members:
        name = name + "/" if slash else name
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
        out += [header.encode("ascii"), data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def make_fake_deb(
    path: Path,
    train: np.ndarray,
    *,
    compression: str = "xz",
    slash: bool = False,
    idx: bytes | None = None,
) -> Path:
    """A tiny .deb with the dataset-fashion-mnist layout: gzipped IDX3 files in data.tar.*.

    ``train`` becomes train-images-idx3-ubyte.gz (or ``idx`` verbatim, to test bad files);
    a test-set file and a doc file sit next to it so the right one must be picked.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    files = {
        "usr/share/doc/dataset-fashion-mnist/copyright": b"License: Expat\n",
        "usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz": gzip.compress(
            idx3_bytes(255 - train[:1])
        ),
        "usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz": gzip.compress(
            idx if idx is not None else idx3_bytes(train)
        ),
    }
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode=f"w:{compression}") as tar:
        for name, content in files.items():
            _add(tar, f"./{name}", content)
    control = io.BytesIO()
    with tarfile.open(fileobj=control, mode="w:xz") as tar:
        _add(tar, "./control", b"Package: dataset-fashion-mnist\n")
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", control.getvalue()),
        (f"data.tar.{compression}", data.getvalue()),
    ]
    path.write_bytes(ar_archive(members, slash=slash))
    return path
