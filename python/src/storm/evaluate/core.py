"""Score one prediction against its real cells: every metric, per (cell type, perturbation).

The long-form table has one row per (dataset, seed, model, cell_type, perturbation, metric);
metrics defined over a whole cell type (``genewise_pearson``, ``vcc_score``) carry the
perturbation ``(all)``, those of a chemical screen's drugs over their doses ``(drug) <compound>``
(:mod:`.drugs`), those of a time course over its time points ``(time course) <compound>``
(:mod:`.time_course`). Bulk profiles get only the metrics that do not need single cells. A metric that
cannot be computed for a pair is a NaN row, never a missing one, so the report can count it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import calibration, perturbench, systema, vcc
from .drugs import drug_metrics
from .pairs import Columns, load_pair, long_rows
from .time_course import time_course_metrics

log = logging.getLogger(__name__)

COLUMNS = ["dataset", "seed", "model", "cell_type", "perturbation", "metric", "value"]
ALL = "(all)"


def is_pair_row(perturbation: pd.Series) -> pd.Series:
    """Rows of a (cell type, perturbation) pair, not of a summary over several (``(all)``, ``(drug) ..``)."""
    return ~perturbation.astype(str).str.startswith("(")


def evaluate(pred_path: str | os.PathLike, real_path: str | os.PathLike, dataset: str, seed: int, model: str,
             reference: str | os.PathLike | None = None, threads: int = 1, quadratic: str = "auto",
             with_vcc: bool = True, deg_k: tuple[int, ...] = perturbench.DEG_K, columns: Columns = Columns(),
             profile: str = "full") -> pd.DataFrame:
    """Long-form metrics (see ``COLUMNS``) of one prediction against its real cells.

    Parameters
    ----------
    reference
        folder written by ``storm reference`` for the same real cells: its DE tables are reused, its
        baseline gives ``vcc_score`` and its perturbed centroid Systema's metrics. Without it, real
        DE is computed here and those are NaN.
    threads
        threads for differential expression.
    quadratic
        ``auto`` skips metrics quadratic in cells on large data, ``on``/``off`` force them.
    with_vcc
        compute the cell-eval metrics (off: storm's own metrics only).
    deg_k
        the k of the top-k DEG R² metrics.
    columns
        the obs columns and control value of files storm did not write (``cell-eval run``'s options).
    profile
        cell-eval's metric profile (``metrics.PROFILES``).
    """
    groups, control, bulk = load_pair(pred_path, real_path, columns)
    if bulk:
        log.info("bulk profiles: metrics that need single cells (DE tests, distributions) are skipped")
    baseline = pd.read_csv(Path(reference) / vcc.BASELINE_FILE) if with_vcc and reference else None
    calibrated = calibration.read_calibration(reference)
    perturbed_effects = systema.read_perturbed_effects(reference)
    frames = []
    for group in groups:
        pred_mean, real_mean = group.means("pred"), group.means("real")
        ctrl_mean = group.control_mean
        own = perturbench.fit_metrics(pred_mean, real_mean, ctrl_mean, deg_k)
        centroid = systema.perturbed_centroid(perturbed_effects, group.cell_type, ctrl_mean)
        own.update(systema.centroid_metrics(pred_mean, real_mean, centroid))
        own.update(systema.deg_weighted_metrics(pred_mean, real_mean, ctrl_mean))
        own.update(calibration.calibrated_scores(group, pred_mean, centroid, calibrated))
        if not bulk:
            own.update(perturbench.distribution_metrics(group, seed=seed))
        frames.append(long_rows(group.cell_type, group.perturbations, own))
        pred_delta, real_delta = pred_mean - ctrl_mean, real_mean - ctrl_mean
        for summaries, metrics in (drug_metrics(group.perturbations, pred_delta, real_delta, deg_k),
                                   time_course_metrics(group.perturbations, pred_delta, real_delta)):
            if summaries:
                frames.append(long_rows(group.cell_type, summaries, metrics))
        aggregate = {"genewise_pearson": [perturbench.genewise_pearson(pred_delta, real_delta)]}
        if with_vcc:
            de = None if bulk else vcc.read_de(reference, group.cell_type)
            results, agg = vcc.vcc_metrics(group, control, de, threads, quadratic, bulk, profile)
            table = results.set_index("perturbation").reindex(group.perturbations)
            frames.append(long_rows(group.cell_type, group.perturbations,
                                    {m: table[m].to_numpy() for m in table.columns}))
            if baseline is not None:
                base = baseline[baseline["cell_type"] == group.cell_type]
                aggregate["vcc_score"] = [vcc.vcc_score(agg, base) if len(base) else np.nan]
        frames.append(long_rows(group.cell_type, [ALL], aggregate))
        log.info("%s: %d perturbations scored", group.cell_type, len(group.perturbations))
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "model", model)
    table.insert(0, "seed", seed)
    table.insert(0, "dataset", dataset)
    missing = table[table["value"].isna()]
    if len(missing):
        log.warning("%d metric value(s) are NaN (recorded), e.g. %s for %s/%s", len(missing),
                    missing.iloc[0]["metric"], missing.iloc[0]["cell_type"], missing.iloc[0]["perturbation"])
    return table[COLUMNS]
