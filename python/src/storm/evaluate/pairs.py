"""Load a prediction and its real cells, check them, and cut them into per-cell-type groups."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .. import io
from ..arrays import stored_values, to_dense
from ..errors import InputError
from ..spec import CELL_TYPE, PERTURBATION, profiles_of


@dataclass
class CellTypeGroup:
    """One cell type's predicted and real cells (dense), split into perturbations and controls."""

    cell_type: str
    perturbations: list[str]  # held-out perturbations, sorted
    pred: dict[str, np.ndarray]  # perturbation -> predicted cells
    real: dict[str, np.ndarray]  # perturbation -> real cells
    controls: np.ndarray  # real control cells
    pred_adata: ad.AnnData
    real_adata: ad.AnnData

    def means(self, which: str) -> np.ndarray:
        """Mean expression per perturbation (rows in ``perturbations`` order)."""
        cells = self.pred if which == "pred" else self.real
        return np.stack([cells[p].mean(axis=0) for p in self.perturbations])

    @property
    def control_mean(self) -> np.ndarray:
        return self.controls.mean(axis=0)


def _check(adata: ad.AnnData, path) -> None:
    missing = [k for k in (PERTURBATION, CELL_TYPE) if k not in adata.obs]
    if missing:
        raise InputError(f"{path} lacks obs column(s) {', '.join(missing)}")
    values = stored_values(adata.X)
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path} holds NaN or infinite values")
    if values.size and values.min() < 0:
        raise InputError(f"{path} holds negative values; expected log-normalised expression")


def load_pair(pred_path: str | os.PathLike, real_path: str | os.PathLike) -> tuple[list[CellTypeGroup], str, bool]:
    """Read and check pred/real; return the groups per cell type, the control value and whether
    the real data are bulk profiles."""
    real = io.read_h5ad(real_path)
    # `storm reference` passes the real cells as both sides: read them once
    pred = real if Path(pred_path) == Path(real_path) else io.read_h5ad(pred_path)
    try:
        control = real.uns["storm"]["spec"]["control_value"]
    except KeyError as exc:
        raise InputError(f"{real_path} has no uns['storm']['spec']; write it with `storm predict`") from exc
    if not pred.var_names.equals(real.var_names):
        raise InputError(f"{pred_path} and {real_path} have different genes (var_names)")
    _check(pred, pred_path)
    _check(real, real_path)
    groups = []
    for ct in sorted(real.obs[CELL_TYPE].astype(str).unique()):
        real_ct = real[real.obs[CELL_TYPE].astype(str).to_numpy() == ct].copy()
        pred_ct = pred[pred.obs[CELL_TYPE].astype(str).to_numpy() == ct].copy()
        real_pert = real_ct.obs[PERTURBATION].astype(str).to_numpy()
        pred_pert = pred_ct.obs[PERTURBATION].astype(str).to_numpy()
        perts = sorted(set(real_pert) - {control})
        if not perts:
            continue
        if not (real_pert == control).any() or not (pred_pert == control).any():
            raise InputError(f"{real_path} or {pred_path} has no control cells for cell type {ct}")
        lacking = sorted(set(perts) - set(pred_pert))
        if lacking:
            raise InputError(f"{pred_path} lacks {len(lacking)} pair(s) of {real_path}, e.g. {ct}/{lacking[0]}")
        real_X, pred_X = to_dense(real_ct.X).astype(np.float64), to_dense(pred_ct.X).astype(np.float64)
        groups.append(CellTypeGroup(
            cell_type=ct, perturbations=perts,
            pred={p: pred_X[pred_pert == p] for p in perts},
            real={p: real_X[real_pert == p] for p in perts},
            controls=real_X[real_pert == control], pred_adata=pred_ct, real_adata=real_ct,
        ))
    if not groups:
        raise InputError(f"{real_path} holds no perturbed cells")
    return groups, control, profiles_of(real.uns) == "bulk"


def long_rows(cell_type: str, perturbations: list[str], metrics: dict[str, np.ndarray]) -> pd.DataFrame:
    """Metrics of one cell type's perturbations as long rows (cell_type, perturbation, metric, value)."""
    frames = [pd.DataFrame({"cell_type": cell_type, "perturbation": perturbations, "metric": name,
                            "value": np.asarray(values, dtype=float)}) for name, values in metrics.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["cell_type", "perturbation", "metric", "value"])
