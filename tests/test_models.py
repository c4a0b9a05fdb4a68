"""Model shapes, the paper's parameter counts, and generator files that rebuild their model."""

import itertools

import pytest
import torch

from pipeline.config import DiscriminatorConfig, GeneratorConfig
from pipeline.discriminator import Discriminator
from pipeline.figures import rank_by_rank
from pipeline.generators import (
    GeneratorKindError,
    build_generator,
    load_generator,
    save_generator,
)
from pipeline.rules import RULES


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def paper_spec(**changes):
    return {**GeneratorConfig().spec(image_size=64, channels=3), **changes}


def test_paper_painter_has_the_parameter_count_the_architecture_implies():
    painter = build_generator(paper_spec())
    assert n_params(painter) == 6_437_891
    assert n_params(painter.inputs.initial_state) == 1_050_624
    assert n_params(painter.inputs.expand) == 262_656
    assert n_params(painter.inputs.project) == 1_152
    assert n_params(painter.lstm) == 4_726_784
    assert n_params(painter.heads) == 396_675


def test_paper_v1_painter_starts_its_lstm_from_z_and_feeds_z_at_every_step():
    painter = build_generator(paper_spec(input_generator="v1"))
    assert n_params(painter.inputs.initial_state) == 1_050_624  # z -> (h0, c0)
    assert n_params(painter.lstm) == 4 * 1024 * (512 + 1024 + 2)  # the LSTM reads z itself
    assert n_params(painter) == 1_050_624 + 4 * 1024 * (512 + 1024 + 2) + 396_675


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


def base_spec(**changes):
    small = GeneratorConfig(kind="base", latent_dim=8, fmap_max=16, fmap_inverse_coef=8)
    return {**small.spec(image_size=16, channels=3), **changes}


@pytest.mark.parametrize("size", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_lightgan_images_have_the_image_shape_and_range(size, channels):
    generator = build_generator(base_spec(image_size=size, channels=channels, attn_res_layers=[8]))
    for mode in ("train", "eval"):
        getattr(generator, mode)()
        for batch in (1, 2):
            images = generator(torch.randn(batch, 8))
            assert images.shape == (batch, channels, size, size)
            assert images.abs().max() <= 1 and torch.isfinite(images).all()
    assert len(generator.excitations) == (1 if size == 128 else 0)  # 16 px gates 128 px


def test_lightgan_file_rebuilds_the_model_alone(tmp_path):
    generator = build_generator(base_spec(attn_res_layers=[8]))
    initial = {k: v.clone() for k, v in generator.state_dict().items()}
    with torch.no_grad():
        for _ in range(3):  # move the batch-norm running statistics away from their start
            generator(torch.randn(4, 8))
        generator.to_image.bias.add_(0.5)
    save_generator(tmp_path / "g.pt", generator, initial_state=initial, steps=3)
    rebuilt, meta = load_generator(tmp_path / "g.pt")
    z = torch.randn(2, 8)
    torch.testing.assert_close(rebuilt(z), generator.eval()(z))
    untrained, _ = load_generator(tmp_path / "g.pt", untrained=True)
    assert not torch.allclose(untrained(z), generator(z))
    assert rebuilt.spec["kind"] == "base" and "rule" not in rebuilt.spec and meta["steps"] == 3


def test_small_lightgan_has_the_parameter_count_the_architecture_implies():
    """16 px, 3 channels, latent 4, fmap_max 8, coef 4. Block 0 reads the 4 px map (the latent's
    4 features) and makes 2^(4-2) = 4; block 1 reads the 8 px map and makes 2^(4-3) = 2. No SLE
    below 128 px, no attention.
        initial  ConvTranspose2d(4, 8, 4): 4*8*16 + 8 = 520;  BatchNorm2d(8): 16        536
        block 0  Conv2d(4, 2*4, 4): 4*8*16 + 8 = 520;  noise scale 1;  BatchNorm2d(8): 16  537
        block 1  Conv2d(4, 2*2, 4): 4*4*16 + 4 = 260;  noise scale 1;  BatchNorm2d(4): 8   269
        to_image Conv2d(2, 3, 3): 2*3*9 + 3                                                  57
                                                                                   total 1399
    """
    spec = base_spec(latent_dim=4, fmap_max=8, fmap_inverse_coef=4, attn_res_layers=[])
    generator = build_generator(spec)
    assert [n_params(part) for part in generator.blocks] == [537, 269]
    assert n_params(generator.initial) == 536 and n_params(generator.to_image) == 57
    assert n_params(generator) == 1399


def test_skip_excitation_has_the_parameter_count_the_architecture_implies():
    """128 px, coef 7, fmap_max 8: the 16 px map has min(2^(7-3), 8) = 8 features, the 128 px
    map 2^(7-6) = 2. SLE(8 -> 2): logits Conv2d(8, 1, 1) 9, Conv2d(8, max(3, 2 // 2) = 3, 1)
    27, Conv2d(3, 2, 1) 8: 44."""
    spec = base_spec(image_size=128, fmap_max=8, fmap_inverse_coef=7, attn_res_layers=[])
    generator = build_generator(spec)
    assert list(generator.excitations) == ["16"]
    assert n_params(generator.excitations) == 44


def test_generator_specs_hold_only_their_kind_s_keys():
    """The painter's spec is the one it had before the baseline existed: same checkpoints."""
    fpa = GeneratorConfig().spec(image_size=64, channels=3)
    assert set(fpa) == {"kind", "latent_dim", "input_generator", "rule", "chunk_dim",
                        "chunk_proj_dim", "lstm_hidden", "steps", "per_row_lr",
                        "full_first_step", "image_size", "channels"}  # fmt: skip
    base = GeneratorConfig(kind="base").spec(image_size=64, channels=3)
    assert set(base) == {"kind", "latent_dim", "fmap_max", "fmap_inverse_coef",
                         "attn_res_layers", "image_size", "channels"}  # fmt: skip


def test_the_unet_refuses_a_generator_that_is_not_a_painter():
    with pytest.raises(GeneratorKindError, match="generator.kind: fpa"):
        build_generator(
            {"kind": "fpa+unet", "painter": base_spec(), "unet": {"base_channels": 8, "levels": 2}}
        )
