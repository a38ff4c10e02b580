import anndata as ad
import numpy as np
import pandas as pd
import pytest

from approx import assert_close
from storm import io
from storm.errors import InputError
from storm.evaluate import evaluate, pseudobulk_metrics


def test_pseudobulk_metrics_by_hand():
    ctrl = np.array([[1.0, 1.0, 1.0]])
    real = np.array([[2.0, 1.0, 0.0]])   # delta (1, 0, -1)
    pred = np.array([[3.0, 1.0, -1.0]])  # delta (2, 0, -2): same direction, twice as large
    m = pseudobulk_metrics(pred, real, ctrl)
    assert_close(m["pearson_delta"], [1.0])
    assert_close(m["cosine_logfc"], [1.0])
    assert_close(m["mse"], [(1 + 0 + 1) / 3])
    assert_close(m["mae"], [(1 + 0 + 1) / 3])
    flipped = pseudobulk_metrics(2 * ctrl - real, real, ctrl)
    assert_close(flipped["pearson_delta"], [-1.0])
    no_change = pseudobulk_metrics(ctrl, real, ctrl)
    assert np.isnan(no_change["pearson_delta"][0])


def _pair_files(tmp_path, pred_X, real_X, pert, ct, genes=("g0", "g1", "g2")):
    def make(X, name):
        obs = pd.DataFrame({"perturbation": pd.Categorical(pert), "cell_type": pd.Categorical(ct)},
                           index=[f"{name}{i}" for i in range(len(pert))])
        adata = ad.AnnData(np.asarray(X, dtype=np.float32), obs=obs, var=pd.DataFrame(index=list(genes)))
        adata.uns["storm"] = {"spec": {"control_value": "control"}}
        io.write_h5ad(adata, tmp_path / f"{name}.h5ad")
        return tmp_path / f"{name}.h5ad"

    return make(pred_X, "pred"), make(real_X, "real")


def test_evaluate_long_table(tmp_path):
    ctrl = [[1, 1, 1], [1, 1, 1]]
    pert, ct = ["control", "control", "A", "A"], ["T", "T", "T", "T"]
    pred, real = _pair_files(tmp_path, ctrl + [[3, 1, -1], [3, 1, -1]], ctrl + [[2, 1, 0], [2, 1, 0]], pert, ct)
    table = evaluate(pred, real, "ds", 7, "m")
    assert list(table.columns) == ["dataset", "seed", "model", "cell_type", "perturbation", "metric", "value"]
    assert set(table["metric"]) == {"pearson_delta", "mse", "mae", "cosine_logfc"}
    assert (table["perturbation"] == "A").all() and (table["seed"] == 7).all()
    assert_close(table.set_index("metric").loc["pearson_delta", "value"], 1.0)


def test_evaluate_rejects_mismatch(tmp_path):
    pert, ct = ["control", "A"], ["T", "T"]
    pred, real = _pair_files(tmp_path, [[1, 1, 1], [2, 2, 2]], [[1, 1, 1], [2, 2, 2]], pert, ct)
    other = tmp_path / "other"
    other.mkdir()
    pred_other, _ = _pair_files(other, [[1, 1, 1], [2, 2, 2]], [[1, 1, 1], [2, 2, 2]], pert, ct, genes=("x", "y", "z"))
    with pytest.raises(InputError, match="different genes"):
        evaluate(pred_other, real, "ds", 0, "m")
    missing = tmp_path / "missing"
    missing.mkdir()
    pred_missing, _ = _pair_files(missing, [[1, 1, 1], [2, 2, 2]], [[1, 1, 1], [2, 2, 2]], ["control", "B"], ct)
    with pytest.raises(InputError, match="lacks 1 pair"):
        evaluate(pred_missing, real, "ds", 0, "m")
    nan = tmp_path / "nan"
    nan.mkdir()
    pred_nan, _ = _pair_files(nan, [[1, 1, 1], [np.nan, 2, 2]], [[1, 1, 1], [2, 2, 2]], pert, ct)
    with pytest.raises(InputError, match="NaN"):
        evaluate(pred_nan, real, "ds", 0, "m")


def test_evaluate_requires_controls(tmp_path):
    pred, real = _pair_files(tmp_path, [[1, 1, 1]], [[1, 1, 1]], ["A"], ["T"])
    with pytest.raises(InputError, match="no control cells for cell type"):
        evaluate(pred, real, "ds", 0, "m")
