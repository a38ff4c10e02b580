"""The verdict: per dataset, does any model beat every baseline?

A model wins a calibrated metric (``metrics.CALIBRATED``, against perturbed_mean's floor) when a
paired two-sided Wilcoxon test over the scored pairs (seed, cell type, perturbation) finds it
better than each baseline of the run there (Benjamini-Hochberg q < 0.05 over every such test of
the dataset). It beats the baselines when it wins most calibrated metrics; of several, the one
winning most (then the higher mean calibrated pearson_delta) is named. With too few pairs for any
test to reach p < 0.05 the design is underpowered, and the verdict says so rather than "none".
The fallback, for a dataset without a winner, is the model (baselines included) with the highest
mean calibrated pearson_delta. ``predict_with`` names the training run that ``--predict_conditions``
retrains by default: the winner, else the fallback, of the grid's own runs (another tool's
predictions cannot be retrained), a swept model as the configuration chosen on most seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from ..metrics import CALIBRATED
from .stats import MIN_PAIRS, PAIR_KEYS, paired_p

COLUMNS = ["dataset", "verdict", "winner", "fallback", "predict_with", "n", "unit", "statement"]
UNIT = "scored (seed, held-out cell type, perturbation) pairs"
ALPHA = 0.05
#: what calibrated metrics are judged on, and the one that breaks ties and names the fallback
JUDGED = tuple(f"calibrated_{m}" for m in CALIBRATED)
TIEBREAK = "calibrated_pearson_delta"


def baseline_names(models) -> list[str]:
    """The models of ``models`` that are storm's baselines (their class says so)."""
    from ..errors import UnknownModelError
    from ..models import get_model_class

    found = []
    for name in models:
        try:
            if get_model_class(name).baseline:
                found.append(name)
        except UnknownModelError:  # another tool's predictions, a variant's own name
            continue
    return found


def smallest_p(n: int) -> float:
    """The smallest two-sided p an exact Wilcoxon signed-rank test reaches on ``n`` pairs."""
    return min(1.0, 2.0 / 2 ** n) if n >= MIN_PAIRS else 1.0


def judge(metrics: pd.DataFrame, runs: dict[str, list[str]] | None = None,
          choices: pd.DataFrame | None = None) -> pd.DataFrame:
    """One verdict row per dataset of ``metrics`` (long rows; pairs only are judged). ``runs``: the
    grid's models, each with its training runs (a sweep's configurations; None: every model is one
    run), ``choices``: the configurations the validation pairs chose (:func:`.sweeps.choose`)."""
    rows = []
    for dataset, frame in metrics[metrics["metric"].isin(JUDGED)].groupby("dataset", sort=True):
        means = frame[frame["metric"] == TIEBREAK].groupby("model")["value"].mean()
        row = _judge_dataset(dataset, frame, means)
        rows.append({**row, "predict_with": _predict_with(dataset, row["winner"], means, runs, choices)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _predict_with(dataset: str, winner: str, means: pd.Series, runs: dict[str, list[str]] | None,
                  choices: pd.DataFrame | None) -> str:
    trainable = [m for m in means.dropna().sort_values(ascending=False, kind="stable").index
                 if runs is None or m in runs]
    name = winner if winner and (runs is None or winner in runs) else next(iter(trainable), "")
    configurations = [name] if runs is None or not name else runs[name]
    if len(configurations) == 1 or choices is None:
        return configurations[0]
    chosen = choices[(choices["dataset"] == dataset) & (choices["model"] == name) & choices["chosen"]]
    counts = chosen["configuration"].value_counts()
    return sorted(counts[counts == counts.max()].index)[0] if len(counts) else configurations[0]


def _judge_dataset(dataset: str, frame: pd.DataFrame, means: pd.Series) -> dict:
    """``means``: each model's mean TIEBREAK score, which names the fallback and breaks ties."""
    wide = {m: f.pivot_table(index=PAIR_KEYS[1:], columns="model", values="value", aggfunc="mean")
            for m, f in frame.groupby("metric")}
    models = sorted(frame["model"].unique())
    baselines = baseline_names(models)
    candidates = [m for m in models if m not in baselines]
    fallback = means.idxmax() if means.notna().any() else ""
    n = max((int(w.notna().sum(axis=0).max()) for w in wide.values()), default=0)
    row = {"dataset": dataset, "winner": "", "fallback": fallback, "n": n, "unit": UNIT}
    if not baselines or not candidates:
        missing = "no baseline" if not baselines else "no model besides the baselines"
        return {**row, "verdict": "nothing to judge", "statement": f"{missing} in this run"}
    tests = []
    for metric, table in wide.items():
        for candidate in candidates:
            for baseline in baselines:
                if candidate in table and baseline in table:
                    both = table[[candidate, baseline]].dropna()
                    tests.append({"metric": metric, "candidate": candidate, "baseline": baseline, "n": len(both),
                                  "diff": float((both[candidate] - both[baseline]).mean()) if len(both) else np.nan,
                                  "p": paired_p(both[candidate], both[baseline])})
    tests = pd.DataFrame(tests)
    if smallest_p(n) >= ALPHA:
        return {**row, "verdict": "underpowered",
                "statement": f"underpowered: n = {n} {UNIT}; a paired two-sided Wilcoxon test cannot go below "
                             f"p = {smallest_p(n):.4g} on so few, so no model can be shown to beat the baselines "
                             f"(hold out more pairs or seeds)"}
    tested = tests["p"].notna()
    tests["q"] = np.nan
    if tested.any():
        tests.loc[tested, "q"] = false_discovery_control(tests.loc[tested, "p"].to_numpy())
    tests["beats"] = (tests["q"] < ALPHA) & (tests["diff"] > 0)
    beaten = tests.groupby(["candidate", "metric"])["beats"].agg(lambda b: bool(b.all()) and len(b) == len(baselines))
    won = beaten.groupby("candidate").sum()
    judged = len(wide)
    qualified = won[won > judged / 2]
    if qualified.empty:
        best = won.idxmax() if len(won) and won.max() > 0 else ""
        closest = f"closest: {best} on {int(won[best])}" if best else "none beats them all on any"
        return {**row, "verdict": "none",
                "statement": f"no model beats every baseline ({', '.join(baselines)}) on most of {judged} calibrated "
                             f"metrics (q < {ALPHA}, n = {n} {UNIT}); {closest}"}
    order = sorted(qualified.index, key=lambda m: (-qualified[m], -means.get(m, -np.inf)))
    winner = order[0]
    return {**row, "verdict": "winner", "winner": winner,
            "statement": f"{winner} beats every baseline ({', '.join(baselines)}) on {int(qualified[winner])} of "
                         f"{judged} calibrated metrics (paired Wilcoxon, q < {ALPHA}, n = {n} {UNIT})"}
