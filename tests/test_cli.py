"""The `fpa` command: every stage listed, and user mistakes answered in one sentence, exit 1."""

import pytest
import yaml
from typer.testing import CliRunner

from stages.cli import app

runner = CliRunner()
STAGES = ["prepare", "reference", "train", "denoise", "evaluate", "render", "report"]


def test_help_lists_every_stage_with_one_line():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for stage in STAGES:
        assert stage in result.output


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"train": {"lrr": 0.1}}, "train.lrr is not a known parameter"),
        ({"train": {"steps": "many"}}, "train.steps: Input should be a valid integer"),
        ({"train": {"lr": -1}}, "train.lr: Input should be greater than 0"),
        ({"data": {"image_size": 48}}, "data.image_size: must be a power of two"),
        ({"colour": 1}, "colour is not a known parameter"),
        ({"generator": {"latent_dim": 10**7}}, "latent_dim: Input should be less than or equal"),
        ({"generator": {"steps": 10**5}}, "generator.steps: Input should be less than or equal"),
        ({"generator": {"kind": "gan"}}, "generator.kind: Input should be 'fpa' or 'base'"),
        ({"generator": {"rule": "ojas"}}, "generator.rule: Input should be 'delta', 'hebbian'"),
        ({"generator": {"attn_res_layers": [24]}}, "attn_res_layers: every width must be"),
        ({"fid": {"protocol": "jpeg"}}, "fid.protocol: Input should be 'clean' or 'paper'"),
        (
            {"fid": {"protocol": "paper", "n_real": 1000}},
            "fid: protocol paper uses all real images, so n_real must be null",
        ),
        ({"train": {"betas": [2.0, 0.9]}}, "train.betas.0: Input should be less than 1"),
        ({"train": {"device": "gpu"}}, "train.device: must be auto, cpu, cuda or cuda:N"),
        ({"train": {"steps": True}}, "train.steps: must be a number, not true/false"),
        ({"train": {"lr": float("inf")}}, "train.lr: Input should be a finite number"),
        ({"discriminator": {"attn_res_layers": [33]}}, "attn_res_layers: every width must be"),
        ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
        ({"data": {"background": [300, 0, 0]}}, "data.background.0: Input should be less than"),
        (
            {"train": {"batch_size": 32, "processes": 3}},
            "train: batch_size 32 must be a multiple of processes 3; fix it",
        ),
    ],
)
@pytest.mark.parametrize("stage", ["prepare", "train", "evaluate"])
def test_bad_params_give_one_sentence_and_exit_1(tmp_path, stage, params, expected):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    result = runner.invoke(app, [stage, "--params", str(path)])
    assert result.exit_code == 1
    assert expected in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_yaml_1_2_floats_are_numbers(tmp_path):
    from pipeline.config import load_params

    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 1e-5\n")  # PyYAML reads 1e-5 as a string
    assert load_params(path).train.lr == 1e-5


def test_broken_yaml_and_missing_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    result = runner.invoke(app, ["train", "--params", str(path)])
    assert result.exit_code == 1 and "is not valid YAML at line" in result.output
    result = runner.invoke(app, ["train", "--params", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_summary_prints_the_paper_parameter_counts():
    result = runner.invoke(app, ["summary", "--paper"])
    assert result.exit_code == 0, result.output
    parts = {
        "generator": "6,437,891", "initial_state": "1,050,624", "expand": "262,656",
        "project": "1,152", "lstm": "4,726,784", "heads": "396,675", "discriminator": "12,326,632",
    }  # fmt: skip
    for part, number in parts.items():
        assert any(f" {part} " in line and number in line for line in result.output.splitlines())


def test_summary_counts_the_baseline_per_part(tmp_path):
    path = tmp_path / "params.yaml"
    small = {"kind": "base", "latent_dim": 4, "fmap_max": 8, "fmap_inverse_coef": 4}
    path.write_text(yaml.safe_dump({"data": {"image_size": 16}, "generator": small}))
    result = runner.invoke(app, ["summary", "--params", str(path)])
    assert result.exit_code == 0, result.output
    assert "LightGAN baseline" in result.output
    for part, count in [("generator", "1,399"), ("initial", "536"), ("blocks", "806")]:
        assert any(part in line and count in line for line in result.output.splitlines())


def test_oja_and_the_baseline_are_valid_choices():
    from pipeline.config import validate_params

    assert validate_params({"generator": {"rule": "oja", "per_row_lr": True}}).generator.rule
    base = validate_params({"generator": {"kind": "base", "rule": "oja"}}).generator
    assert "rule" not in base.spec(image_size=32, channels=3)  # the painter's keys are ignored


def test_evaluate_refuses_reference_statistics_of_another_protocol(tmp_path):
    import json

    import numpy as np

    from pipeline import fid

    reference = tmp_path / "reference"
    fid.Statistics(mu=np.zeros(4), sigma=np.eye(4), n=10).save(reference / "stats.npz")
    record = {"dataset": "x", "protocol": fid.protocol(network_path=None, n_real=10, n_fake=None)}
    (reference / "stats.json").write_text(json.dumps(record))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"fid": {"protocol": "paper", "n_real": None}}))
    missing = str(tmp_path / "no-model.pt")  # refused before any model is read
    args = ["--generator", f"fpa={missing}", "--out", str(tmp_path / "metrics")]
    result = runner.invoke(
        app, ["evaluate", "--params", str(params), "--reference", str(reference), *args]
    )
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "computed under FID protocol 'clean', not 'paper' as asked" in result.output
    assert not (tmp_path / "metrics").exists()
