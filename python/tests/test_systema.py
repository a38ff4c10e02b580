"""Metrics that resist systematic variation and calibrated scores: by hand on small numbers, and on
a split where the perturbed_mean baseline, which knows only that cells were perturbed, must score nothing."""

import numpy as np
import pandas as pd
import pytest

from approx import assert_close
from storm.evaluate.calibration import calibrated_scores, halves, reference_rows
from storm.evaluate.pairs import CellTypeGroup
from storm.evaluate.systema import PERTURBED_EFFECT_FILE, centroid_metrics, deg_weighted_metrics
from storm.metrics import CALIBRATED


def test_deg_weighted_metrics_by_hand():
    ctrl = np.zeros((1, 3))
    real, pred = np.array([[2.0, 0.0, -1.0]]), np.array([[1.0, 5.0, -1.0]])
    # weights |real change| / total: 2/3, 0, 1/3 -- the unchanged gene's large error costs nothing
    scores = deg_weighted_metrics(pred, real, ctrl)
    assert_close(scores["mse_deg_weighted"], [2 / 3])
    # weighted mean real change 1; spread 2/3 * 1 + 1/3 * 4 = 2; residual 2/3 * 1: R² = 1 - 1/3
    assert_close(scores["r2_deg_weighted"], [2 / 3])
    assert np.isnan(deg_weighted_metrics(pred, ctrl, ctrl)["r2_deg_weighted"]).all()  # no real change


def test_centroid_metrics_by_hand():
    centroid = np.array([1.0, 1.0, 1.0, 1.0])
    real = centroid + np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 2.0, -2.0]])
    exact = centroid_metrics(real, real, centroid)
    assert_close(exact["pearson_delta_pert"], [1.0, 1.0])
    assert_close(exact["centroid_accuracy"], [1.0, 1.0])
    swapped = centroid_metrics(real[::-1], real, centroid)
    assert_close(swapped["centroid_accuracy"], [0.0, 0.0])
    assert_close(swapped["pearson_delta_pert"], [0.0, 0.0])  # orthogonal shifts
    # the shared shift alone: a prediction at the centroid has no shift to correlate
    shared = centroid_metrics(np.stack([centroid, centroid]), real, centroid)
    assert np.isnan(shared["pearson_delta_pert"]).all()
    # one held-out perturbation: nothing to tell it from
    assert np.isnan(centroid_metrics(real[:1], real[:1], centroid)["centroid_accuracy"]).all()
    assert np.isnan(centroid_metrics(real, real, None)["pearson_delta_pert"]).all()


@pytest.fixture(scope="module")
def scored(prepared_split, tmp_path_factory):
    """perturbed_mean and additive trained, predicted and scored against a reference, as the pipeline does."""
    from storm.evaluate import build_reference, evaluate
    from storm.evaluate.systema import write_perturbed_effects
    from storm.predict import predict, write_real
    from storm.train import train

    out = tmp_path_factory.mktemp("systema")
    write_real(*prepared_split, out / "real.h5ad")
    write_perturbed_effects(*prepared_split, out / "reference")
    build_reference(out / "real.h5ad", out / "reference", threads=1)
    tables = []
    for model in ("perturbed_mean", "additive"):
        train(*prepared_split, model, out / model, seed=0, config={})
        predict(*prepared_split, out / model, out / f"{model}.h5ad", seed=0)
        tables.append(evaluate(out / f"{model}.h5ad", out / "real.h5ad", "d", 0, model, reference=out / "reference",
                               with_vcc=False))
    return out, pd.concat(tables)


def test_reference_holds_each_cell_types_perturbed_effect(scored, split_data):
    from storm.models.base import load_table

    out, _ = scored
    effects = load_table(out / "reference" / PERTURBED_EFFECT_FILE)
    test_types = set(split_data.cell_type[split_data.mask("test") & ~split_data.is_control])
    assert set(effects) == test_types
    ct = sorted(test_types)[0]
    train = split_data.mask("train", ct)
    ctrl = split_data.X[train & split_data.is_control].mean(axis=0)
    perts = sorted(set(split_data.perturbation[train & ~split_data.is_control]))
    by_hand = np.mean([split_data.X[split_data.mask("train", ct, p)].mean(axis=0) - ctrl for p in perts], axis=0)
    assert_close(effects[ct], by_hand, tol=1e-4)


def test_perturbed_mean_scores_nothing_from_the_centroid(scored):
    """Its predicted shift from the perturbed centroid is sampling noise: no correlation with the
    real one on average, where the additive baseline's follows the truth."""
    _, table = scored
    pert = table[table["metric"] == "pearson_delta_pert"].groupby("model")["value"].mean()
    assert abs(pert["perturbed_mean"]) < 0.3
    assert pert["additive"] > pert["perturbed_mean"] + 0.3
    weighted = table[table["metric"] == "r2_deg_weighted"].groupby("model")["value"].mean()
    assert weighted["additive"] > weighted["perturbed_mean"]


def test_calibrated_scores_by_hand():
    """The replicate half scores 1, the perturbed centroid 0 (control_mean's floor: the controls),
    and a pair of one cell has no halves: NaN."""
    rng = np.random.default_rng(0)
    ctrl_cells = rng.normal(5.0, 0.1, (40, 30))
    shifts = {"a": np.r_[np.full(10, 2.0), np.zeros(20)], "b": np.r_[np.zeros(20), np.full(10, -2.0)]}
    real = {p: ctrl_cells[:20] + shift + rng.normal(0, 0.1, (20, 30)) for p, shift in shifts.items()}
    real["lone"] = ctrl_cells[:1] + shifts["a"]
    group = CellTypeGroup("T", sorted(real), {}, real, ctrl_cells, None, None)
    centroid = group.control_mean + 0.5
    table = reference_rows(group, centroid).set_index(["cell_type", "perturbation", "metric"]).sort_index()
    assert len(table) == 3 * len(CALIBRATED) and table.loc[("T", "lone")]["within_noise"].all()
    assert not table.loc[("T", "a")]["within_noise"].any()

    def score(pred_mean):
        return calibrated_scores(group, pred_mean, centroid, table)

    replicate = np.stack([real[p][halves(len(real[p]), "T", p)[0]].mean(axis=0) if p != "lone" else real[p][0]
                          for p in group.perturbations])
    for name, values in score(replicate).items():
        assert_close(values[:2], [1.0, 1.0], tol=1e-9), name
        assert np.isnan(values[2]), name
    at_centroid = score(np.broadcast_to(centroid, replicate.shape))
    assert_close(at_centroid["calibrated_pearson_delta"][:2], [0.0, 0.0], tol=1e-9)
    no_change = score(np.broadcast_to(group.control_mean, replicate.shape))
    assert_close(no_change["calibrated_control_mse"][:2], [0.0, 0.0], tol=1e-9)
    assert np.isnan(calibrated_scores(group, replicate, centroid, None)["calibrated_mse"]).all()


def test_calibrated_scores_rank_the_baselines(scored):
    """perturbed_mean sits near its own floor; the additive baseline well above it."""
    _, table = scored
    calibrated = table[table["metric"] == "calibrated_pearson_delta"].groupby("model")["value"].median()
    assert abs(calibrated["perturbed_mean"]) < 0.35
    assert calibrated["additive"] > 0.5
