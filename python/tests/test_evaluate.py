"""Evaluation: storm's own metrics against hand computations, the VCC metrics against the
`cell-eval run` CLI on the same files, and bad inputs."""

import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from approx import assert_close
from storm import io
from storm.errors import InputError
from storm.evaluate import ALL, build_reference, evaluate
from storm.evaluate.perturbench import energy_distance, fit_metrics, genewise_pearson, mmd_rbf, rank_from_distances
from storm.evaluate.vcc import vcc_score


def test_fit_metrics_by_hand():
    ctrl = np.zeros(4)
    real = np.array([[1.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 3.0, 0]])
    pred = np.array([[2.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 3.0, 0]])
    m = fit_metrics(pred, real, ctrl, k=1)
    assert_close(m["rmse"], [np.sqrt(1 / 4), np.sqrt((4 + 1) / 4), 0.0])
    assert_close(m["cosine_logfc"], [1.0, 0.0, 1.0])
    # 0 and 2 are closest to their own real means; 1's prediction is closer to both others' than its
    # own in RMSE, and in cosine beats nothing, ties with 0 (counted half) and loses to 2
    assert_close(m["rank_rmse"], [0.0, 1.0, 0.0])
    assert_close(m["rank_cosine_logfc"], [0.0, 0.75, 0.0])
    assert_close(m["top1_deg_recall"], [1.0, 0.0, 1.0])
    r2_first = 1 - 1 / np.sum((real[0] - real[0].mean()) ** 2)
    assert_close(m["r2_delta"][[0, 2]], [r2_first, 1.0])


def test_top_k_deg_r2_at_each_k():
    """Each k scores the change on the real top-k genes: a prediction exact on the two most
    changed genes and wrong elsewhere is perfect at k=2 and not at k=4."""
    real = np.array([[5.0, -4.0, 1.0, 0.5, 0.0, 0.0]])
    pred = np.array([[5.0, -4.0, -1.0, -0.5, 0.0, 0.0]])
    m = fit_metrics(pred, real, np.zeros(6), deg_k=(2, 4))
    assert_close(m["top2_deg_r2"], [1.0])
    assert m["top4_deg_r2"][0] < 1.0 and "top20_deg_r2" not in m


def test_drug_metrics_over_doses():
    from storm.evaluate.drugs import drug_metrics

    direction = np.array([1.0, -1.0, 0.0, 0.0])
    labels = ["a|dose=1|time=24", "a|dose=10|time=24", "b|dose=1|time=24", "genetic"]
    real = np.vstack([1 * direction, 3 * direction, 2 * direction, np.ones(4)])
    pred = np.vstack([1 * direction, 1 * direction, 2 * direction, np.ones(4)])  # a's curve too flat
    drugs, m = drug_metrics(labels, pred, real, deg_k=(2,))
    assert drugs == ["(drug) a|time=24", "(drug) b|time=24"]
    # a's real curve along its direction is (1, 3)·√2, the prediction's (1, 1)·√2: errors (0, 2√2),
    # RMSE 2, over the real curve's largest value 3√2
    assert_close(m["dose_response_error"][0], 2 / (3 * np.sqrt(2)))
    assert np.isnan(m["dose_response_error"][1])  # one dose: no curve
    assert m["drug_top2_deg_r2"][0] < 1.0 and m["drug_top2_deg_r2"][1] == pytest.approx(1.0)
    assert drug_metrics(["x", "y"], pred[:2], real[:2], deg_k=(2,))[0] == []  # no doses: no drug rows


def test_time_course_metrics_by_hand():
    from storm.evaluate.time_course import time_course_metrics

    direction, other = np.array([1.0, -1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    labels = ["s|time=19", "s|time=10", "s|time=14", "r|time=10", "r|time=19", "r|time=14", "q|time=10", "genetic"]
    real = np.vstack([3 * direction, 1 * direction, 2 * direction,  # s: rows out of time order on purpose
                      1 * direction, 3 * direction, 2 * direction, direction, other])
    pred = real.copy()
    pred[3:6] = np.vstack([3 * direction, 1 * direction, 2 * other])  # r: the course backwards, then off it
    courses, m = time_course_metrics(labels, pred, real)
    assert courses == ["(time course) s", "(time course) r"]  # q has one time point: no course
    assert_close(m["temporal_coherence"][0], 1.0) and assert_close(m["temporal_order"][0], 1.0)
    # r, times 10, 14, 19: predicted steps (2o - 3d, d - 2o) against real steps (d, d)
    steps = [(2 * other - 3 * direction) @ direction / (np.linalg.norm(2 * other - 3 * direction) * np.sqrt(2)),
             (direction - 2 * other) @ direction / (np.linalg.norm(direction - 2 * other) * np.sqrt(2))]
    assert_close(m["temporal_coherence"][1], np.mean(steps))
    assert_close(m["temporal_order"][1], -0.5)  # projections on the course ∝ (3, 0, 1): ranks 3, 1, 2
    assert time_course_metrics(["x", "y"], pred[:2], real[:2])[0] == []  # no times: no rows


def test_scgen_r2_is_linregress_rvalue_squared():
    from scipy.stats import linregress

    from storm.evaluate.perturbench import scgen_r2

    rng = np.random.default_rng(1)
    ctrl = rng.gamma(2.0, 1.0, size=300)
    real = ctrl + np.r_[rng.normal(0, 2.0, size=(2, 10)).T, np.zeros((290, 2))].T
    pred = real + rng.normal(0, 0.5, size=real.shape)
    pred[1, :10] = ctrl[:10]  # the second prediction misses the response
    m = scgen_r2(pred, real, real - ctrl, k=10)
    for i in range(2):
        assert m["r2_mean_all"][i] == pytest.approx(linregress(pred[i], real[i]).rvalue ** 2)
        assert m["r2_mean_top10_deg"][i] == pytest.approx(linregress(pred[i, :10], real[i, :10]).rvalue ** 2)
    # on all genes both look good (the baseline dominates); on the changed genes only the first does
    assert m["r2_mean_all"].min() > 0.5 and m["r2_mean_top10_deg"][0] > 0.8 > m["r2_mean_top10_deg"][1] + 0.3


def test_rank_ties_and_single_perturbation():
    assert_close(rank_from_distances(np.array([[1.0, 1.0], [0.0, 1.0]])), [0.5, 1.0])
    assert np.isnan(rank_from_distances(np.array([[0.0]]))[0])


def test_distribution_metrics_by_hand():
    assert energy_distance(np.array([[0.0]]), np.array([[1.0]])) == pytest.approx(2.0)
    same = np.random.default_rng(0).normal(size=(30, 3))
    assert energy_distance(same, same) == pytest.approx(0.0, abs=1e-12)
    assert mmd_rbf(same, same) == pytest.approx(0.0, abs=1e-12)
    assert mmd_rbf(same, same + 5) > 0.5
    deltas = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 1.0]])
    assert genewise_pearson(deltas, 2 * deltas) == pytest.approx(1.0)
    assert np.isnan(genewise_pearson(deltas[:2], deltas[:2]))


@pytest.fixture(scope="module")
def prediction(prepared_split, tmp_path_factory):
    """pred.h5ad / real.h5ad of context_mean on the small synthetic split, and its reference."""
    from storm.predict import predict, write_real
    from storm.train import train

    out = tmp_path_factory.mktemp("prediction")
    train(*prepared_split, "context_mean", out / "model", seed=0, config={})
    predict(*prepared_split, out / "model", out / "pred.h5ad")
    write_real(*prepared_split, out / "real.h5ad")
    build_reference(out / "real.h5ad", out / "reference", threads=1)
    return out


def test_vcc_metrics_equal_the_cell_eval_cli(prediction, tmp_path):
    ours = evaluate(prediction / "pred.h5ad", prediction / "real.h5ad", "d", 0, "m",
                    reference=prediction / "reference")
    cli = tmp_path / "cli"
    done = subprocess.run([str(Path(sys.executable).parent / "cell-eval"), "run",
                           "-ap", str(prediction / "pred.h5ad"), "-ar", str(prediction / "real.h5ad"),
                           "--control-pert", "control", "--pert-col", "perturbation",
                           "--celltype-col", "cell_type", "-o", str(cli)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    compared = 0
    for path in cli.glob("*_results.csv"):
        if path.name.endswith("_agg_results.csv"):
            continue
        cell_type = path.name[: -len("_results.csv")]
        theirs = pd.read_csv(path).melt(id_vars="perturbation", var_name="metric", value_name="theirs")
        mine = ours[ours["cell_type"] == cell_type].merge(theirs, on=["perturbation", "metric"])
        assert len(mine) == len(theirs), f"{cell_type}: storm lacks some of cell-eval's metrics"
        np.testing.assert_allclose(mine["value"], mine["theirs"], rtol=1e-6, atol=1e-9, equal_nan=True)
        compared += len(mine)
    assert compared >= 3 * 25  # every VCC metric of every held-out pair


def test_metrics_table_is_complete(prediction):
    table = evaluate(prediction / "pred.h5ad", prediction / "real.h5ad", "d", 3, "m",
                     reference=prediction / "reference")
    assert list(table.columns) == ["dataset", "seed", "model", "cell_type", "perturbation", "metric", "value"]
    per_pair = table[table["perturbation"] != ALL]
    counts = per_pair.groupby("metric").size()
    assert counts.nunique() == 1  # every metric has a row for every pair, NaN or not
    for metric in ("pearson_delta", "overlap_at_N", "rank_rmse", "energy_distance_pca", "direction_cosine"):
        assert metric in counts
    assert set(table.loc[table["perturbation"] == ALL, "metric"]) == {"genewise_pearson", "vcc_score"}
    assert (table["seed"] == 3).all()


def test_vcc_score_against_the_baseline(prediction):
    baseline = pd.read_csv(prediction / "reference" / "baseline_agg.csv")
    ct = baseline["cell_type"].iloc[0]
    base = baseline[baseline["cell_type"] == ct]
    agg = pd.DataFrame([base.set_index("metric")["value"]]).reset_index(drop=True)
    agg.insert(0, "statistic", "mean")
    assert vcc_score(agg, base) == pytest.approx(0.0)  # the baseline scores 0 against itself
    table = evaluate(prediction / "pred.h5ad", prediction / "real.h5ad", "d", 0, "m",
                     reference=prediction / "reference")
    scores = table[table["metric"] == "vcc_score"]["value"]
    assert (scores > 0).all()  # context_mean beats the cell-mean baseline on this data


def _write(adata, path):
    io.write_h5ad(adata, path)
    return path


def test_bad_inputs(prediction, tmp_path):
    pred, real = ad.read_h5ad(prediction / "pred.h5ad"), ad.read_h5ad(prediction / "real.h5ad")
    renamed = pred.copy()
    renamed.var_names = [f"x{i}" for i in range(pred.n_vars)]
    cases = {
        "different genes": renamed,
        "NaN": _with_value(pred, np.nan),
        "negative": _with_value(pred, -1.0),
        "lacks": pred[pred.obs["perturbation"] != pred.obs["perturbation"].iloc[0]].copy(),
    }
    for message, bad in cases.items():
        with pytest.raises(InputError, match=message):
            evaluate(_write(bad, tmp_path / f"{len(message)}.h5ad"), prediction / "real.h5ad", "d", 0, "m",
                     with_vcc=False)
    no_ctrl = real[real.obs["perturbation"] != "control"].copy()
    with pytest.raises(InputError, match="no cell has perturbation = 'control'"):
        evaluate(prediction / "pred.h5ad", _write(no_ctrl, tmp_path / "noctrl.h5ad"), "d", 0, "m", with_vcc=False)


def _foreign(adata: ad.AnnData, path: Path, genes: list[str]) -> Path:
    """``adata`` as another tool writes it: its own column names and control label, its own gene
    order, no storm metadata."""
    obs = pd.DataFrame({"target_gene": adata.obs["perturbation"].astype(str).replace("control", "non-targeting"),
                        "celltype": adata.obs["cell_type"].astype(str)}, index=adata.obs_names)
    foreign = ad.AnnData(X=adata[:, genes].X, obs=obs, var=pd.DataFrame(index=genes))
    foreign.write_h5ad(path)
    return path


def test_predictions_from_another_tool_score_as_cell_eval_does(prediction, tmp_path, run_cli):
    """A pred/real pair storm did not write (cell-eval's default column names, genes in another
    order in each file) scored by `storm evaluate` with cell-eval's options: the same numbers as
    `cell-eval run` on every metric both compute, and storm's own metrics beside them. (cell-eval
    needs pred's genes in real's order: it gets a copy so ordered.)"""
    pred, real = ad.read_h5ad(prediction / "pred.h5ad"), ad.read_h5ad(prediction / "real.h5ad")
    genes = list(real.var_names)
    real_path = _foreign(real, tmp_path / "real.h5ad", genes[::-1])
    pred_path = _foreign(pred, tmp_path / "pred.h5ad", list(np.random.default_rng(0).permutation(genes)))
    columns = ["--pert-col", "target_gene", "--control-pert", "non-targeting", "--celltype-col", "celltype"]
    done = run_cli("evaluate", "--pred", str(pred_path), "--real", str(real_path), "--out", str(tmp_path / "m.csv"),
                   *columns)
    assert done.returncode == 0, done.stderr[-2000:]
    ours = pd.read_csv(tmp_path / "m.csv")
    assert set(ours["model"]) == {"pred"} and set(ours["dataset"]) == {"real"}  # named after the files
    assert {"pearson_delta", "discrimination_score_l1", "energy_distance_pca"} <= set(ours["metric"])
    cli = tmp_path / "cli"
    aligned = _foreign(pred, tmp_path / "pred_aligned.h5ad", genes[::-1])
    theirs_run = subprocess.run([str(Path(sys.executable).parent / "cell-eval"), "run", "-ap", str(aligned),
                                 "-ar", str(real_path), *columns, "-o", str(cli)], capture_output=True, text=True)
    assert theirs_run.returncode == 0, theirs_run.stderr[-2000:]
    compared = 0
    for path in cli.glob("*_results.csv"):
        if path.name.endswith("_agg_results.csv"):
            continue
        theirs = pd.read_csv(path).rename(columns={"target_gene": "perturbation"}) \
            .melt(id_vars="perturbation", var_name="metric", value_name="theirs")
        mine = ours[ours["cell_type"] == path.name[: -len("_results.csv")]].merge(theirs, on=["perturbation", "metric"])
        assert len(mine) == len(theirs), f"{path.name}: storm lacks some of cell-eval's metrics"
        np.testing.assert_allclose(mine["value"], mine["theirs"], rtol=1e-6, atol=1e-9, equal_nan=True)
        compared += len(mine)
    assert compared >= 3 * 25


def test_another_tool_s_prediction_against_storm_s_real_cells(prediction, tmp_path):
    """The pipeline's --predictions case: a foreign pred (its own columns, control label and gene
    order) against storm's real.h5ad scores exactly as storm's own pred of the same values."""
    from storm.evaluate.pairs import Columns

    pred = ad.read_h5ad(prediction / "pred.h5ad")
    foreign = _foreign(pred, tmp_path / "pred.h5ad", list(pred.var_names[::-1]))
    theirs = evaluate(foreign, prediction / "real.h5ad", "d", 0, "m", with_vcc=False,
                      columns=Columns("target_gene", "non-targeting", "celltype"))
    ours = evaluate(prediction / "pred.h5ad", prediction / "real.h5ad", "d", 0, "m", with_vcc=False)
    pd.testing.assert_frame_equal(theirs, ours)


def test_foreign_files_without_their_columns_named_get_one_line(prediction, tmp_path, run_cli):
    real = ad.read_h5ad(prediction / "real.h5ad")
    real_path = _foreign(real, tmp_path / "real.h5ad", list(real.var_names))
    base = ["evaluate", "--pred", str(real_path), "--real", str(real_path), "--out", str(tmp_path / "m.csv")]
    cases = {(): "name its control with --control-pert",
             ("--control-pert", "non-targeting"): "lacks obs column(s) perturbation",
             ("--control-pert", "ctrl", "--pert-col", "target_gene"): "no cell has target_gene = 'ctrl'"}
    for options, message in cases.items():
        done = run_cli(*base, *options)
        assert done.returncode == 2 and message in done.stderr, done.stderr[-1000:]
        assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "m.csv").exists()


def _with_value(adata, value):
    bad = adata.copy()
    X = np.asarray(bad.X.toarray() if hasattr(bad.X, "toarray") else bad.X).copy()
    X[0, 0] = value
    bad.X = X
    return bad


@pytest.mark.parametrize("value", ["0", "2.5", ""])
def test_deg_k_is_checked_before_any_work(run_cli, tmp_path, value):
    done = run_cli("evaluate", "--pred", str(tmp_path / "none.h5ad"), "--real", str(tmp_path / "none.h5ad"),
                   "--out", str(tmp_path / "m.csv"), "--dataset", "d", "--seed", "0", "--model", "m", "--deg-k", value)
    assert done.returncode == 2 and f"error: --deg-k: expected comma-separated whole numbers of genes, got '{value}'" \
        in done.stderr
    assert not (tmp_path / "m.csv").exists()
