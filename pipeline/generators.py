"""Generators: the fast weight painter (FPA), the FPA followed by a U-Net denoiser, and the
LightGAN baseline ("base", in pipeline.lightgan).

A generator is rebuilt from its spec alone: a plain dict holding its kind's `GeneratorConfig`
fields plus `image_size` and `channels` (see `GeneratorConfig.spec`; for "fpa+unet", the
painter's spec and the U-Net's). Every generator maps latents z (B, latent_dim) to images
(B, C, d, d) in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

from pipeline.lightgan import LightGAN
from pipeline.rules import RankOneFactors, fast_weights, make_rule
from pipeline.unet import UNet


def _kaiming_normal(layer: nn.Linear) -> nn.Linear:
    """The original code's init for the layers that read the latent: N(0, 2 / fan_in)."""
    nn.init.kaiming_normal_(layer.weight, a=0, mode="fan_in", nonlinearity="leaky_relu")
    return layer


class InitialState(nn.Module):
    """h0 and c0 of the LSTM, both computed from z by one linear layer."""

    def __init__(self, latent_dim: int, hidden: int, *, kaiming: bool):
        super().__init__()
        self.layer = nn.Linear(latent_dim, 2 * hidden)
        if kaiming:
            _kaiming_normal(self.layer)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        h0, c0 = rearrange(self.layer(z), "b (two h) -> two 1 b h", two=2)  # (1, B, H) each
        return h0.contiguous(), c0.contiguous()


class InputsV1(nn.Module):
    """v1: the same latent z is the LSTM input at every step; h0, c0 come from z."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.steps = spec["steps"]
        self.initial_state = InitialState(spec["latent_dim"], spec["lstm_hidden"], kaiming=True)
        self.input_size = spec["latent_dim"]

    def forward(self, z: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        return z.unsqueeze(1).expand(-1, self.steps, -1), self.initial_state(z)  # (B, T, latent)


class InputsV2(nn.Module):
    """v2: tanh(A z) is cut into T chunks, each projected to one LSTM input; h0, c0 come from z."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.steps, hidden = spec["steps"], spec["lstm_hidden"]
        self.initial_state = InitialState(spec["latent_dim"], hidden, kaiming=False)
        self.expand = nn.Linear(spec["latent_dim"], spec["steps"] * spec["chunk_dim"])
        self.project = _kaiming_normal(nn.Linear(spec["chunk_dim"], spec["chunk_proj_dim"]))
        self.input_size = spec["chunk_proj_dim"]

    def forward(self, z: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        chunks = rearrange(torch.tanh(self.expand(z)), "b (t k) -> b t k", t=self.steps)
        return self.project(chunks), self.initial_state(z)  # (B, T, proj)


INPUT_GENERATORS = {"v1": InputsV1, "v2": InputsV2}


@dataclass
class Painting:
    """What a painter produced for a batch: enough to redraw every step."""

    factors: RankOneFactors  # (B, C, T, d) twice: step t adds left_t right_t^T
    weights: Tensor  # (B, C, d, d) W_T = L^T R, the image before tanh


class FastWeightPainter(nn.Module):
    """An LSTM emits keys, values and learning rates; a learning rule paints them into W."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.spec = dict(spec)
        self.channels, self.size = spec["channels"], spec["image_size"]
        self.lr_size = self.size if spec["per_row_lr"] else 1
        self.inputs = INPUT_GENERATORS[spec["input_generator"]](spec)
        self.lstm = nn.LSTM(self.inputs.input_size, spec["lstm_hidden"], batch_first=True)
        self.heads = nn.Linear(spec["lstm_hidden"], self.channels * (2 * self.size + self.lr_size))
        # The original code's init of the heads: U(-b, b), b = 1 / sqrt(C (2 d + 1)), weights and
        # biases alike (larger than PyTorch's 1 / sqrt(H) for a wide LSTM).
        bound = (self.channels * (2 * self.size + 1)) ** -0.5
        nn.init.uniform_(self.heads.weight, -bound, bound)
        nn.init.uniform_(self.heads.bias, -bound, bound)
        self.rule = make_rule(spec["rule"], full_first_step=spec["full_first_step"])

    def paint(self, z: Tensor) -> Painting:
        inputs, state = self.inputs(z)
        hidden, _ = self.lstm(inputs, state)  # (B, T, H)
        heads = rearrange(self.heads(hidden), "b t (c n) -> b c t n", c=self.channels)
        heads = heads.float()  # the learning rule always runs in float32, also under autocast
        keys, values, rates = heads.split([self.size, self.size, self.lr_size], dim=-1)
        keys, rates = keys.softmax(dim=-1), rates.sigmoid()
        with torch.autocast(heads.device.type, enabled=False):
            factors = self.rule.factors(keys, values, rates)
            weights = fast_weights(factors)
        return Painting(factors=factors, weights=weights)

    def forward(self, z: Tensor) -> Tensor:
        return torch.tanh(self.paint(z).weights)


class GeneratorKindError(ValueError):
    """A generator of one kind given where another is needed; the message says what to do."""


class PaintThenDenoise(nn.Module):
    """A frozen painter followed by a U-Net that corrects its pre-tanh image in one pass.

    The U-Net sees tanh(W) and adds a correction to W; its last layer starts at zero, so training
    starts from exactly the painter's images.
    """

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        kind = spec["painter"].get("kind", "fpa")
        if kind != "fpa":
            raise GeneratorKindError(
                f"the U-Net denoiser corrects a fast weight painter's W, and a {kind!r} generator "
                "has none; train with generator.kind: fpa to use the denoise stage"
            )
        self.spec = dict(spec)
        self.painter = FastWeightPainter(spec["painter"])
        self.painter.requires_grad_(False)
        self.unet = UNet(channels=spec["painter"]["channels"], **spec["unet"])

    def forward(self, z: Tensor) -> Tensor:
        with torch.no_grad():
            weights = self.painter.paint(z).weights
        return torch.tanh(weights + self.unet(torch.tanh(weights)))

    def trainable_parameters(self):
        return self.unet.parameters()


GENERATORS = {"fpa": FastWeightPainter, "fpa+unet": PaintThenDenoise, "base": LightGAN}


def build_generator(spec: dict[str, Any]) -> nn.Module:
    kind = spec.get("kind", "fpa")
    if kind not in GENERATORS:
        raise ValueError(f"unknown generator kind {kind!r}; choose one of {sorted(GENERATORS)}")
    return GENERATORS[kind](spec)


def latent_dim(spec: dict[str, Any]) -> int:
    return spec["painter"]["latent_dim"] if spec.get("kind") == "fpa+unet" else spec["latent_dim"]


GENERATOR_FILE_FORMAT = 1


class ModelFileError(ValueError):
    """A model file that cannot be read; the message says what to do."""


def save_generator(path: Path, generator: nn.Module, **meta: Any) -> None:
    """Write a file that rebuilds this generator alone: its spec, its weights, and `meta`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": GENERATOR_FILE_FORMAT,
        "spec": generator.spec,
        "state": generator.state_dict(),
        "meta": meta,
    }
    partial = path.with_suffix(path.suffix + ".partial")
    torch.save(payload, partial)
    partial.replace(path)


def load_generator(path: Path, *, untrained: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a generator from its file; `untrained` picks the weights it started from."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist; run the stage that trains it first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        spec, meta = payload["spec"], payload["meta"]
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ModelFileError(
            f"{path} is not a generator file of this pipeline ({type(exc).__name__}); pass a"
            " generator.pt written by the train or denoise stage (if it is one, it is damaged:"
            " delete it and run `dvc repro` to train it again)"
        ) from None
    generator = build_generator(spec)
    generator.load_state_dict(payload["meta"]["initial_state"] if untrained else payload["state"])
    return generator.eval(), meta
