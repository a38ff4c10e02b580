"""A small sample of a model's predicted cells beside the real ones, for the report's map of real
against predicted cells: every model's sample of a split shares its real cells (drawn with a
fixed seed), so the report embeds them all together, one map per dataset."""

from __future__ import annotations

import os

import anndata as ad
import numpy as np
import pandas as pd

from .. import io
from ..arrays import to_dense
from ..spec import CELL_TYPE, PERTURBATION
from .pairs import Columns

CELLS_FILE = "cells.h5ad"
MAX_CELLS = 300  # per kind: predicted, real perturbed, real control
SOURCE = "source"  # obs column: predicted, real, control


def _draw(adata: ad.AnnData, labels: pd.DataFrame, mask: np.ndarray, n: int, kind: str) -> ad.AnnData:
    rows = np.flatnonzero(mask)
    rows = np.sort(np.random.default_rng(0).choice(rows, size=min(n, rows.size), replace=False))
    part = adata[rows].to_memory() if adata.isbacked else adata[rows].copy()
    obs = labels.iloc[rows].astype(str).assign(**{SOURCE: kind})[[SOURCE, CELL_TYPE, PERTURBATION]]
    obs.index = part.obs_names.astype(str)
    return ad.AnnData(X=to_dense(part.X).astype(np.float32), obs=obs, var=pd.DataFrame(index=part.var_names))


def sample_cells(pred_path: str | os.PathLike, real_path: str | os.PathLike, dataset: str, seed: int, model: str,
                 max_cells: int = MAX_CELLS, columns: Columns = Columns()) -> ad.AnnData:
    """Up to ``max_cells`` predicted cells, real perturbed cells and real controls (read by row,
    not whole), labelled in ``obs['source']``; ``uns`` names the dataset, seed and model.
    ``columns`` name another tool's obs columns, as for evaluation."""
    pred, real = io.read_h5ad(pred_path, backed=True), io.read_h5ad(real_path, backed=True)
    control = columns.control_of(real, real_path)
    pred_labels, real_labels = columns.labels(pred, pred_path, control), columns.labels(real, real_path, control)
    is_control = real_labels[PERTURBATION].to_numpy() == control
    parts = [_draw(pred, pred_labels, pred_labels[PERTURBATION].to_numpy() != control, max_cells, "predicted"),
             _draw(real, real_labels, ~is_control, max_cells, "real"),
             _draw(real, real_labels, is_control, max_cells, "control")]
    sample = ad.concat(parts, index_unique="-")
    sample.uns["sample"] = {"dataset": dataset, "seed": seed, "model": model}
    return sample
