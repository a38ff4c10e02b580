"""Per time course metrics: does a model's predicted change follow the real one across time?

A time course is a compound (at one dose, if any) in one cell type over its held-out time
points. Rows carry the perturbation label ``(time course) <compound>[|dose=<d>]``: like the
``(drug)`` rows, a summary never counted as a held-out pair.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from ..spec import CONDITION_SEPARATOR, DOSE, parse_condition

TIME_COURSE_PREFIX = "(time course) "


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else float("nan")


def time_course_metrics(perturbations: list[str], pred_delta: np.ndarray,
                        real_delta: np.ndarray) -> tuple[list[str], dict[str, np.ndarray]]:
    """Per time course with two or more held-out times (rows: conditions in ``perturbations``
    order; deltas are changes from the control mean):

    * ``temporal_coherence``: the mean cosine, over successive time points, between the predicted
      and the real change from one time point to the next (1: the prediction moves as the cells do
      between every pair of time points);
    * ``temporal_order``: the Spearman correlation of the time points with the predicted changes
      projected on the real course's direction (its last change minus its first): 1 when the
      predictions are in the real order along it.

    No rows when no condition has a time."""
    parsed = [parse_condition(p) for p in perturbations]
    courses: dict[str, list[int]] = {}
    for row, (compound, dose, time) in enumerate(parsed):
        if time is not None:
            label = TIME_COURSE_PREFIX + compound + ("" if dose is None else f"{CONDITION_SEPARATOR}{DOSE}={dose:g}")
            courses.setdefault(label, []).append(row)
    out: dict[str, list[float]] = {"temporal_coherence": [], "temporal_order": []}
    labels = []
    for label, rows in courses.items():
        if len(rows) < 2:
            continue
        rows = sorted(rows, key=lambda r: parsed[r][2])
        pred, real = pred_delta[rows], real_delta[rows]
        steps = [_cosine(p, r) for p, r in zip(np.diff(pred, axis=0), np.diff(real, axis=0))]
        direction = real[-1] - real[0]
        along = pred @ direction
        order = spearmanr(np.arange(len(rows)), along).statistic if np.ptp(along) > 0 else float("nan")
        labels.append(label)
        out["temporal_coherence"].append(float(np.nanmean(steps)) if not np.isnan(steps).all() else float("nan"))
        out["temporal_order"].append(float(order))
    return labels, {name: np.asarray(values) for name, values in out.items()}
