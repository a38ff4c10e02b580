"""`storm check`: what can be checked without reading X, each problem one `error:` line."""

import json

import numpy as np
import pytest

from storm import io
from storm.check import check_models
from storm.errors import SpecError
from storm.grid import plan
from storm.spec import DatasetSpec


def test_checks_pass_on_good_input(small_h5ad, run_cli):
    plan = small_h5ad.parent / "plan.json"
    result = run_cli("check", "--input", str(small_h5ad), "--models", "control_mean,linear_additive",
                     "--model-set", "linear_additive.max_epochs=3", "--plan", str(plan),
                     "--", "--strategy", "transfer", "--min-cells", "5")
    assert result.returncode == 0, result.stderr
    assert [run["name"] for run in json.loads(plan.read_text())["runs"]] == ["control_mean", "linear_additive"]


@pytest.mark.parametrize("args,message", [
    (["--models", "linear_additive", "--model-set", "linear_additive.max_epoch=3"],
     "error: unknown config key(s) max_epoch for LinearAdditive"),
    (["--models", "linear_additive", "--model-set", "lnear_additive.max_epochs=3"],
     "error: model override 'lnear_additive.max_epochs' names model 'lnear_additive', which is not installed"),
    (["--models", "latent_additive", "--model-set", "latent_additive.embed_key=X_scvi"],
     "error: model latent_additive: embedding 'X_scvi' (embed_key) is not in obsm"),
    (["--models", "nope"], "error: unknown model 'nope'"),
    (["--models", "linear_additive", "--model-set", "linear_additive.lr=1e-3|[oops"],
     "error: --model_set linear_additive.lr=[oops: the value is not valid YAML"),
    (["--models", "linear_additive", "--model-set", "linear_additive.lr"],
     "error: --model_set item 'linear_additive.lr' must be <model>.<key>=<value>"),
    (["--models", "linear_additive", "--model-configs", "[1]"],
     "error: --model-configs must be a JSON mapping"),
    (["--models", "linear_additive", "--sweep-metric", "n_cells"], "error: --sweep_metric n_cells: not a metric"),
    (["--perturbation-key", "gene"], "error: obs column 'gene' not found"),
    (["--", "--strategy", "transfer", "--test-fraction", "1.5"], "error: test_fraction must be between 0 and 1"),
    (["--", "--covariate-keys", "cell_type,dose"], "error: obs column 'dose' not found"),
    (["--", "--strategy", "manual"], "error: a manual holdout file goes with --strategy manual"),
    (["--", "--strategy", "transfer", "--min-cells", "many"], "error: Invalid value for '--min-cells'"),
])
def test_each_problem_is_one_line(small_h5ad, run_cli, args, message):
    result = run_cli("check", "--input", str(small_h5ad), *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_holdout_yaml_is_one_line(tmp_path, small_h5ad, run_cli):
    holdout = tmp_path / "holdout.yaml"
    holdout.write_text("test:\n  cell_types: [CT1\n")
    result = run_cli("check", "--input", str(small_h5ad), "--", "--strategy", "manual",
                     "--manual-holdout", str(holdout))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {holdout} is not valid YAML (line ")


def test_spec_embedding_is_checked_and_feeds_models(tmp_path, small_adata):
    adata = small_adata.copy()
    adata.obsm["X_pca"] = np.zeros((adata.n_obs, 4), dtype=np.float32)
    io.write_h5ad(adata, tmp_path / "d.h5ad")
    spec = DatasetSpec(embed_key="X_pca")
    check_models(plan(["latent_additive", "linear_additive"]), spec, {"obsm": ["X_pca"], "layers": []})
    with pytest.raises(SpecError, match="latent_additive: embedding 'X_pca'"):
        check_models(plan(["latent_additive"]), spec, {"obsm": [], "layers": []})
    from storm.models import get_model_class

    model = get_model_class("latent_additive")(spec)
    assert model.input_key == "X_pca"  # the dataset's embedding, as the model has none of its own
    assert get_model_class("linear_additive")(spec).input_key is None  # it takes no embedding


def test_spec_json_is_strict(small_h5ad, run_cli):
    result = run_cli("validate", "--input", str(small_h5ad), "--out", "qc.json", "--spec", '{"perturbaton_key": "g"}')
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unknown dataset spec key(s) perturbaton_key")
    both = run_cli("validate", "--input", str(small_h5ad), "--out", "qc.json", "--spec", "{}", "--batch-key", "b")
    assert both.returncode == 2 and "--spec excludes --batch-key" in both.stderr
