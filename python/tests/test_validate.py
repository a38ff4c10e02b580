import json

import numpy as np
import pytest

from storm import io
from storm.errors import InputError, SpecError
from storm.spec import DatasetSpec
from storm.validate import check_obs, validate


def test_valid_dataset_summary(small_h5ad, small_adata):
    qc = validate(small_h5ad, DatasetSpec())
    assert qc["n_cells"] == small_adata.n_obs
    assert qc["n_genes"] == small_adata.n_vars
    assert qc["n_perturbations"] == 8
    assert qc["n_cell_types"] == 3
    assert qc["scale"] == "counts"


@pytest.mark.parametrize(
    "spec, message",
    [
        (DatasetSpec(perturbation_key="gene"), "obs column(s) gene not found"),
        (DatasetSpec(control_value="non-targeting"), "control value 'non-targeting' not found"),
        (DatasetSpec(batch_key="plate"), "obs column(s) plate not found"),
    ],
)
def test_spec_mismatch(small_adata, spec, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_obs(small_adata.obs, spec)


def test_cell_type_without_controls(small_adata):
    obs = small_adata.obs.copy()
    drop = (obs["cell_type"] == "CT1") & (obs["perturbation"] == "control")
    with pytest.raises(SpecError, match="CT1 have no control cells"):
        check_obs(obs[~drop], DatasetSpec())


def test_empty_and_null(small_adata):
    with pytest.raises(InputError, match="no cells"):
        check_obs(small_adata.obs.iloc[:0], DatasetSpec())
    obs = small_adata.obs.copy()
    obs["cell_type"] = obs["cell_type"].astype(object)
    obs.iloc[5, obs.columns.get_loc("cell_type")] = None
    with pytest.raises(SpecError, match="1 empty value"):
        check_obs(obs, DatasetSpec())


@pytest.mark.parametrize("bad, message", [(np.nan, "NaN"), (-1.0, "negative")])
def test_bad_values(tmp_path, small_adata, bad, message):
    adata = small_adata.copy()
    adata.X = adata.X.toarray()
    adata.X[0, 0] = bad
    path = tmp_path / "bad.h5ad"
    io.write_h5ad(adata, path)
    with pytest.raises(InputError, match=message):
        validate(path, DatasetSpec())


def test_cli_bad_input_one_line_no_output(tmp_path, small_h5ad, run_cli):
    out = tmp_path / "qc.json"
    result = run_cli("validate", "--input", str(small_h5ad), "--out", str(out), "--control-value", "NT")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: control value 'NT' not found")
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_cli_unknown_model(tmp_path, small_h5ad, run_cli):
    result = run_cli("check", "--input", str(small_h5ad), "--models", "control_mean,nope")
    assert result.returncode == 2
    assert "error: unknown model 'nope'" in result.stderr


def test_cli_writes_qc(tmp_path, small_h5ad, run_cli):
    out = tmp_path / "qc.json"
    result = run_cli("validate", "--input", str(small_h5ad), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["n_cell_types"] == 3
