"""The GAN loop: a resumed run equals an uninterrupted one, bit for bit, on the CPU."""

import numpy as np
import pytest
import torch

from pipeline.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from pipeline.discriminator import Discriminator
from pipeline.generators import build_generator
from pipeline.train import GANTrainer, TrainingError, load_latest_checkpoint, save_checkpoint

SPEC = {
    **GeneratorConfig(latent_dim=8, chunk_proj_dim=8, lstm_hidden=16, steps=4).model_dump(),
    "image_size": 16,
    "channels": 3,
}
DISC = DiscriminatorConfig(
    fmap_max=8, attn_res_layers=[], aux_channels=8, aux_attention=False, decoder_rounds=1
)
CFG = TrainConfig(
    batch_size=4, ema_start=1, ema_every=1, ema_reset_every=3, ema_reset_until=3,
    checkpoint_every=2, log_every=1, aug_prob=0.5, hflip=True,
)  # fmt: skip
IMAGES = np.random.default_rng(0).integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)


def run(checkpoint_dir, steps=6, on_log=None, logged_through=0):
    torch.manual_seed(0)
    generator = build_generator(SPEC)
    disc = Discriminator(image_size=16, channels=3, cfg=DISC.model_dump())
    trainer = GANTrainer(
        generator=generator, discriminator=disc, images=IMAGES, cfg=CFG, seed=0,
        config={"test": 1}, checkpoint_dir=checkpoint_dir,
    )  # fmt: skip
    return trainer.train(steps, on_log=on_log, logged_through=logged_through)


def test_resumed_training_is_bit_identical_and_logs_every_step_once(tmp_path):
    reference = run(tmp_path / "straight")

    logged = []

    def stop_after_five(step, losses):
        logged.append(step)
        if step == 5:  # the newest checkpoint is at step 4: step 5 is logged, then lost
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", on_log=stop_after_five)
    resumed = run(
        tmp_path / "resumed", on_log=lambda step, losses: logged.append(step), logged_through=5
    )

    assert logged == [1, 2, 3, 4, 5, 6]
    for (name, a), b in zip(
        reference.generator.state_dict().items(), resumed.generator.state_dict().values()
    ):
        assert torch.equal(a, b), name
    assert reference.history == resumed.history


def test_checkpoint_of_other_settings_is_refused(tmp_path):
    save_checkpoint(tmp_path, {"step": 1, "config": {"lr": 1, "seed": 0}})
    with pytest.raises(TrainingError, match="lr"):
        load_latest_checkpoint(tmp_path, {"lr": 2, "seed": 0})


def test_half_written_checkpoint_is_never_resumed_from(tmp_path):
    save_checkpoint(tmp_path, {"step": 2, "config": {}})
    (tmp_path / "step_000000004.pt.partial").write_bytes(b"truncated")
    (tmp_path / "step_000000006.pt").write_bytes(b"garbage")
    assert load_latest_checkpoint(tmp_path, {})["step"] == 2


def test_nan_loss_stops_with_the_step_named(tmp_path):
    images = IMAGES.copy()
    torch.manual_seed(0)
    generator = build_generator(SPEC)
    with torch.no_grad():
        generator.heads.bias.fill_(float("nan"))
    disc = Discriminator(image_size=16, channels=3, cfg=DISC.model_dump())
    with pytest.raises(TrainingError, match="at step 1; no checkpoint had been written yet"):
        GANTrainer(
            generator=generator, discriminator=disc, images=images, cfg=CFG, seed=0,
            config={}, checkpoint_dir=tmp_path,
        ).train(2)  # fmt: skip
    assert not list(tmp_path.glob("*.pt"))


def test_bf16_autocast_and_channels_last_train_with_a_float32_learning_rule(tmp_path):
    torch.manual_seed(0)
    generator = build_generator(SPEC)
    disc = Discriminator(image_size=16, channels=3, cfg=DISC.model_dump())
    cfg = CFG.model_copy(update={"amp": True, "channels_last": True})
    trainer = GANTrainer(
        generator=generator, discriminator=disc, images=IMAGES, cfg=cfg, seed=0,
        config={}, checkpoint_dir=tmp_path,
    )  # fmt: skip
    result = trainer.train(3)
    assert all(np.isfinite(v) for v in result.last_losses.values())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        painting = generator.paint(torch.randn(2, SPEC["latent_dim"]))
    assert painting.weights.dtype == torch.float32


def test_compiled_training_matches_eager(tmp_path):
    """torch.compile'd G and D give the eager losses; penalty steps fall back to eager D."""

    def losses(compile_, where):
        torch.manual_seed(0)
        trainer = GANTrainer(
            generator=build_generator(SPEC),
            discriminator=Discriminator(image_size=16, channels=3, cfg=DISC.model_dump()),
            images=IMAGES, cfg=CFG.model_copy(update={"compile": compile_, "aug_prob": 0.0}),
            seed=0, config={}, checkpoint_dir=where,
        )  # fmt: skip
        return trainer.train(2).history

    eager, compiled = losses(False, tmp_path / "eager"), losses(True, tmp_path / "compiled")
    assert [h["step"] for h in compiled] == [1, 2]
    for a, b in zip(eager, compiled):
        assert b == pytest.approx(a, rel=1e-4, abs=1e-5)
