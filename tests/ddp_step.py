"""Run by test_distributed under torchrun (or alone): one discriminator and one generator step
of a tiny GAN; rank 0 saves the gradients of both to the folder given as argv[1]."""

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from pipeline.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from pipeline.discriminator import Discriminator
from pipeline.distributed import init_world
from pipeline.generators import build_generator
from pipeline.train import GANTrainer

world = init_world(torch.device("cpu"))
spec = {**GeneratorConfig(latent_dim=8, chunk_proj_dim=8, lstm_hidden=16, steps=4).model_dump(),
        "image_size": 16, "channels": 3}  # fmt: skip
disc_cfg = DiscriminatorConfig(fmap_max=8, aux_channels=8, decoder_rounds=1, attn_res_layers=[16])
torch.manual_seed(0)
generator, disc = (
    build_generator(spec),
    Discriminator(image_size=16, channels=3, cfg=disc_cfg.model_dump()),
)
images = np.random.default_rng(0).integers(0, 256, (30, 16, 16, 3), dtype=np.uint8)
trainer = GANTrainer(
    generator=generator, discriminator=disc, images=images, seed=0, config={}, world=world,
    cfg=TrainConfig(batch_size=4, hflip=True), checkpoint_dir=Path(tempfile.mkdtemp()),
)  # fmt: skip
grads = {}
for name, module, optimizer, step in (
    ("d", disc, trainer.opt_d, trainer.discriminator_step),
    ("g", generator, trainer.opt_g, trainer.generator_step),
):
    optimizer.step = lambda: None  # keep the weights: compare gradients of the same point
    losses = step()  # step 0: the gradient penalty is on
    grads.update({f"{name}.{k}": p.grad.clone() for k, p in module.named_parameters()})
    grads.update({f"loss.{k}": torch.tensor(v) for k, v in losses.items()})
if world.is_main:
    torch.save(grads, Path(sys.argv[1]) / f"grads_{world.size}.pt")
