import json

import numpy as np
import pytest

from storm import io
from storm.errors import InputError, SpecError, StormError
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


def _write(tmp_path, adata, name="bad.h5ad"):
    path = tmp_path / name
    io.write_h5ad(adata, path, checksum=False)
    return path


def _dense(small_adata):
    adata = small_adata.copy()
    adata.X = adata.X.toarray()
    return adata


def _late(adata, value):
    """``value`` in the last cell, far past any first block of rows."""
    adata.X[-1, 7] = value
    return adata


@pytest.mark.parametrize("build, message", [
    (lambda a: _late(_dense(a), np.nan), "X holds NaN or infinite values, the first at cell"),
    (lambda a: _late(_dense(a), -2.0), "X holds negative values (e.g. -2 at cell"),
    (lambda a: _late(_dense(a), 1e30), "X holds an implausibly large value (1e+30 at cell"),
    (lambda a: _late(_dense(a), 2.5), "X looks like counts but 1 value(s) are fractional (e.g. 2.5 at cell"),
    (lambda a: _with(a, X=np.zeros(a.shape, dtype=np.float32)), "is all zeros"),
    (lambda a: _rename(a, obs=0), "cell name(s) are repeated"),
    (lambda a: _rename(a, obs=""), "cell name(s) are empty"),
    (lambda a: _rename(a, var=0), "gene name(s) are repeated"),
    (lambda a: _relabel(a, "P0++P1"), "combination 'P0++P1' has an empty part"),
    (lambda a: _relabel(a, "+P1"), "combination '+P1' has an empty part"),
    (lambda a: _relabel(a, "P1+"), "combination 'P1+' has an empty part"),
    (lambda a: _relabel(a, "P1+P1"), "combination 'P1+P1' repeats a perturbation"),
    (lambda a: _relabel(a, "control+P1"), "combination 'control+P1' includes the control value"),
    (lambda a: _relabel(a, " "), "obs column 'perturbation' has 1 blank label(s)"),
    (lambda a: _relabel(a, "control ", controls=True), "perturbation label 'control ' differs from 'control' only"),
])
def test_every_value_and_label_is_checked(tmp_path, small_adata, build, message):
    path = _write(tmp_path, build(small_adata.copy()))
    with pytest.raises(StormError) as err:
        validate(path, DatasetSpec())
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def _with(adata, **fields):
    for key, value in fields.items():
        setattr(adata, key, value)
    return adata


def _rename(adata, obs=None, var=None):
    if obs is not None:
        names = adata.obs_names.tolist()
        names[-1] = names[0] if obs == 0 else obs
        adata.obs_names = names
    if var is not None:
        names = adata.var_names.tolist()
        names[-1] = names[0]
        adata.var_names = names
    return adata


def _relabel(adata, label, controls=False):
    """Give one cell (half the controls, with ``controls``) the perturbation ``label``."""
    pert = adata.obs["perturbation"].astype(str).to_numpy().copy()
    rows = np.flatnonzero(pert == "control")[::2] if controls else [len(pert) - 1]
    pert[rows] = label
    adata.obs["perturbation"] = pert
    return adata


def _h5_surgery(path, edit):
    import h5py

    with h5py.File(path, "r+") as f:
        edit(f)


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.move("X", "layers/raw"), "has no X matrix (layers: raw)"),
    (lambda f: (f.__delitem__("obs"), f.create_dataset("obs", data=np.arange(3))), "obs"),
    (lambda f: f["X"].attrs.__setitem__("shape", np.array([5, f["X"].attrs["shape"][1]])), "X of"),
])
def test_broken_files_are_one_line(tmp_path, small_adata, run_cli, edit, message):
    path = _write(tmp_path, small_adata.copy())
    _h5_surgery(path, edit)
    out = tmp_path / "qc.json"
    result = run_cli("validate", "--input", str(path), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert not out.exists()


def test_scale_decision_is_recorded(tmp_path, small_adata):
    from storm.prepare import prepare

    logged = prepare(small_adata.copy(), DatasetSpec())
    qc = validate(_write(tmp_path, logged), DatasetSpec())
    assert qc["scale"] == "log" and "fractional" in qc["scale_reason"]


def test_optional_columns_are_checked(tmp_path, small_adata):
    adata = small_adata.copy()
    adata.obs["dose"] = 1.0
    adata.obs.iloc[-1, adata.obs.columns.get_loc("dose")] = -1.0
    path = _write(tmp_path, adata)
    with pytest.raises(SpecError, match="obs column 'dose' must hold non-negative numbers"):
        validate(path, DatasetSpec(dose_key="dose"))
    with pytest.raises(SpecError, match="embedding 'X_pca' .* is not in obsm"):
        validate(path, DatasetSpec(embed_key="X_pca"))


def test_small_counts_with_stray_fractions_are_counts_not_log(tmp_path, small_adata):
    """Counts whose maximum is below LOG_MAX with a sprinkling of fractional values were called
    log-normalised; nonzero values almost all whole are counts, so the stray ones are an error."""
    import scipy.sparse as sp

    counts = small_adata.copy()
    counts.X = sp.csr_matrix(np.minimum(small_adata.X.toarray(), 6.0))
    assert counts.X.max() < 10
    counts.X.data[[3, 300]] = 2.5
    with pytest.raises(StormError, match="X looks like counts but 2 value\\(s\\) are fractional"):
        validate(_write(tmp_path, counts), DatasetSpec())
    logged = small_adata.copy()
    logged.X = sp.csr_matrix(np.log1p(small_adata.X.toarray() * 3.0))
    (tmp_path / "log").mkdir()
    assert validate(_write(tmp_path / "log", logged), DatasetSpec())["scale"] == "log"
