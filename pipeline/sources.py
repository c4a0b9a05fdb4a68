"""Built-in data sources: pinned packages, fetched once, checked against their SHA-256, cached,
and read in place (nothing is unpacked or installed).

* ``emoji``: Noto emoji, npm package ``emoji-datasource-google`` (images Apache-2.0).
* ``emoji-twitter``: Twemoji, npm package ``emoji-datasource-twitter`` (images CC-BY-4.0).
  Both are fetched with ``npm pack``; their 64x64 PNGs and ``emoji.json`` are read out of the
  tarball, one table row (:data:`EMOJI_SETS`) per set.
* ``fashion-mnist``: Debian package ``dataset-fashion-mnist`` (MIT), fetched with
  ``apt-get download`` (no root needed); the 60,000 training images are read out of the .deb,
  an ``ar`` archive whose ``data.tar.xz`` holds gzipped IDX files.

A downloaded file with the wrong hash is deleted before anything reads it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "BUILT_IN_SOURCES",
    "EMOJI_SETS",
    "FASHION_MNIST",
    "DataError",
    "EmojiSet",
    "IdxSet",
    "Package",
    "default_cache_dir",
    "fetch_package",
    "read_deb_member",
    "read_emoji",
    "read_idx_images",
    "read_idx_set",
]

CACHE_DIR_ENV = "FPA_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/fpa/npm")  # first used for npm tarballs only; kept as is
FETCH_TIMEOUT_S = 1800


class DataError(ValueError):
    """A user-facing data problem; the message names the problem and the fix in one sentence."""


# --------------------------------------------------------------------------------------------
# Pinned packages and the tools that download them.


@dataclass(frozen=True)
class _Tool:
    program: str  # looked up on PATH
    verb: str  # its sub-command that downloads one package into the working directory
    spec: str  # how a pinned package is named to it
    file_name: str  # the name of the file it writes
    options: tuple[str, ...]  # given after the package
    install_hint: str  # what to do when the program is missing
    reach_hint: str  # what to check when it ran and failed


_NPM = _Tool(
    "npm", "pack", "{name}@{version}", "{name}-{version}.tgz", ("--ignore-scripts", "--silent"),
    "install Node.js/npm", "check that npm can reach its registry",
)  # fmt: skip
_APT = _Tool(
    "apt-get", "download", "{name}={version}", "{name}_{version}_all.deb", ("-q",),
    "use a Debian-based system, where `apt-get download` needs no root",
    "check that apt knows the package (run `apt-get update`) and can reach its archive",
)  # fmt: skip


@dataclass(frozen=True)
class Package:
    """One pinned file: how to download it, the name it is cached under, and its hash."""

    name: str
    version: str
    sha256: str  # of the file as downloaded
    licence: str  # of the images it holds
    tool: _Tool

    @property
    def spec(self) -> str:
        """What the tool is asked for: ``name@version`` (npm) or ``name=version`` (apt)."""
        return self.tool.spec.format(name=self.name, version=self.version)

    @property
    def file_name(self) -> str:
        """The name the tool gives the file, which is also its name in the cache."""
        return self.tool.file_name.format(name=self.name, version=self.version)

    @property
    def command(self) -> str:
        """The download command, as a person would type it."""
        return f"{self.tool.program} {self.tool.verb} {self.spec}"


@dataclass(frozen=True)
class EmojiSet:
    """An emoji-datasource npm package: same emoji.json, its own folder of 64x64 PNGs."""

    package: Package
    image_dir: str  # folder of the 64x64 PNGs inside the tarball, with a trailing "/"
    has_image_key: str  # the emoji.json flag saying this set draws the emoji


@dataclass(frozen=True)
class IdxSet:
    """A dataset shipped as a gzipped IDX file inside a Debian package."""

    package: Package
    member: str  # path of the gzipped IDX3 images inside the package's data.tar


EMOJI_JSON_MEMBER = "package/emoji.json"
EMOJI_SETS: dict[str, EmojiSet] = {
    "emoji": EmojiSet(
        Package(
            "emoji-datasource-google",
            "16.0.0",
            "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438",
            "Apache-2.0",  # Noto Emoji images (the package's own code is MIT)
            _NPM,
        ),
        image_dir="package/img/google/64/",
        has_image_key="has_img_google",
    ),
    "emoji-twitter": EmojiSet(
        Package(
            "emoji-datasource-twitter",
            "16.0.0",
            "f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
            "CC-BY-4.0",  # Twemoji images (the package's own code is MIT)
            _NPM,
        ),
        image_dir="package/img/twitter/64/",
        has_image_key="has_img_twitter",
    ),
}
FASHION_MNIST = IdxSet(
    Package(
        "dataset-fashion-mnist",
        "0.0~git20200523.55506a9-1",
        "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
        "MIT",  # Zalando SE (Debian: Expat)
        _APT,
    ),
    member="usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
)
BUILT_IN_SOURCES = (*EMOJI_SETS, "fashion-mnist")


# --------------------------------------------------------------------------------------------
# Fetching and verifying.


def default_cache_dir() -> Path:
    """The download cache: ``$FPA_CACHE_DIR`` if set, else ``~/.cache/fpa/npm``."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else DEFAULT_CACHE_DIR.expanduser()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_sha256(path: Path, expected: str, cache: Path) -> None:
    actual = _sha256(path)
    if actual != expected:
        path.unlink(missing_ok=True)
        raise DataError(
            f"{path.name} has SHA-256 {actual} but {expected} was expected, so it was deleted;"
            f" run prepare again to re-download it, or place the correct file in {cache}."
        )


def _last_stderr_line(stderr: str | None) -> str:
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def fetch_package(package: Package, cache_dir: str | Path | None = None) -> Path:
    """Return the verified, cached file of ``package``, downloading it first if needed.

    The file is looked for in ``cache_dir`` (default: :func:`default_cache_dir`); if absent the
    package's tool (``npm pack`` or ``apt-get download``) writes it into a temporary folder
    inside the cache, where it is checked against ``package.sha256`` and then moved into place.
    A file with the wrong hash is deleted and a :class:`DataError` names both hashes.
    """
    expected = package.sha256.lower()
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / package.file_name
    by_hand = f"place {package.file_name} (sha256 {expected}) in {cache}"
    if target.is_file():
        _verify_sha256(target, expected, cache)
        return target

    tool = package.tool
    program = shutil.which(tool.program)
    if program is None:
        raise DataError(
            f"{tool.program} was not found, so {package.spec} cannot be downloaded;"
            f" {tool.install_hint}, or {by_hand}."
        )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{tool.program}-") as tmp:
        try:
            proc = subprocess.run(
                [program, tool.verb, package.spec, *tool.options],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=FETCH_TIMEOUT_S,
                check=False,
            )
            problem = f"exit status {proc.returncode}" if proc.returncode else ""
            last = _last_stderr_line(proc.stderr)
            if last:
                problem = f"{problem}: {last}" if problem else last
        except (OSError, subprocess.TimeoutExpired) as exc:
            proc, problem = None, f"{type(exc).__name__}: {exc}"
        fetched = sorted(Path(tmp).glob(f"*{Path(package.file_name).suffix}"))
        if proc is None or proc.returncode != 0 or len(fetched) != 1:
            raise DataError(
                f"`{package.command}` failed"
                f" ({problem or 'no file was produced'}); {tool.reach_hint}, or {by_hand}."
            )
        _verify_sha256(fetched[0], expected, cache)
        os.replace(fetched[0], target)
    return target


# --------------------------------------------------------------------------------------------
# Emoji tarballs.


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    fh = tar.extractfile(member)
    if fh is None:  # pragma: no cover - only for non-regular members, filtered out by callers
        return b""
    with fh:
        return fh.read()


def read_emoji(
    tarball: Path, emoji_set: EmojiSet, categories: Sequence[str] | None
) -> tuple[list[tuple[str, bytes | None]], list[str]]:
    """Items ``(image name, PNG bytes or None)`` sorted by name, and the selected categories.

    An emoji (or a skin-tone variation, which keeps its base emoji's category) is listed when
    emoji.json flags it with ``emoji_set.has_image_key``; its bytes are ``None`` when the
    tarball lacks the PNG.
    """
    prefix, flag = emoji_set.image_dir, emoji_set.has_image_key
    images: dict[str, bytes] = {}
    entries: list[dict[str, Any]] | None = None
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:  # one sequential pass: seeking in a gzip stream is expensive
                if not member.isfile():
                    continue
                if member.name == EMOJI_JSON_MEMBER:
                    entries = json.loads(_read_member(tar, member))
                elif member.name.startswith(prefix) and member.name.endswith(".png"):
                    images[member.name[len(prefix) :]] = _read_member(tar, member)
    except (tarfile.TarError, OSError, EOFError, zlib.error, json.JSONDecodeError) as exc:
        raise DataError(
            f"The emoji tarball {tarball} cannot be read ({type(exc).__name__}: {exc});"
            " delete it and run prepare again."
        ) from exc
    if not isinstance(entries, list):
        raise DataError(
            f"The emoji tarball {tarball} has no {EMOJI_JSON_MEMBER};"
            " delete it and run prepare again."
        )

    category_of: dict[str, str] = {}
    valid: set[str] = set()
    for entry in entries:
        category = entry.get("category", "")
        valid.add(category)
        if entry.get(flag) and entry.get("image"):
            category_of.setdefault(entry["image"], category)
        for variation in (entry.get("skin_variations") or {}).values():
            if variation.get(flag) and variation.get("image"):
                category_of.setdefault(variation["image"], category)  # base emoji's category

    if categories:
        unknown = [c for c in categories if c not in valid]
        if unknown:
            raise DataError(
                f"Unknown emoji categor{'y' if len(unknown) == 1 else 'ies'}"
                f" {', '.join(repr(c) for c in unknown)} in data.categories; choose from:"
                f" {', '.join(repr(c) for c in sorted(valid))}."
            )
        wanted = set(categories)
        category_of = {name: cat for name, cat in category_of.items() if cat in wanted}
        selected = sorted(wanted)
    else:
        selected = sorted(valid)
    items = [(name, images.get(name)) for name in sorted(category_of)]
    return items, selected


# --------------------------------------------------------------------------------------------
# Debian packages and IDX files.

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60  # name 16, mtime 12, uid 6, gid 6, mode 8, size 10, magic "`\n" 2


def _deb_data_tar(fh: BinaryIO) -> tuple[str, bytes]:
    """Name and bytes of the ``data.tar*`` member of a .deb (a Unix ``ar`` archive).

    Each ar member is a 60-byte ASCII header followed by its data, padded to an even length;
    GNU ar may end a name with "/".
    """
    if fh.read(len(_AR_MAGIC)) != _AR_MAGIC:
        raise ValueError("not an ar archive (a .deb starts with !<arch>)")
    while header := fh.read(_AR_HEADER):
        if len(header) != _AR_HEADER or header[58:60] != b"`\n":
            raise ValueError("truncated or corrupt ar member header")
        name = header[:16].decode("ascii").rstrip().rstrip("/")
        size = int(header[48:58].decode("ascii"))
        if name.startswith("data.tar"):
            payload = fh.read(size)
            if len(payload) != size:
                raise ValueError(f"{name} is truncated")
            return name, payload
        fh.seek(size + (size & 1), os.SEEK_CUR)
    raise ValueError("no data.tar member")


def read_deb_member(deb: Path, member: str) -> bytes:
    """The bytes of file ``member`` (e.g. ``usr/share/...``) in a .deb, without installing it.

    The data archive may be uncompressed or gzip/bzip2/xz-compressed (what ``tarfile`` reads).
    """
    wanted = member.removeprefix("./")
    try:
        with deb.open("rb") as fh:
            data_name, payload = _deb_data_tar(fh)
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as tar:
            for info in tar:
                if info.isfile() and info.name.removeprefix("./") == wanted:
                    return _read_member(tar, info)
    except (ValueError, tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"The Debian package {deb} cannot be read ({type(exc).__name__}: {exc});"
            " delete it and run prepare again."
        ) from exc
    raise DataError(
        f"The Debian package {deb} has no {wanted} in its {data_name};"
        " delete it and run prepare again."
    )


def read_idx_images(blob: bytes) -> np.ndarray:
    """IDX3 unsigned-byte images (the MNIST format) -> uint8 ``(N, rows, cols)``, read-only.

    Layout: magic 00 00 08 03 (ubyte, 3 dimensions), three big-endian uint32 sizes, then the
    N * rows * cols pixels in row-major order.
    """
    if len(blob) < 16 or blob[:4] != b"\x00\x00\x08\x03":
        raise ValueError("not an IDX3 unsigned-byte file (magic 00 00 08 03)")
    n, rows, cols = struct.unpack(">3I", blob[4:16])
    if len(blob) != 16 + n * rows * cols:
        raise ValueError(f"{len(blob)} bytes for {n}x{rows}x{cols} images")
    return np.frombuffer(blob, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def read_idx_set(deb: Path, idx_set: IdxSet) -> np.ndarray:
    """The images of ``idx_set`` out of its verified .deb: uint8 ``(N, rows, cols)``."""
    compressed = read_deb_member(deb, idx_set.member)
    try:
        return read_idx_images(gzip.decompress(compressed))
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{idx_set.member} in {deb} is not a gzipped IDX3 image file"
            f" ({type(exc).__name__}: {exc}); delete the package and run prepare again."
        ) from exc
