"""The verdict: a model beats every baseline, none does, or the design cannot tell."""

import numpy as np
import pandas as pd

from storm.metrics import CALIBRATED
from storm.report.verdict import judge

COLUMNS = ["dataset", "seed", "model", "cell_type", "perturbation", "metric", "value"]


def calibrated(n_pairs: int, levels: dict[str, float], seeds=(0,)) -> pd.DataFrame:
    """Calibrated metrics per model: its level plus noise that differs between pairs."""
    rng = np.random.default_rng(1)
    rows = [("ds", seed, model, "T", f"p{pair}", f"calibrated_{metric}", level + rng.normal(0, 0.05))
            for seed in seeds for pair in range(n_pairs) for metric in CALIBRATED
            for model, level in levels.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict_of(metrics: pd.DataFrame) -> pd.Series:
    table = judge(metrics)
    assert len(table) == 1
    return table.iloc[0]


def test_a_model_above_every_baseline_wins():
    row = verdict_of(calibrated(20, {"linear_additive": 0.8, "additive": 0.5, "perturbed_mean": 0.0,
                                     "latent_additive": 0.45}))
    assert row["verdict"] == "winner" and row["winner"] == "linear_additive" and row["n"] == 20
    assert f"on {len(CALIBRATED)} of {len(CALIBRATED)} calibrated metrics" in row["statement"]
    assert row["fallback"] == "linear_additive"


def test_beating_some_baselines_is_not_enough():
    row = verdict_of(calibrated(20, {"linear_additive": 0.6, "additive": 0.8, "perturbed_mean": 0.0}))
    assert row["verdict"] == "none" and row["winner"] == ""
    assert "no model beats every baseline (additive, perturbed_mean)" in row["statement"]
    assert "none beats them all on any" in row["statement"]  # no model is "closest" on zero metrics
    assert row["fallback"] == "additive"  # the best calibrated pearson_delta, a baseline here


def test_too_few_pairs_is_underpowered_whatever_the_gap():
    """A two-sided Wilcoxon on 5 pairs cannot go below p = 2/32: the verdict says so, with n and its unit."""
    row = verdict_of(calibrated(5, {"linear_additive": 0.9, "control_mean": 0.0}))
    assert row["verdict"] == "underpowered" and row["winner"] == ""
    assert "n = 5 scored (seed, held-out cell type, perturbation) pairs" in row["statement"]
    assert "p = 0.0625" in row["statement"]
    # the same 5 pairs over 2 seeds are 10 scored pairs: enough to test
    assert verdict_of(calibrated(5, {"linear_additive": 0.9, "control_mean": 0.0}, seeds=(0, 1)))["verdict"] == "winner"


def test_nothing_to_judge_without_baselines():
    row = verdict_of(calibrated(20, {"linear_additive": 0.9, "latent_additive": 0.1}))
    assert row["verdict"] == "nothing to judge" and row["statement"] == "no baseline in this run"


def test_new_conditions_are_predicted_with_a_run_of_the_grid():
    metrics = calibrated(20, {"linear_additive": 0.6, "additive": 0.8, "perturbed_mean": 0.0, "gears": 0.9})
    # gears' predictions came from another tool (--predictions): it has the best mean, but cannot retrain
    runs = {"linear_additive": ["linear_additive"], "additive": ["additive"], "perturbed_mean": ["perturbed_mean"]}
    row = judge(metrics, runs).iloc[0]
    assert row["fallback"] == "gears" and row["predict_with"] == "additive"
    assert judge(metrics).iloc[0]["predict_with"] == "gears"  # by hand, every model is a run


def test_a_swept_winner_predicts_with_the_configuration_chosen_on_most_seeds():
    metrics = calibrated(10, {"st": 0.9, "perturbed_mean": 0.0}, seeds=(0, 1, 2))
    runs = {"st": ["st@lr=0.1", "st@lr=0.01"], "perturbed_mean": ["perturbed_mean"]}
    choices = pd.DataFrame({"dataset": "ds", "seed": [0, 0, 1, 1, 2, 2], "model": "st",
                            "configuration": ["st@lr=0.1", "st@lr=0.01"] * 3,
                            "chosen": [False, True, True, False, False, True]})
    row = judge(metrics, runs, choices).iloc[0]
    assert row["winner"] == "st" and row["predict_with"] == "st@lr=0.01"
