"""Load a prediction and its real cells, check them, and cut them into per-cell-type groups.

Files ``storm predict`` wrote carry their columns and control in ``uns['storm']['spec']``; files
another tool wrote (``state tx infer``, a colleague's script) name them with :class:`Columns`, as
``cell-eval run`` takes them (``--pert-col``, ``--control-pert``, ``--celltype-col``).
"""

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


#: the cell type of files without one (scored as one group, as cell-eval does without --celltype-col)
ONE_CELL_TYPE = "all"


def _storm_control(adata: ad.AnnData) -> str | None:
    """The control value of a file storm wrote (its spec in uns), else None."""
    try:
        return adata.uns["storm"]["spec"]["control_value"]
    except (KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Columns:
    """Where another tool's files keep the perturbation and the cell type, and which value is their
    control. A file storm wrote keeps its own (its spec in uns); unset fields fall back to storm's
    names (``perturbation``, ``cell_type``) and to the real file's control."""

    pert_col: str | None = None
    control: str | None = None
    celltype_col: str | None = None

    def labels(self, adata: ad.AnnData, path, control: str) -> pd.DataFrame:
        """``adata``'s obs as storm's columns (``perturbation``, ``cell_type``), ``control`` marking
        its controls, the cell type constant when there is none."""
        own = _storm_control(adata)
        if own is not None:
            pert_col, celltype_col, its_control = PERTURBATION, CELL_TYPE, own
        else:
            pert_col, its_control = self.pert_col or PERTURBATION, self.control or control
            celltype_col = self.celltype_col or (CELL_TYPE if CELL_TYPE in adata.obs else None)
        missing = [c for c in (pert_col, celltype_col) if c and c not in adata.obs]
        if missing:
            raise InputError(f"{path} lacks obs column(s) {', '.join(missing)} (obs holds: "
                             f"{', '.join(map(str, adata.obs.columns[:12])) or 'nothing'}); name them with "
                             f"--pert-col / --celltype-col")
        obs = pd.DataFrame(index=adata.obs_names)
        obs[PERTURBATION] = adata.obs[pert_col].astype(str).replace(its_control, control).to_numpy()
        obs[CELL_TYPE] = adata.obs[celltype_col].astype(str).to_numpy() if celltype_col else ONE_CELL_TYPE
        return obs

    def standardise(self, adata: ad.AnnData, path, control: str) -> ad.AnnData:
        """``adata`` with the obs of :meth:`labels`."""
        return ad.AnnData(X=adata.X, obs=self.labels(adata, path, control), var=adata.var, uns=adata.uns)

    def check_control(self, adata: ad.AnnData, path, control: str) -> None:
        values = adata.obs[PERTURBATION].astype(str)
        if not (values == control).any():
            frequent = ", ".join(values.value_counts().index[:5])
            raise InputError(f"{path}: no cell has {self.pert_col or PERTURBATION} = '{self.control or control}' "
                             f"(the control); most frequent values: {frequent}; name the control with --control-pert")

    def control_of(self, real: ad.AnnData, real_path) -> str:
        own = _storm_control(real)
        if own is not None:
            return own
        if self.control is not None:
            return self.control
        raise InputError(f"{real_path} was not written by storm (no uns['storm']['spec']): name its control "
                         f"with --control-pert (and its columns with --pert-col, --celltype-col)")


def _aligned_genes(pred: ad.AnnData, real: ad.AnnData, pred_path, real_path) -> ad.AnnData:
    """``pred`` with ``real``'s genes in ``real``'s order (tools order genes as they like)."""
    if pred.var_names.equals(real.var_names):
        return pred
    if not pred.var_names.is_unique or set(pred.var_names) != set(real.var_names):
        only = sorted(set(real.var_names) - set(pred.var_names)) or sorted(set(pred.var_names) - set(real.var_names))
        raise InputError(f"{pred_path} and {real_path} have different genes (var_names), e.g. "
                         f"{only[0] if only else 'duplicates'}")
    return pred[:, real.var_names]


def _check(adata: ad.AnnData, path) -> None:
    values = stored_values(adata.X)
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path} holds NaN or infinite values")
    if values.size and values.min() < 0:
        raise InputError(f"{path} holds negative values; expected log-normalised expression")


def load_pair(pred_path: str | os.PathLike, real_path: str | os.PathLike, columns: Columns = Columns()
              ) -> tuple[list[CellTypeGroup], str, bool]:
    """Read and check pred/real; return the groups per cell type, the control value and whether
    the real data are bulk profiles."""
    real = io.read_h5ad(real_path)
    control = columns.control_of(real, real_path)
    real = columns.standardise(real, real_path, control)
    columns.check_control(real, real_path, control)
    # `storm reference` passes the real cells as both sides: read them once
    pred = real if Path(pred_path) == Path(real_path) else \
        columns.standardise(io.read_h5ad(pred_path), pred_path, control)
    pred = _aligned_genes(pred, real, pred_path, real_path)
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
