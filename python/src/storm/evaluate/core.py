"""Pseudobulk metrics per (cell type, perturbation) and the long-form metrics table.

Each pair is compared through mean expression: the prediction's mean and the real mean, and
their deltas from the real control mean of the same cell type (pred.h5ad carries the same
controls). Data is log-normalised, so a delta is a log fold change.
"""

from __future__ import annotations

import os

import anndata as ad
import numpy as np
import pandas as pd

from .. import io
from ..arrays import stored_values, to_dense
from ..errors import InputError
from ..spec import CELL_TYPE, PERTURBATION

COLUMNS = ["dataset", "seed", "model", "cell_type", "perturbation", "metric", "value"]


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=1) / denom, np.nan)


def _rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=1) / denom, np.nan)


def pseudobulk_metrics(pred_mean: np.ndarray, real_mean: np.ndarray, ctrl_mean: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of each row (pair) from its predicted, real and control mean expression.

    pearson_delta: correlation of predicted and real change from control; mse/mae: error of the
    means; cosine_logfc: cosine of the predicted and real log fold changes. A constant delta
    (e.g. predicting no change) has an undefined correlation, recorded as NaN.
    """
    pred_delta, real_delta = pred_mean - ctrl_mean, real_mean - ctrl_mean
    diff = pred_mean - real_mean
    return {
        "pearson_delta": _rowwise_pearson(pred_delta, real_delta),
        "mse": (diff ** 2).mean(axis=1),
        "mae": np.abs(diff).mean(axis=1),
        "cosine_logfc": _rowwise_cosine(pred_delta, real_delta),
    }


def _group_means(adata: ad.AnnData, keys: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(to_dense(adata.X), columns=adata.var_names)
    return frame.groupby([adata.obs[k].astype(str).to_numpy() for k in keys], sort=True).mean()


def _control_value(adata: ad.AnnData, path) -> str:
    try:
        return adata.uns["storm"]["spec"]["control_value"]
    except KeyError as exc:
        raise InputError(f"{path} has no uns['storm']['spec']; write it with `storm predict`") from exc


def evaluate(pred_path: str | os.PathLike, real_path: str | os.PathLike, dataset: str, seed: int,
             model: str) -> pd.DataFrame:
    """Long-form metrics (see ``COLUMNS``) of one prediction against its real cells."""
    pred, real = io.read_h5ad(pred_path), io.read_h5ad(real_path)
    if not pred.var_names.equals(real.var_names):
        raise InputError(f"{pred_path} and {real_path} have different genes (var_names)")
    for path, adata in ((pred_path, pred), (real_path, real)):
        missing = [k for k in (PERTURBATION, CELL_TYPE) if k not in adata.obs]
        if missing:
            raise InputError(f"{path} lacks obs column(s) {', '.join(missing)}")
        if not np.all(np.isfinite(stored_values(adata.X))):
            raise InputError(f"{path} holds NaN or infinite values")
    control = _control_value(real, real_path)

    real_means = _group_means(real, [CELL_TYPE, PERTURBATION])
    pred_means = _group_means(pred, [CELL_TYPE, PERTURBATION])
    is_ctrl = real_means.index.get_level_values(1) == control
    ctrl_means = real_means[is_ctrl].droplevel(1)
    pairs = real_means.index[~is_ctrl]
    if len(pairs) == 0:
        raise InputError(f"{real_path} holds no perturbed cells")
    missing = pairs.difference(pred_means.index)
    if len(missing):
        raise InputError(f"{pred_path} lacks {len(missing)} pair(s) of {real_path}, e.g. {'/'.join(missing[0])}")
    no_ctrl = sorted(set(pairs.get_level_values(0)) - set(ctrl_means.index))
    if no_ctrl:
        raise InputError(f"{real_path} has no control cells for cell type(s) {', '.join(no_ctrl)}")

    cell_types = pairs.get_level_values(0)
    scores = pseudobulk_metrics(
        pred_means.loc[pairs].to_numpy(), real_means.loc[pairs].to_numpy(), ctrl_means.loc[cell_types].to_numpy()
    )
    frames = [
        pd.DataFrame({"cell_type": cell_types, "perturbation": pairs.get_level_values(1), "metric": name,
                      "value": values})
        for name, values in scores.items()
    ]
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "model", model)
    table.insert(0, "seed", seed)
    table.insert(0, "dataset", dataset)
    return table[COLUMNS]
