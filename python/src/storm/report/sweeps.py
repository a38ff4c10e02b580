"""Hyperparameter sweeps: each configuration of a model (``linear_additive@lr=1e-3``, named by
storm.grid from the pipeline's --model_set ``linear_additive.lr=1e-3|1e-4``) is scored on the split's validation
pairs; per split, the best there stands for the model on the test pairs. The test pairs never
choose."""

from __future__ import annotations

import pandas as pd

from ..errors import InputError
from ..evaluate import is_pair_row
from ..grid import group_of
from ..metrics import higher_is_better

CHOICE_COLUMNS = ["dataset", "seed", "model", "configuration", "metric", "val_mean", "val_pairs", "chosen"]


def check_metric(metric: str) -> bool:
    """Whether higher ``metric`` is better; an error when it has no direction to choose by."""
    better = higher_is_better(metric)
    if better is None:
        raise InputError(f"--sweep_metric {metric}: not a metric with a better direction (e.g. pearson_delta, mse)")
    return better


def choose(val_metrics: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (dataset, seed, swept model): every configuration's mean ``metric`` over the validation
    pairs, and which one is chosen (the best in the metric's direction; ties: the first by name)."""
    better = check_metric(metric)
    rows = val_metrics[(val_metrics["metric"] == metric) & is_pair_row(val_metrics["perturbation"])]
    if rows.empty:
        return pd.DataFrame(columns=CHOICE_COLUMNS)
    table = rows.groupby(["dataset", "seed", "model"])["value"].agg(val_mean="mean", val_pairs="count").reset_index()
    table = table.rename(columns={"model": "configuration"})
    table.insert(2, "model", table["configuration"].map(group_of))
    table["metric"] = metric
    order = table.sort_values(["val_mean", "configuration"], ascending=[not better, True])
    best = order.groupby(["dataset", "seed", "model"]).head(1).index
    table["chosen"] = table.index.isin(best)
    return table[CHOICE_COLUMNS].sort_values(["dataset", "model", "seed", "configuration"], ignore_index=True)


def apply(metrics: pd.DataFrame, choices: pd.DataFrame) -> pd.DataFrame:
    """The test metrics as the report shows them: each swept model's chosen configuration per
    split, under the model's name; its other configurations left out."""
    if choices.empty:
        return metrics
    configurations = set(choices["configuration"])
    chosen = set(choices.loc[choices["chosen"], ["dataset", "seed", "configuration"]].itertuples(index=False,
                                                                                                   name=None))
    swept = metrics["model"].isin(configurations)
    keep = [not is_swept or (d, s, m) in chosen
            for is_swept, d, s, m in zip(swept, metrics["dataset"], metrics["seed"], metrics["model"])]
    shown = metrics[keep].copy()
    shown.loc[shown["model"].isin(configurations), "model"] = shown["model"].map(group_of)
    return shown
