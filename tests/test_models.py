"""Model shapes, the paper's parameter counts, and generator files that rebuild their model."""

import itertools

import pytest
import torch

from pipeline.config import DiscriminatorConfig, GeneratorConfig
from pipeline.discriminator import Discriminator
from pipeline.figures import rank_by_rank
from pipeline.generators import build_generator, load_generator, save_generator
from pipeline.rules import RULES


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def paper_spec(**changes):
    return {**GeneratorConfig().model_dump(), "image_size": 64, "channels": 3, **changes}


def test_paper_painter_has_the_parameter_count_the_architecture_implies():
    painter = build_generator(paper_spec())
    assert n_params(painter) == 6_437_891
    assert n_params(painter.inputs.initial_state) == 1_050_624
    assert n_params(painter.inputs.expand) == 262_656
    assert n_params(painter.inputs.project) == 1_152
    assert n_params(painter.lstm) == 4_726_784
    assert n_params(painter.heads) == 396_675


def test_paper_discriminator_has_the_parameter_count_the_architecture_implies():
    disc = Discriminator(image_size=64, channels=3, cfg=DiscriminatorConfig().model_dump())
    assert n_params(disc) == 12_326_632


def test_small_models_produce_images_in_range_with_batch_one():
    spec = paper_spec(latent_dim=16, lstm_hidden=32, chunk_proj_dim=8, steps=4, image_size=16)
    for variant, per_row, rule in itertools.product(("v1", "v2"), (False, True), RULES):
        painter = build_generator(
            {**spec, "input_generator": variant, "per_row_lr": per_row, "rule": rule}
        )
        images = painter(torch.randn(1, 16))
        assert images.shape == (1, 3, 16, 16)
        assert images.abs().max() <= 1
    cfg = DiscriminatorConfig(
        fmap_max=16, attn_res_layers=[16], aux_channels=8, attn_heads=2, attn_dim_head=4
    )
    disc = Discriminator(image_size=16, channels=3, cfg=cfg.model_dump())
    logits, aux, recon = disc(images, reconstruct=True)
    assert logits.shape == (1, 1) and aux.shape == (1, 1) and recon.ndim == 0


def test_generator_file_rebuilds_the_model_alone(tmp_path):
    spec = paper_spec(latent_dim=16, lstm_hidden=32, chunk_proj_dim=8, steps=4, image_size=16)
    painter = build_generator(spec).eval()
    initial = {k: v.clone() for k, v in painter.state_dict().items()}
    with torch.no_grad():
        painter.heads.bias.add_(0.5)
    save_generator(tmp_path / "g.pt", painter, initial_state=initial, steps=3)
    z = torch.randn(2, 16)
    rebuilt, meta = load_generator(tmp_path / "g.pt")
    torch.testing.assert_close(rebuilt(z), painter(z))
    untrained, _ = load_generator(tmp_path / "g.pt", untrained=True)
    assert not torch.allclose(untrained(z), painter(z))
    assert meta["steps"] == 3


def test_unet_starts_as_the_identity_on_the_painter():
    spec = paper_spec(latent_dim=16, lstm_hidden=32, chunk_proj_dim=8, steps=4, image_size=16)
    painter = build_generator(spec).eval()
    combined = build_generator(
        {"kind": "fpa+unet", "painter": spec, "unet": {"base_channels": 8, "levels": 2}}
    )
    combined.painter.load_state_dict(painter.state_dict())
    z = torch.randn(3, 16)
    torch.testing.assert_close(combined(z), painter(z))
    assert all(not p.requires_grad for p in combined.painter.parameters())


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rank_by_rank_figure_ends_on_the_image_for_every_rule(rule):
    steps, size = 4, 16
    spec = paper_spec(latent_dim=16, lstm_hidden=32, chunk_proj_dim=8, steps=steps)
    painter = build_generator({**spec, "image_size": size, "rule": rule, "per_row_lr": True})
    z = torch.randn(16)
    grid = rank_by_rank(painter.eval(), z, value_range=(-1.0, 1.0))
    assert grid.shape == (3, 2 * (size + 1) + 1, steps * (size + 1) + 1)
    last_partial = grid[:, -size - 1 : -1, -size - 1 : -1]  # bottom right tile
    with torch.no_grad():
        image = (painter(z[None])[0] + 1) / 2
    torch.testing.assert_close(last_partial, image)
