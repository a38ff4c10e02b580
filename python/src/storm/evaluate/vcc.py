"""The Virtual Cell Challenge metrics, computed by the real cell-eval package.

The real data's differential expression and the cell-mean baseline's aggregate metrics depend
only on the real cells, so :func:`build_reference` computes them once per dataset and split and
every model's evaluation reuses them (cell-eval's ``--de-real``). DE is computed with pdex and
the exact arguments the ``cell-eval run`` CLI passes, so values equal the CLI's.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import polars as pl

from .. import io
from ..arrays import to_dense
from ..errors import StormError
from ..numba_cache import cache_kernels
from ..spec import PERTURBATION
from .pairs import CellTypeGroup

log = logging.getLogger(__name__)

#: metrics quadratic in the number of cells; skipped above this many cells unless asked for
QUADRATIC = ["pearson_edistance"]
#: cell-eval's metrics over cells rather than means: meaningless on bulk profiles (with its DE metrics)
SINGLE_CELL = ["pearson_edistance", "clustering_agreement"]
QUADRATIC_CELL_LIMIT = 20_000
BASELINE_FILE = "baseline_agg.csv"


def _pdex_kwargs(control: str, threads: int) -> dict:
    """What `cell-eval run` passes to pdex by default (epsilon 0, no CPM filter, log1p input)."""
    return {"reference": control, "groupby": PERTURBATION, "threads": threads, "is_log1p": True,
            "epsilon": 0.0, "cpm_filter": None}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def de_path(reference_dir: str | os.PathLike, cell_type: str) -> Path:
    return Path(reference_dir) / f"{_safe(cell_type)}_real_de.csv"


def real_de(real: ad.AnnData, control: str, threads: int) -> pl.DataFrame:
    from pdex import pdex

    cache_kernels()
    return pdex(adata=real, mode="ref", **_pdex_kwargs(control, threads))


def cell_mean_baseline(real: ad.AnnData, control: str) -> ad.AnnData:
    """cell-eval's cell-mean baseline: every perturbed cell predicted as the mean of all perturbed
    real cells; controls unchanged."""
    is_ctrl = real.obs[PERTURBATION].astype(str).to_numpy() == control
    X = to_dense(real.X).astype(np.float32)
    baseline = X.copy()
    baseline[~is_ctrl] = X[~is_ctrl].mean(axis=0)
    return ad.AnnData(X=baseline, obs=real.obs.copy(), var=real.var.copy())


def _evaluator(pred: ad.AnnData, real: ad.AnnData, de: pl.DataFrame | None, control: str, threads: int, outdir: str,
               bulk: bool = False):
    from cell_eval import MetricsEvaluator

    # bulk log expression may reach the ceiling of cell-eval's single-cell log1p check (L1000's log2
    # values stop at 15.0): on bulk, cell-eval takes the values as they are (storm checked them)
    return MetricsEvaluator(adata_pred=pred, adata_real=real, de_real=de, control_pert=control,
                            pert_col=PERTURBATION, num_threads=threads, outdir=outdir,
                            pdex_kwargs={"cpm_filter": None, "epsilon": 0.0}, skip_de=bulk, allow_discrete=bulk)


def _skipped(n_cells: int, quadratic: str) -> list[str]:
    if quadratic == "on" or (quadratic == "auto" and n_cells <= QUADRATIC_CELL_LIMIT):
        return []
    return list(QUADRATIC)


class _FailedMetrics(logging.Handler):
    """Collects the metrics cell-eval reports as failed (it logs them and carries on)."""

    PATTERN = re.compile(r"Error computing metric '([^']+)': (.*)")

    def __init__(self):
        super().__init__(logging.ERROR)
        self.failed: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = self.PATTERN.match(record.getMessage())
        if match:
            self.failed[match.group(1)] = match.group(2)


def vcc_metrics(group: CellTypeGroup, control: str, de: pl.DataFrame | None, threads: int,
                quadratic: str = "auto", bulk: bool = False, profile: str = "full"
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """cell-eval's ``profile`` for one cell type: (per-perturbation table, aggregate table); on bulk
    profiles its metrics of means only (no DE, nothing over single cells).

    A metric cell-eval fails to compute (it only logs that) becomes a NaN column, logged as a
    warning, so it is counted as missing rather than silently absent.
    """
    cache_kernels()
    skip = SINGLE_CELL if bulk else _skipped(2 * group.real_adata.n_obs, quadratic)  # real cells: same for all models
    handler = _FailedMetrics()
    runner_log = logging.getLogger("cell_eval._pipeline._runner")
    runner_log.addHandler(handler)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            evaluator = _evaluator(group.pred_adata, group.real_adata, de, control, threads, tmp, bulk)
            results, agg = evaluator.compute(profile="anndata" if bulk else profile, skip_metrics=skip or None,
                                             write_csv=False)
    finally:
        runner_log.removeHandler(handler)
    results, agg = results.to_pandas(), agg.to_pandas()
    for metric, reason in handler.failed.items():
        log.warning("cell-eval could not compute %s for cell type %s (%s); recorded as NaN",
                    metric, group.cell_type, reason)
        results[metric] = np.nan
        agg[metric] = np.nan
    if results.empty:
        raise StormError(f"cell-eval computed no metric for cell type {group.cell_type}")
    return results, agg


def build_reference(real_path: str | os.PathLike, out_dir: str | os.PathLike, threads: int,
                    quadratic: str = "auto") -> None:
    """Per cell type: the real data's DE table, the cell-mean baseline's aggregate metrics and the
    calibrated scores' floors and ceilings (against the perturbed centroid already written to
    ``out_dir`` by :func:`.systema.write_perturbed_effects`, if it was)."""
    from .calibration import reference_rows, write_calibration
    from .pairs import load_pair
    from .systema import perturbed_centroid, read_perturbed_effects

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups, control, bulk = load_pair(real_path, real_path)
    rows, calibration_rows = [], []
    effects = read_perturbed_effects(out)
    for group in groups:
        centroid = perturbed_centroid(effects, group.cell_type, group.control_mean)
        calibration_rows.append(reference_rows(group, centroid))
        de = None
        if not bulk:  # bulk profiles: no DE tests
            de = real_de(group.real_adata, control, threads)
            with io.atomic_path(de_path(out, group.cell_type)) as tmp:
                de.write_csv(tmp)
        baseline = cell_mean_baseline(group.real_adata, control)
        base_group = CellTypeGroup(group.cell_type, group.perturbations, {}, {}, group.controls, baseline,
                                   group.real_adata)
        _, agg = vcc_metrics(base_group, control, de, threads, quadratic, bulk)
        means = agg[agg["statistic"] == "mean"].drop(columns="statistic").iloc[0]
        rows += [{"cell_type": group.cell_type, "metric": m, "value": float(v)} for m, v in means.items()]
        log.info("reference for %s (%d perturbations): %s, baseline scored", group.cell_type,
                 len(group.perturbations), "bulk profiles, no DE" if bulk else "DE")
    io.write_csv(pd.DataFrame(rows), out / BASELINE_FILE)
    write_calibration(calibration_rows, out)


def read_de(reference_dir: str | os.PathLike | None, cell_type: str) -> pl.DataFrame | None:
    if reference_dir is None:
        return None
    path = de_path(reference_dir, cell_type)
    if not path.is_file():
        raise StormError(f"{reference_dir} has no real DE for cell type {cell_type} ({path.name}); "
                         f"build it with `storm reference`")
    return pl.read_csv(path, schema_overrides={"target": pl.Utf8, "feature": pl.Utf8})


def vcc_score(agg: pd.DataFrame, baseline: pd.DataFrame) -> float:
    """cell-eval's baseline-normalised score: per metric, the gain over the cell-mean baseline
    toward the metric's best value (clipped at 0), averaged."""
    from cell_eval import score_agg_metrics

    user = agg[agg["statistic"] == "mean"]
    base = pd.DataFrame([baseline.set_index("metric")["value"].reindex(user.columns[1:]).to_numpy()],
                        columns=user.columns[1:])
    base.insert(0, "statistic", "mean")
    scores = score_agg_metrics(pl.from_pandas(user), pl.from_pandas(base))
    return float(scores.filter(pl.col("metric") == "avg_score")["from_baseline"][0])
