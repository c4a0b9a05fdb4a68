"""The paper's tables: variants written over a dataset's config, and `dvc repro table/dvc.yaml`
over datasets x models in a temporary copy of the repository."""

import json
import sqlite3

import pytest
import yaml
from tiny_project import TINY, make_project, sh, tool_env
from typer.testing import CliRunner

from pipeline.config import ParamsError, load_params, validate_params
from pipeline.report import EnteredFIDsError, load_entered
from stages.cli import app

VARIANTS = {
    "lightgan": {"generator": {"kind": "base", "fmap_max": 8}},
    "fpa-v2": {"generator": {"kind": "fpa", "input_generator": "v2"}},
    "fpa-v2-t8": {"generator": {"kind": "fpa", "input_generator": "v2", "steps": 8}},
}
TABLE = {
    "datasets": ["squares"],
    "models": ["lightgan", "fpa-v2", "fpa-v2-t8"],
    "denoised": ["fpa-v2"],
    "variants": VARIANTS,
}


def test_a_variant_is_written_over_the_dataset_config(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"table": TABLE}))
    config = tmp_path / "dataset.yaml"
    config.write_text(yaml.safe_dump(TINY))
    variants_from = tmp_path / "params.yaml"
    cfg = load_params(config, variant="fpa-v2-t8", variants_from=variants_from)
    assert (cfg.generator.steps, cfg.generator.lstm_hidden) == (8, 16)  # T changed, the rest kept
    assert load_params(config, variant="lightgan", variants_from=variants_from).generator.kind == (
        "base"
    )
    with pytest.raises(ParamsError, match="'nope' is not in table.variants .*known: fpa-v2"):
        load_params(config, variant="nope", variants_from=variants_from)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"models": ["x"]}, "models names x, which table.variants does not list"),
        ({"variants": {"a": {}}, "models": ["a"], "denoised": ["b"]}, "denoised names b"),
        ({"variants": {"a": {"generator": {"kind": "gan"}}}}, "in variant 'a', generator.kind"),
        ({"variants": {"a": {"trian": {}}}}, "in variant 'a', trian is not a known parameter"),
        ({"datasets": ["CelebA 64"]}, "'CelebA 64' is not a name"),
    ],
)
def test_bad_table_sections_are_one_sentence(table, message):
    with pytest.raises(ParamsError, match=message):
        validate_params({"table": table})


def test_bad_entered_fids_are_refused_by_name(tmp_path):
    path = tmp_path / "entered.yaml"
    path.write_text("StyleGAN2:\n  celeba: {fid: -3}\n")
    with pytest.raises(EnteredFIDsError, match=r"StyleGAN2.celeba.fid must be a non-negative"):
        load_entered(path)
    path.write_text("StyleGAN2:\n  celeba: {fid: 5.1, paper: yes}\n")
    with pytest.raises(EnteredFIDsError, match="must be a mapping of fid, n, protocol, source"):
        load_entered(path)


def test_unknown_variant_through_the_cli_is_one_sentence():
    result = CliRunner().invoke(app, ["train", "--variant", "nope"])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "'nope' is not in table.variants of params.yaml" in result.output


@pytest.fixture(scope="module")
def table_project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("table"), {"table": TABLE})
    dataset = yaml.safe_load((root / "params.yaml").read_text())  # the tiny project's params
    del dataset["table"]
    (root / "configs/squares.yaml").write_text(yaml.safe_dump(dataset, sort_keys=False))
    entered = "StyleGAN2:\n  squares: {fid: 1.5, n: 50k vs all, source: typed in by a test}\n"
    (root / "reports/reference_fids.yaml").write_text(entered)
    env = tool_env()
    sh("git", "add", "-A", cwd=root)
    return root, env, sh("dvc", "repro", "table/dvc.yaml", cwd=root, env=env)


def test_table_repro_fills_every_cell_of_both_tables(table_project):
    root, _, log = table_project
    for stage in ("prepare@squares", "train@squares-fpa-v2-t8", "denoise@squares-fpa-v2"):
        assert f"Running stage 'table/dvc.yaml:{stage}'" in log
    table = (root / "reports/table.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| model")}  # fmt: skip
    assert rows["StyleGAN2 (entered)"] == "1.50 (50k vs all)"
    for label in ("LightGAN", "FPA v2", "FPA v2 + U-Net", "FPA v2, T = 4", "FPA v2, T = 8"):
        assert rows[label].endswith("(n 12/24, clean)"), (label, table)
    assert "FPA v2, T = 8" not in table.split("## Painting steps")[0]  # only in table 2
    record = json.loads((root / "metrics/table/squares/fpa-v2-unet.json").read_text())
    assert (record["kind"], record["unet"], record["steps"], record["variant"]) == (
        "fpa", True, 4, "fpa-v2"
    )  # fmt: skip
    assert json.loads((root / "metrics/table/squares/lightgan.json").read_text())["kind"] == "base"
    assert (root / "reports/table/squares/fpa-v2-t8/painting.gif").is_file()
    assert (root / "reports/table/squares/lightgan/samples_base.png").is_file()


def test_table_runs_are_tracked_and_leave_the_main_pipeline_alone(table_project):
    root, env, _ = table_project
    db = sqlite3.connect(root / "mlflow.db")
    stages = [s for (s,) in db.execute("select value from tags where key = 'dvc.stage'")]
    assert sorted(stages) == sorted(  # and none of the main pipeline
        ["prepare", "reference", "denoise", "report"]
        + ["train", "evaluate", "render"] * 3
        + ["evaluate"]
    )
    runs = {v for (v,) in db.execute("select value from tags where key = 'fpa.run'")}
    assert {"squares", "squares/lightgan", "squares/fpa-v2", "squares/fpa-v2-t8"} <= runs
    names = {n for (n,) in db.execute("select name from runs")}
    assert "train-squares/fpa-v2-t8-workspace" in names  # told apart in the MLflow UI
    again = sh("dvc", "repro", "table/dvc.yaml", cwd=root, env=env)
    assert "Running stage" not in again
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["table"]["variants"]["fpa-v2-t8"]["train"] = {"lr": 1e-4}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = sh("dvc", "repro", "table/dvc.yaml", cwd=root, env=env)
    ran = sorted(line.split("'")[1] for line in changed.splitlines() if "Running stage" in line)
    assert ran == [
        "table/dvc.yaml:evaluate@squares-fpa-v2-t8",
        "table/dvc.yaml:render@squares-fpa-v2-t8",
        "table/dvc.yaml:report",
        "table/dvc.yaml:train@squares-fpa-v2-t8",
    ]
