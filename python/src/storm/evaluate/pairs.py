"""Load a prediction and its real cells, check them, and cut them into per-cell-type groups.

Files ``storm predict`` wrote carry their columns and control in ``uns['storm']['spec']``; files
another tool wrote (``state tx infer``, a colleague's script) name them with :class:`Columns`, as
``cell-eval run`` takes them (``--pert-col``, ``--control-pert``, ``--celltype-col``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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

    def check_control(self, obs: pd.DataFrame, path, control: str) -> None:
        values = obs[PERTURBATION].astype(str)
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


def _gene_order(pred: ad.AnnData, real: ad.AnnData, pred_path, real_path) -> np.ndarray | None:
    """Columns of ``pred`` in ``real``'s gene order (tools order genes as they like), or None
    when they already agree."""
    if pred.var_names.equals(real.var_names):
        return None
    if not pred.var_names.is_unique or set(pred.var_names) != set(real.var_names):
        only = sorted(set(real.var_names) - set(pred.var_names)) or sorted(set(pred.var_names) - set(real.var_names))
        raise InputError(f"{pred_path} and {real_path} have different genes (var_names), e.g. "
                         f"{only[0] if only else 'duplicates'}")
    return pred.var_names.get_indexer(real.var_names)


def _check(path) -> None:
    """Every value finite and non-negative, read a block of rows at a time."""
    import h5py

    from ..rowblocks import read_blocks

    with h5py.File(path, "r") as f:
        for _, block in read_blocks(f["X"]):
            values = stored_values(block)
            if not np.all(np.isfinite(values)):
                raise InputError(f"{path} holds NaN or infinite values")
            if values.size and values.min() < 0:
                raise InputError(f"{path} holds negative values; expected log-normalised expression")


def _rows(adata: ad.AnnData, mask: np.ndarray, genes: np.ndarray | None = None) -> np.ndarray:
    """Dense float64 rows ``mask`` of a backed AnnData (in genes order ``genes``, if given)."""
    X = to_dense(adata[np.flatnonzero(mask)].to_memory().X).astype(np.float64)
    return X if genes is None else X[:, genes]


def load_pair(pred_path: str | os.PathLike, real_path: str | os.PathLike, columns: Columns = Columns()
              ) -> tuple[Iterator[CellTypeGroup], str, bool]:
    """Check pred/real (labels first, then every value); return the groups per cell type, each
    read from disk when it is reached (memory grows with the largest cell type's held-out
    cells, not with the files), the control value and whether the real data are bulk profiles."""
    real = io.read_h5ad(real_path, backed=True)
    control = columns.control_of(real, real_path)
    real_obs = columns.labels(real, real_path, control)
    columns.check_control(real_obs, real_path, control)
    # `storm reference` passes the real cells as both sides: read them once
    same = Path(pred_path) == Path(real_path)
    pred = real if same else io.read_h5ad(pred_path, backed=True)
    pred_obs = real_obs if same else columns.labels(pred, pred_path, control)
    genes = _gene_order(pred, real, pred_path, real_path)
    real_ct, pred_ct = (obs[CELL_TYPE].astype(str).to_numpy() for obs in (real_obs, pred_obs))
    real_pert, pred_pert = (obs[PERTURBATION].astype(str).to_numpy() for obs in (real_obs, pred_obs))
    cell_types = []
    for ct in sorted(set(real_ct)):
        perts = sorted(set(real_pert[real_ct == ct]) - {control})
        if not perts:
            continue
        if not (real_pert[real_ct == ct] == control).any() or not (pred_pert[pred_ct == ct] == control).any():
            raise InputError(f"{real_path} or {pred_path} has no control cells for cell type {ct}")
        lacking = sorted(set(perts) - set(pred_pert[pred_ct == ct]))
        if lacking:
            raise InputError(f"{pred_path} lacks {len(lacking)} pair(s) of {real_path}, e.g. {ct}/{lacking[0]}")
        cell_types.append((ct, perts))
    if not cell_types:
        raise InputError(f"{real_path} holds no perturbed cells")
    for path in {pred_path, real_path}:
        _check(path)

    def groups() -> Iterator[CellTypeGroup]:
        for ct, perts in cell_types:
            in_real, in_pred = real_ct == ct, pred_ct == ct
            real_X = _rows(real, in_real)
            pred_X = real_X if same else _rows(pred, in_pred, genes)
            r_pert, p_pert = real_pert[in_real], pred_pert[in_pred]
            yield CellTypeGroup(
                cell_type=ct, perturbations=perts,
                pred={p: pred_X[p_pert == p] for p in perts},
                real={p: real_X[r_pert == p] for p in perts},
                controls=real_X[r_pert == control],
                pred_adata=ad.AnnData(X=pred_X.astype(np.float32), obs=pred_obs[in_pred], var=real.var.copy()),
                real_adata=ad.AnnData(X=real_X.astype(np.float32), obs=real_obs[in_real], var=real.var.copy()),
            )

    return groups(), control, profiles_of(real.uns) == "bulk"


def long_rows(cell_type: str, perturbations: list[str], metrics: dict[str, np.ndarray]) -> pd.DataFrame:
    """Metrics of one cell type's perturbations as long rows (cell_type, perturbation, metric, value)."""
    frames = [pd.DataFrame({"cell_type": cell_type, "perturbation": perturbations, "metric": name,
                            "value": np.asarray(values, dtype=float)}) for name, values in metrics.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["cell_type", "perturbation", "metric", "value"])
