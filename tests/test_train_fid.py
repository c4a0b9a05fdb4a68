"""Training-time FID: the best EMA generator is kept, survives an interruption, and nothing
non-finite is ever recorded. The FID itself is stood in for by a scripted score per step."""

import math

import numpy as np
import pytest
import torch
import yaml
from test_train import DISC, IMAGES, SPEC
from typer.testing import CliRunner

from pipeline.config import TrainConfig
from pipeline.discriminator import Discriminator
from pipeline.fid import FIDError
from pipeline.generators import build_generator, load_generator
from pipeline.train import BEST_FILE, GANTrainer, load_latest_checkpoint
from stages.cli import app

CFG = TrainConfig(
    batch_size=4, ema_start=1, ema_every=1, ema_reset_every=3, ema_reset_until=3,
    checkpoint_every=2, log_every=1, fid_every=2, fid_samples=2,
)  # fmt: skip
SCORES = {2: 5.0, 4: 1.0, 6: 3.0}  # the best is in the middle, not at the end


class ScriptedFID:
    """A stand-in for GeneratorFID: SCORES[step], and a copy of the EMA weights it was shown."""

    def __init__(self, scores=SCORES, fail_at=None):
        self.scores, self.fail_at, self.seen = scores, fail_at, {}
        self.trainer = None

    def __call__(self, generator):
        step = self.trainer.step
        if step == self.fail_at:
            self.fail_at = None
            raise KeyboardInterrupt  # as if killed in the middle of the FID
        self.seen[step] = {k: v.clone() for k, v in generator.state_dict().items()}
        score = self.scores[step]
        if isinstance(score, Exception):
            raise score
        return score


def trainer(checkpoint_dir, scorer, cfg=CFG):
    torch.manual_seed(0)
    made = GANTrainer(
        generator=build_generator(SPEC),
        discriminator=Discriminator(image_size=16, channels=3, cfg=DISC.model_dump()),
        images=IMAGES, cfg=cfg, seed=0, config={"test": 1}, checkpoint_dir=checkpoint_dir,
        fid_scorer=scorer,
    )  # fmt: skip
    scorer.trainer = made
    return made


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def best_step_in_file(folder):
    """Without building a model, which would move the global random state training uses."""
    return torch.load(folder / BEST_FILE, weights_only=True)["meta"]["steps"]


def test_the_best_ema_generator_is_kept_and_exported(tmp_path):
    scorer = ScriptedFID()
    logged = []
    run = trainer(tmp_path, scorer)
    result = run.train(6, on_log=lambda step, metrics: logged.append((step, *metrics)))

    assert [step for step, *keys in logged if keys == ["fid_train"]] == [2, 4, 6]
    assert (result.best.step, result.best.fid) == (4, 1.0)
    assert_same_state(result.best.state, scorer.seen[4])
    best, meta = load_generator(tmp_path / BEST_FILE)
    assert_same_state(best.state_dict(), scorer.seen[4])
    assert meta["selected"] == "best" and meta["steps"] == 4 and meta["fid_train"] == 1.0
    untrained, _ = load_generator(tmp_path / BEST_FILE, untrained=True)
    torch.manual_seed(0)
    assert_same_state(untrained.state_dict(), build_generator(SPEC).state_dict())

    run.export(tmp_path / "last.pt", selected="last")
    last, meta = load_generator(tmp_path / "last.pt")
    assert_same_state(last.state_dict(), result.generator.state_dict())
    assert meta["selected"] == "last" and meta["steps"] == 6 and meta["fid_train"] is None
    checkpoint = load_latest_checkpoint(tmp_path, {"test": 1})
    assert (checkpoint["best"]["step"], checkpoint["best"]["fid"]) == (4, 1.0)


def test_killed_in_the_middle_of_an_fid_the_resumed_run_keeps_the_same_best(tmp_path):
    straight = ScriptedFID()
    reference = trainer(tmp_path / "straight", straight).train(6)

    logged = []
    first = ScriptedFID(fail_at=4)  # checkpoint 4 is never written: resume from step 2
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path / "resumed", first).train(6, on_log=lambda s, m: logged.append((s, *m)))
    assert best_step_in_file(tmp_path / "resumed") == 2
    (tmp_path / "resumed" / BEST_FILE).write_bytes(b"a best.pt from some lost future")
    second = ScriptedFID()
    resumed = trainer(tmp_path / "resumed", second)
    assert resumed.step == 2 and resumed.best.step == 2
    assert best_step_in_file(tmp_path / "resumed") == 2, "rewritten from the checkpoint"
    result = resumed.train(
        6,
        on_log=lambda s, m: logged.append((s, *m)),
        logged_through=4,
        fid_logged_through=2,
    )

    assert [s for s, *keys in logged if keys == ["fid_train"]] == [2, 4, 6]
    assert [s for s, *keys in logged if "d_loss" in keys] == [1, 2, 3, 4, 5, 6]
    assert (result.best.step, result.best.fid) == (reference.best.step, reference.best.fid)
    assert_same_state(result.best.state, reference.best.state)
    assert_same_state(
        load_generator(tmp_path / "resumed" / BEST_FILE)[0].state_dict(),
        load_generator(tmp_path / "straight" / BEST_FILE)[0].state_dict(),
    )


def test_a_nan_or_failed_fid_is_never_best_nor_logged(tmp_path):
    scores = {2: math.nan, 4: FIDError("Generated images contain NaN"), 6: 7.0}
    logged = []
    result = trainer(tmp_path, ScriptedFID(scores)).train(
        6, on_log=lambda step, metrics: logged.append((step, metrics))
    )
    assert [(s, m) for s, m in logged if "fid_train" in m] == [(6, {"fid_train": 7.0})]
    assert (result.best.step, result.best.fid) == (6, 7.0)

    none = trainer(tmp_path / "none", ScriptedFID(dict.fromkeys((2, 4, 6), math.inf))).train(6)
    assert none.best is None and not (tmp_path / "none" / BEST_FILE).exists()


@pytest.mark.parametrize("every", [0, None])
def test_fid_off_never_scores(tmp_path, every):
    scorer = ScriptedFID()
    result = trainer(tmp_path, scorer, CFG.model_copy(update={"fid_every": every})).train(2)
    assert result.best is None and not scorer.seen
    assert load_latest_checkpoint(tmp_path, {"test": 1})["best"] is None


def test_fid_on_without_reference_statistics_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "images.npy", IMAGES)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"fid_every": 5}}))
    result = CliRunner().invoke(
        app, ["train", "--data", "data", "--reference", "nowhere", "--out", "out"]
    )
    assert result.exit_code == 1
    assert "nowhere/stats.npz is missing and train.fid_every is 5" in result.output
    assert len(result.output.strip().splitlines()) == 1
