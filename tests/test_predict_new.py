"""Predictions for conditions no one measured, in the pipeline (--predict_conditions): the verdict's
choice (or --predict_models) retrained on every cell but the requested conditions the data
measures, the round trip through a pair the benchmark held out, the report's section, and one
error at CHECK for a condition no model could predict."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from harness import run_pipeline, step

SETTINGS = ("--split_seeds", "0", "--models", "control_mean,additive,linear_additive", "--n_top_genes", "100",
            "--model_set", "linear_additive.max_epochs=3")


@pytest.fixture(scope="module")
def screen(tmp_path_factory):
    from storm import io
    from storm.synth import SynthConfig, make_synthetic

    folder = tmp_path_factory.mktemp("screen")
    adata = make_synthetic(SynthConfig(n_genes=200, n_perturbations=6, n_cell_types=3, cells_per_pair=20,
                                       controls_per_cell_type=80))
    io.write_h5ad(adata, folder / "screen.h5ad")
    perturbations = sorted(set(adata.obs["perturbation"]) - {"control"})
    return folder / "screen.h5ad", perturbations


def same_prediction(run, model: str, cell_type: str, perturbation: str) -> None:
    """The benchmark's prediction of a held-out pair is the new-conditions prediction of it."""
    bench = ad.read_h5ad(run.outdir / "screen" / "seed0_manual" / model / "pred.h5ad")
    new = ad.read_h5ad(run.outdir / "screen" / "new_conditions" / f"{model}.h5ad")
    mine = lambda obs: ((obs["cell_type"] == cell_type) & (obs["perturbation"] == perturbation)).to_numpy()  # noqa: E731
    held = np.asarray(bench.X[mine(bench.obs)])
    asked = np.asarray(new.X[mine(new.obs) & (new.obs["seed"] == 0).to_numpy()])
    assert 0 < len(held) <= len(asked)
    # the same controls (drawn by seed and pair) through the same weights; more cells asked, more drawn
    np.testing.assert_allclose(asked[:len(held)], held, rtol=1e-4, atol=1e-5)


def test_new_conditions_from_the_verdicts_choice_and_from_named_models(screen, tmp_path):
    data, (a, b, *_) = screen
    holdout = tmp_path / "holdout.yaml"
    holdout.write_text(f"test:\n  pairs: [[CT1, {a}]]\n")
    conditions = tmp_path / "conditions.csv"
    pd.DataFrame({"cell_type": ["CT1", "CT0"], "perturbation": [a, f"{a}+{b}"]}).to_csv(conditions, index=False)
    args = ("--input", str(data), "--split_strategy", "manual", "--manual_holdout", str(holdout),
            "--predict_conditions", str(conditions), *SETTINGS)
    run = run_pipeline(tmp_path, *args)
    assert run.result.returncode == 0, run.output[-4000:]

    chosen = pd.read_csv(run.outdir / "report" / "verdict.csv").iloc[0]["predict_with"]
    table = pd.read_csv(run.outdir / "screen" / "new_conditions" / f"{chosen}.csv", keep_default_na=False)
    assert table[["cell_type", "perturbation"]].values.tolist() == [["CT1", a], ["CT0", f"{a}+{b}"]]
    assert (table["model"] == chosen).all() and (table["top_up"] != "").all() and (table["flags"] == "").all()
    new = ad.read_h5ad(run.outdir / "screen" / "new_conditions" / f"{chosen}.h5ad")
    assert new.varm["mean_change"].shape == (new.n_vars, 2)
    # the requested pair the data measures was held out of training: the benchmark's split, the same prediction
    pairs = pd.read_csv(run.outdir / "screen" / "new_conditions" / "seed0_manual" / "pairs.csv")
    assert pairs.equals(pd.read_csv(run.outdir / "screen" / "seed0_manual" / "pairs.csv"))
    same_prediction(run, chosen, "CT1", a)
    report = (run.outdir / "report" / "report.html").read_text()
    assert "New conditions</h3>" in report and f"predicted with {chosen}" in report

    # a named model instead: the benchmark stays cached, the new conditions' steps run again
    again = run_pipeline(tmp_path, *args, "--predict_models", "linear_additive", "-resume")
    assert again.result.returncode == 0, again.output[-4000:]
    ran = {step(row) for row in again.trace() if row["status"] == "COMPLETED"}
    assert {"TRAIN_NEW", "PREDICT_NEW", "REPORT"} <= ran and not ran & {"SPLIT", "TRAIN", "PREDICT", "EVALUATE"}, ran
    same_prediction(again, "linear_additive", "CT1", a)


def test_a_condition_no_model_could_predict_stops_the_run_at_check(screen, tmp_path):
    data, (a, *_) = screen
    conditions = tmp_path / "conditions.csv"
    conditions.write_text(f"cell_type,perturbation\nCT0,{a}+GHOST\n")
    run = run_pipeline(tmp_path, "--input", str(data), "--predict_conditions", str(conditions), *SETTINGS)
    assert run.result.returncode != 0
    assert (f"error: conditions.csv: condition CT0/{a}+GHOST: perturbation 'GHOST' is never measured outside the "
            "requested conditions" in run.output)
    assert {step(row) for row in run.trace()} == {"CHECK"}
