"""Ready configurations in configs/: every file is a valid params file, and the paper's dataset
files build the paper's models (v2 painter at T = 64 and the paper-size discriminator)."""

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from pipeline.config import Params, load_params
from pipeline.discriminator import Discriminator
from pipeline.generators import build_generator

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAPER_DATASETS = ["celeba", "lsun-church", "metfaces", "afhq-cat", "afhq-dog", "afhq-wild"]


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_config_is_a_valid_params_file(path):
    load_params(path)


@pytest.mark.parametrize("name", PAPER_DATASETS)
def test_paper_configs_build_the_papers_models(name):
    path = CONFIGS / f"{name}.yaml"
    cfg = load_params(path)
    assert cfg.data.source == "folder" and cfg.data.path == f"data/raw/{name}"
    assert (cfg.data.image_size, cfg.data.channels) == (64, 3)
    assert cfg.fid.protocol == "paper" and cfg.fid.n_real is None and cfg.fid.n_fake == 50_000
    assert (cfg.train.real_range, cfg.generator.full_first_step) == ("unit", True)
    painter = build_generator(cfg.generator.spec(image_size=64, channels=3))
    assert n_params(painter) == 6_437_891
    disc = Discriminator(image_size=64, channels=3, cfg=cfg.discriminator.model_dump())
    assert n_params(disc) == 12_326_632


@pytest.mark.parametrize("name", PAPER_DATASETS)
def test_paper_configs_list_every_key(name):
    """Complete files: a recipe never silently falls back to a default of the code."""
    raw = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    sections = {s: f for s, f in Params.model_fields.items() if s != "table"}  # params.yaml's own
    assert set(raw) == set(sections)
    for section, field in sections.items():
        if isinstance(field.default, BaseModel):
            assert set(raw[section]) == set(type(field.default).model_fields), section
