import anndata as ad
import pandas as pd
import pytest
from click.testing import CliRunner

from storm.cli import cli
from storm.cli.base import parse_overrides

COMMANDS = ["synth", "check", "subsample", "validate", "split", "prepare", "genes", "train", "predict", "reference",
            "evaluate", "report", "models", "velocity", "loaders synth", "loaders train", "loaders report"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    result = CliRunner().invoke(cli, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_models_lists_each_model_and_shows_a_config():
    header, *rows = CliRunner().invoke(cli, ["models"]).output.splitlines()
    assert header.split()[:5] == ["model", "family", "environment", "installed", "resume"]
    names = [line.split()[0] for line in rows]
    assert names == sorted(names) and {"state", "latent_additive", "scgen", "cpa", "biolord", "cellot"} <= set(names)
    cpa = next(line for line in rows if line.startswith("cpa "))
    assert cpa.split()[1:3] == ["cpa-tools", "cpa"] and "restarts training" in cpa
    shown = CliRunner().invoke(cli, ["models", "--config", "state"]).output
    assert "lora:" in shown and "size: tiny" in shown


def test_parse_overrides():
    assert parse_overrides(("max_epochs=5", "lr=1e-3", "inject_covariates=true", "name=a=b")) == {
        "max_epochs": 5, "lr": 1e-3, "inject_covariates": True, "name": "a=b"}


def test_usage_error_exit_2(run_cli):
    result = run_cli("train", "--model", "x")
    assert result.returncode == 2
    assert result.stderr.startswith("error: Missing option") and "storm train --help" in result.stderr


def test_steps_chain_through_the_cli(tmp_path, run_cli):
    """synth -> validate -> split -> prepare -> train -> predict -> evaluate -> report, as the pipeline calls them."""
    data = tmp_path / "d.h5ad"
    split, genes = tmp_path / "seed0" / "split.parquet", tmp_path / "genes.csv"
    steps = [
        ("synth", "--out", data, "--n-genes", "80", "--n-perturbations", "4", "--n-cell-types", "2",
         "--cells-per-pair", "12", "--controls-per-cell-type", "30"),
        ("validate", "--input", data, "--out", tmp_path / "qc.json"),
        ("split", "--input", data, "--out-dir", tmp_path, "--seed", "0", "--min-cells", "5"),
        ("prepare", "--input", data, "--out", tmp_path / "p.h5ad"),
        ("genes", "--prepared", tmp_path / "p.h5ad", "--split", split, "--n-top-genes", "40", "--out", genes),
        ("train", "--prepared", tmp_path / "p.h5ad", "--split", split, "--genes", genes, "--model", "context_mean",
         "--out-dir", tmp_path / "model"),
        ("predict", "--prepared", tmp_path / "p.h5ad", "--split", split, "--genes", genes,
         "--model-dir", tmp_path / "model", "--out", tmp_path / "pred.h5ad"),
        ("reference", "--prepared", tmp_path / "p.h5ad", "--split", split, "--genes", genes,
         "--out-dir", tmp_path / "ref"),
        ("evaluate", "--pred", tmp_path / "pred.h5ad", "--real", tmp_path / "ref" / "real.h5ad",
         "--out", tmp_path / "metrics.csv", "--dataset", "d", "--seed", "0", "--model", "context_mean",
         "--reference", tmp_path / "ref" / "reference", "--cells-out", tmp_path / "cells.h5ad"),
        ("report", tmp_path / "metrics.csv", "--out-dir", tmp_path / "report", "--cells", tmp_path / "cells.h5ad"),
    ]
    for step in steps:
        result = run_cli(*map(str, step))
        assert result.returncode == 0, f"{step[0]}: {result.stderr}"
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert {"pearson_delta", "vcc_score", "rank_rmse"} <= set(metrics["metric"])
    cells = ad.read_h5ad(tmp_path / "cells.h5ad")
    real = ad.read_h5ad(tmp_path / "ref" / "real.h5ad")
    kinds = cells.obs["source"].value_counts()
    assert set(kinds.index) == {"predicted", "real", "control"} and kinds.max() <= 300
    n_real = int((real.obs["perturbation"] != "control").sum())
    assert kinds["real"] == min(300, n_real)  # the held-out pairs' real cells, not the training cells
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Real and predicted cells" in page and (tmp_path / "report" / "figures" / "d_cells.png").is_file()


def test_train_rejects_bad_config_before_reading(tmp_path, run_cli):
    result = run_cli("train", "--prepared", str(tmp_path / "missing.h5ad"), "--split", "x.csv", "--genes",
                     "g.csv", "--model", "linear_additive", "--out-dir", str(tmp_path / "m"), "--set", "epochs=3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown config key(s) epochs")


def test_split_missing_column_one_line(tmp_path, small_h5ad, run_cli):
    result = run_cli("split", "--input", str(small_h5ad), "--out-dir", str(tmp_path / "out"),
                     "--covariate-keys", "cell_type,dose")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: obs column 'dose' not found")
    assert not (tmp_path / "out").exists()
