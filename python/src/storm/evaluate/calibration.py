"""Calibrated scores: a metric put on a scale from a floor (0) to a technical-replicate ceiling (1).

A raw score means little alone: pearson_delta 0.6 is excellent on a screen whose replicates agree
at 0.65 and poor on one where they agree at 0.95, and mean baselines score well where every
perturbation shares a shift. So, per held-out pair, its real cells are cut into two seeded halves:
the *ceiling* is one half scored as a prediction of the other (what a repeat of the experiment
would score), the *floor* is perturbed_mean's prediction (the held-out controls + the mean effect
of the cell type's training perturbations: knowing only that cells were perturbed), and the
``control`` floor is control_mean's (no change: it is credited with the shared shift the first
floor discounts). A model is scored against the same scored half, and its calibrated score is
``(score - floor) / (ceiling - floor)``. Where the ceiling does not clear the floor by more than
the noise of the ceiling itself (its spread over other random halvings), the calibrated score
is NaN and the reference flags the pair.

REFERENCE computes floors and ceilings once per split (``calibration.csv``); EVALUATE cuts the
same halves (seeded by the pair's name) and scores each model on them. Only metrics of the mean
change are calibrated: they need nothing but the halves' means.
"""

from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..metrics import CALIBRATED, higher_is_better
from .perturbench import cosine_matrix, pearson_rows
from .systema import deg_weighted_metrics

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.csv"
#: further random halvings whose ceilings' spread is the noise a ceiling must clear the floor by
NOISE_DRAWS = 5
NOISE_FACTOR = 2.0


def mean_scores(pred_mean: np.ndarray, real_mean: np.ndarray, ctrl_mean: np.ndarray,
                centroid: np.ndarray | None) -> dict[str, np.ndarray]:
    """The calibrated metrics (``metrics.CALIBRATED``) of P predicted means (rows) against P real ones."""
    pred_delta, real_delta = pred_mean - ctrl_mean, real_mean - ctrl_mean
    scores = {"pearson_delta": pearson_rows(pred_delta, real_delta, axis=1),
              "cosine_logfc": np.diag(cosine_matrix(pred_delta, real_delta)),
              "mse": ((pred_mean - real_mean) ** 2).mean(axis=1),
              "r2_deg_weighted": deg_weighted_metrics(pred_mean, real_mean, ctrl_mean)["r2_deg_weighted"],
              "pearson_delta_pert": (pearson_rows(pred_mean - centroid, real_mean - centroid, axis=1)
                                     if centroid is not None else np.full(len(pred_mean), np.nan))}
    # a prediction with no change (varying over genes) from its reference point carries no
    # information: it correlates 0, not NaN
    shifts = [("pearson_delta", pred_delta)] + ([("pearson_delta_pert", pred_mean - centroid)] if centroid is not None
                                                else [])
    for name, shift in shifts:
        scores[name] = np.where(np.isclose(shift.std(axis=1), 0), 0.0, scores[name])
    scores["cosine_logfc"] = np.where(np.isclose(np.abs(pred_delta).max(axis=1), 0), 0.0, scores["cosine_logfc"])
    return {name: scores[name] for name in CALIBRATED}


def halves(n_cells: int, cell_type: str, perturbation: str, draw: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A pair's real cells (indices) cut in two: (the replicate half, the scored half), seeded by
    the pair's name and the draw, so REFERENCE and EVALUATE cut the same halves."""
    seed = zlib.crc32(f"{cell_type}\t{perturbation}\t{draw}".encode())
    order = np.random.default_rng(seed).permutation(n_cells)
    return np.sort(order[: n_cells // 2]), np.sort(order[n_cells // 2:])


def _cut(group, draw: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each held-out perturbation's real cells with its (replicate, scored) halves."""
    return [(group.real[p], *halves(len(group.real[p]), group.cell_type, p, draw)) for p in group.perturbations]


def scored_half_means(group) -> np.ndarray:
    """Each held-out perturbation's mean over its scored half (rows in ``group.perturbations`` order):
    what a model is scored on, per evaluation, with no replicate mean it does not need."""
    return np.stack([cells[b].mean(axis=0) for cells, _, b in _cut(group, 0)])


def half_means(group, draw: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each held-out perturbation's mean over its replicate half (the controls' mean where that half
    is empty) and over its scored half, rows in ``group.perturbations`` order."""
    cut = _cut(group, draw)
    return (np.stack([cells[a].mean(axis=0) if len(a) else group.control_mean for cells, a, _ in cut]),
            np.stack([cells[b].mean(axis=0) for cells, _, b in cut]))


def reference_rows(group, centroid: np.ndarray | None) -> pd.DataFrame:
    """One cell type's floors and ceilings, a row per (perturbation, metric); ``centroid``: its
    perturbed centroid (None: no floor, so no calibrated score)."""
    ctrl = group.control_mean
    perts = group.perturbations
    sizes = np.array([len(group.real[p]) for p in perts])

    def ceiling(draw: int) -> dict[str, np.ndarray]:
        return mean_scores(*half_means(group, draw), ctrl, centroid)

    replicate, scored = half_means(group)
    top = mean_scores(replicate, scored, ctrl, centroid)
    spread = {m: np.std([ceiling(d)[m] for d in range(1, NOISE_DRAWS + 1)], axis=0) for m in CALIBRATED}
    floors = {"floor": (mean_scores(np.broadcast_to(centroid, scored.shape), scored, ctrl, centroid)
                        if centroid is not None else {m: np.full(len(perts), np.nan) for m in CALIBRATED}),
              "floor_control": mean_scores(np.broadcast_to(ctrl, scored.shape), scored, ctrl, centroid)}
    frames = []
    for m in CALIBRATED:
        sign = 1.0 if higher_is_better(m) else -1.0
        row = {"cell_type": group.cell_type, "perturbation": perts, "metric": m, "ceiling": top[m],
               "noise": spread[m]}
        for kind, floor in floors.items():
            gap = sign * (top[m] - floor[m])
            row[kind] = floor[m]
            # NaN gaps (no floor, or a ceiling undefined) are within noise too
            row[f"within_noise{kind[5:]}"] = (sizes < 2) | ~(gap > NOISE_FACTOR * spread[m])
        frames.append(pd.DataFrame(row))
    return pd.concat(frames, ignore_index=True)


def write_calibration(rows: list[pd.DataFrame], out_dir: str | os.PathLike) -> None:
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    io.write_csv(table, Path(out_dir) / CALIBRATION_FILE)
    if len(table) and table["within_noise"].any():
        log.warning("%d of %d (pair, metric) ceilings are within noise of perturbed_mean's floor: their "
                    "calibrated scores are NaN (%s, column within_noise)", table["within_noise"].sum(), len(table),
                    CALIBRATION_FILE)


def read_calibration(reference: str | os.PathLike | None) -> pd.DataFrame | None:
    path = Path(reference) / CALIBRATION_FILE if reference else None
    if path is None or not path.is_file():
        return None
    return pd.read_csv(path, dtype={"cell_type": str, "perturbation": str}).set_index(
        ["cell_type", "perturbation", "metric"]).sort_index()


def calibrated_scores(group, pred_mean: np.ndarray, centroid: np.ndarray | None,
                      calibration: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """The model's calibrated score per metric and pair, against perturbed_mean's floor
    (``calibrated_<metric>``) and control_mean's (``calibrated_control_<metric>``)."""
    n = len(group.perturbations)
    if calibration is None:
        return {f"calibrated{kind}_{m}": np.full(n, np.nan) for m in CALIBRATED for kind in ("", "_control")}
    scores = mean_scores(pred_mean, scored_half_means(group), group.control_mean, centroid)
    out = {}
    for m in CALIBRATED:
        ref = calibration.reindex([(group.cell_type, p, m) for p in group.perturbations])
        for kind in ("", "_control"):
            floor = ref[f"floor{kind}"].to_numpy()
            usable = ~ref[f"within_noise{kind}"].fillna(True).astype(bool).to_numpy()
            with np.errstate(invalid="ignore", divide="ignore"):
                value = (scores[m] - floor) / (ref["ceiling"].to_numpy() - floor)
            out[f"calibrated{kind}_{m}"] = np.where(usable, value, np.nan)
    return out
