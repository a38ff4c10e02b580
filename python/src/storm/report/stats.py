"""Summaries and paired model comparisons over seeds and pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, wilcoxon

from ..evaluate.core import is_pair_row
from ..metrics import across_perturbations, better_direction, higher_is_better

PAIR_KEYS = ["dataset", "seed", "cell_type", "perturbation"]
COMPARISON_COLUMNS = ["dataset", "metric", "model_a", "model_b", "n", "mean_a_minus_b", "a_better_share", "p_value",
                      "q_value", "winner"]


#: what the report's and summary.csv's "mean ± sd" are
MEAN_SD = ("mean: the mean over seeds of each seed's mean over its held-out pairs; sd: the standard deviation of "
           "those per-seed means (how much the result moves with the split); sd_pairs: the standard deviation over "
           "all pairs and seeds (how much it varies between phenotypes)")


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, metric): ``mean`` and ``sd`` over seeds (see :data:`MEAN_SD`),
    ``sd_pairs``, ``n`` values, ``n_seeds``, ``n_missing`` (NaNs are counted, never dropped
    silently), the metric's direction (``better``) and the model's ``rank`` among the models of
    the dataset (1 = best)."""
    keys = ["dataset", "model", "metric"]
    per_seed = seed_means(metrics).groupby(keys, sort=True)["value"]
    grouped = metrics.groupby(keys, sort=True)["value"]
    summary = per_seed.agg(mean="mean", sd="std", n_seeds="count").reset_index()
    summary["sd_pairs"] = grouped.std().to_numpy()
    summary["n"] = grouped.count().to_numpy()
    summary["n_missing"] = grouped.apply(lambda v: int(v.isna().sum())).to_numpy()
    direction = {m: better_direction(m) for m in summary["metric"].unique()}
    summary["better"] = summary["metric"].map(direction)
    signed = summary["mean"] * summary["better"].map({"higher": -1.0, "lower": 1.0})
    summary["rank"] = signed.groupby([summary["dataset"], summary["metric"]]).rank(method="min").astype("Int64")
    return summary[["dataset", "model", "metric", "mean", "sd", "sd_pairs", "n", "n_seeds", "n_missing", "better",
                    "rank"]]


def seed_means(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean over pairs per (dataset, model, metric, seed): the unit of seed variance."""
    return metrics.groupby(["dataset", "model", "metric", "seed"], sort=True)["value"].mean().reset_index()


def _wilcoxon_method(diff: np.ndarray) -> str:
    """The exact null distribution for up to 50 pairs without zeros or ties, else the normal
    approximation: scipy's default falls back to a permutation test there, about 0.3 s a test,
    minutes for a report of a few models."""
    magnitudes = np.abs(diff)
    untied = magnitudes.min() > 0 and np.unique(magnitudes).size == magnitudes.size
    return "exact" if untied and diff.size <= 50 else "approx"


#: a paired test needs at least this many pairs (fewer: no p-value)
MIN_PAIRS = 5


def paired_p(a: pd.Series, b: pd.Series) -> float:
    """Two-sided Wilcoxon signed-rank p of paired values ``a`` and ``b`` (NaN with fewer than
    :data:`MIN_PAIRS` pairs or no difference)."""
    diff = (a - b).to_numpy()
    if len(diff) < MIN_PAIRS or not np.any(diff != 0):
        return np.nan
    return float(wilcoxon(a, b, zero_method="zsplit", method=_wilcoxon_method(diff)).pvalue)


def paired_comparisons(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every two models on every metric, paired over (seed, cell type, perturbation): the mean
    difference, the share of pairs where the first model is better, a two-sided Wilcoxon
    signed-rank test, and Benjamini-Hochberg q-values over all tests of a dataset."""
    rows = []
    for (dataset, metric), frame in metrics.groupby(["dataset", "metric"], sort=True):
        wide = frame.pivot_table(index=PAIR_KEYS[1:], columns="model", values="value", aggfunc="mean")
        better = higher_is_better(metric)
        for a, b in itertools.combinations(sorted(wide.columns), 2):
            both = wide[[a, b]].dropna()
            diff = (both[a] - both[b]).to_numpy()
            p = paired_p(both[a], both[b])
            sign = 1 if better is not False else -1
            rows.append({"dataset": dataset, "metric": metric, "model_a": a, "model_b": b, "n": len(diff),
                         "mean_a_minus_b": float(diff.mean()) if len(diff) else np.nan,
                         "a_better_share": float((sign * diff > 0).mean()) if len(diff) else np.nan,
                         "p_value": p})
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS[:-2])
    table["q_value"] = np.nan
    for dataset, idx in table.groupby("dataset").groups.items():
        ps = table.loc[idx, "p_value"]
        ok = ps.notna()
        if ok.any():
            table.loc[ps[ok].index, "q_value"] = false_discovery_control(ps[ok].to_numpy())
    table["winner"] = pd.Series([
        "" if not (q < 0.05) else (r.model_a if (r.mean_a_minus_b > 0) == (higher_is_better(r.metric) is not False)
                                   else r.model_b)
        for q, r in zip(table["q_value"], table.itertuples())
    ], index=table.index, dtype=object)
    return table


#: the no-change prediction: a metric it wins does not reward predicting the response
FLOOR_MODEL = "control_mean"


def metric_flags(metrics: pd.DataFrame, summary: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(dataset, metric) -> why the metric cannot tell models apart on this design (``metrics``:
    rows with dataset, seed, cell_type, perturbation; the held-out pairs are read from them): every
    cell type has one held-out perturbation (for metrics across perturbations: storm.metrics), every model
    scores the same, or the no-change floor (``control_mean``) scores best. A flagged metric is
    shown, marked, and never counted as a win."""
    flags = {}
    pairs = metrics[is_pair_row(metrics["perturbation"])]
    held = pairs.groupby(["dataset", "seed", "cell_type"])["perturbation"].nunique().groupby("dataset").max()
    for dataset, board in summary.groupby("dataset"):
        single = held.get(dataset, 0) <= 1
        for metric, rows in board.groupby("metric"):
            means = rows["mean"].dropna()
            if single and across_perturbations(metric):
                flags[(dataset, metric)] = "one held-out perturbation per cell type: nothing to compare it with"
            elif len(means) > 1 and means.max() - means.min() <= 1e-9 * max(1.0, means.abs().max()):
                flags[(dataset, metric)] = "the same for every model"
            elif len(means) > 1 and (rows.loc[rows["model"] == FLOOR_MODEL, "rank"] == 1).fillna(False).any():
                flags[(dataset, metric)] = f"the no-change floor ({FLOOR_MODEL}) scores best: it does not reward " \
                                           f"predicting the response here"
    return flags


def with_flags(summary: pd.DataFrame, flags: dict[tuple[str, str], str]) -> pd.DataFrame:
    """``summary`` with each metric's ``flag`` (see :func:`metric_flags`; "" when none) and no rank
    on a flagged metric: it is never a win."""
    flagged = summary.assign(flag=[flags.get(key, "") for key in zip(summary["dataset"], summary["metric"])],
                             rank=summary["rank"].astype("Int64"))
    flagged.loc[flagged["flag"] != "", "rank"] = pd.NA
    return flagged


def win_matrix(comparisons: pd.DataFrame, metrics: list[str], models: list[str]) -> pd.DataFrame:
    """Row model x column model: on how many of ``metrics`` the row model won the paired test
    against the column model (q < 0.05; see :func:`paired_comparisons`)."""
    table = pd.DataFrame(0, index=models, columns=models, dtype=int)
    for row in comparisons[comparisons["metric"].isin(metrics)].itertuples():
        if row.winner:
            loser = row.model_b if row.winner == row.model_a else row.model_a
            if row.winner in table.index and loser in table.columns:
                table.loc[row.winner, loser] += 1
    return table


#: steps of the sliding window over which the loss's variance is taken (fewer on short runs)
STABILITY_WINDOW = 50


def training_stability(steps: pd.DataFrame, window: int = STABILITY_WINDOW) -> pd.DataFrame:
    """Per (dataset, model): how steadily it trained, from ``train_steps.csv`` rows (step, loss,
    grad_norm), each run's figure averaged over seeds. ``loss_variance`` is the mean, over the
    run, of the loss's variance in a sliding window of ``window`` steps (a quarter of the run if
    shorter): noise and spikes, not the trend; ``final_loss`` the mean of the last window."""
    rows = []
    for (dataset, model, seed), run in steps.groupby(["dataset", "model", "seed"], sort=True):
        run = run.sort_values("step")
        width = max(2, min(window, len(run) // 4))
        loss = run["loss"].reset_index(drop=True)
        rows.append({"dataset": dataset, "model": model, "seed": seed, "steps": int(run["step"].max()),
                     "final_loss": float(loss.iloc[-width:].mean()),
                     "loss_variance": float(loss.rolling(width).var().mean()),
                     "grad_norm_median": float(run["grad_norm"].median()),
                     "grad_norm_max": float(run["grad_norm"].max())})
    if not rows:
        return pd.DataFrame()
    per_run = pd.DataFrame(rows)
    table = per_run.groupby(["dataset", "model"], sort=True).mean(numeric_only=True).drop(columns="seed")
    table["seeds"] = per_run.groupby(["dataset", "model"], sort=True).size()
    return table.reset_index()
