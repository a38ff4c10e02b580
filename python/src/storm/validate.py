"""Check a dataset against its spec before any expensive step runs."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from . import io
from .arrays import stored_values
from .errors import InputError, SpecError
from .spec import DatasetSpec

log = logging.getLogger(__name__)


def check_obs(obs: pd.DataFrame, spec: DatasetSpec) -> dict:
    """Check the obs table against the spec and summarise it.

    Raises
    ------
    SpecError
        a named column is missing, holds empty values, the control value is absent, or a cell
        type has no control cells.
    InputError
        the table is empty or there is no perturbed cell.

    Returns
    -------
    dict with the counts that go into ``qc.json``.
    """
    if obs.shape[0] == 0:
        raise InputError("the dataset has no cells")
    missing = [c for c in spec.columns() if c not in obs.columns]
    if missing:
        available = ", ".join(map(str, obs.columns[:20])) or "(none)"
        raise SpecError(
            f"obs column(s) {', '.join(missing)} not found; available columns: {available}"
        )
    for col in spec.columns():
        n_null = int(obs[col].isna().sum())
        if n_null:
            raise SpecError(f"obs column '{col}' has {n_null} empty value(s); fill or drop those cells")

    pert = obs[spec.perturbation_key].astype(str)
    cell_type = obs[spec.cell_type_key].astype(str)
    is_control = (pert == spec.control_value).to_numpy()
    if not is_control.any():
        values = ", ".join(sorted(pert.unique())[:10])
        raise SpecError(
            f"control value '{spec.control_value}' not found in obs column "
            f"'{spec.perturbation_key}' (values include: {values}); set --control_value"
        )
    if is_control.all():
        raise InputError("every cell is a control: there is no perturbation to model")
    ctrl_types = set(cell_type[is_control])
    without = sorted(set(cell_type) - ctrl_types)
    if without:
        raise SpecError(
            f"cell type(s) {', '.join(without)} have no control cells "
            f"('{spec.control_value}'); counterfactual prediction needs controls in every cell type"
        )
    perts = pert[~is_control]
    combos = perts[perts.str.contains(spec.combo_delimiter, regex=False)]
    return {
        "n_cells": int(obs.shape[0]),
        "n_control_cells": int(is_control.sum()),
        "n_perturbations": int(perts.nunique()),
        "n_combinations": int(combos.nunique()),
        "n_cell_types": int(cell_type.nunique()),
        "n_batches": int(obs[spec.batch_key].nunique()) if spec.batch_key else 1,
        "cells_per_cell_type": cell_type.value_counts().sort_index().to_dict(),
    }


def check_values(path: str | os.PathLike, n_rows: int = 2000) -> dict:
    """Look at the first rows of X: values must be finite and non-negative."""
    adata = io.read_h5ad(path, backed=True)
    try:
        block = adata.X[: min(n_rows, adata.n_obs)]
        values = stored_values(block)
    finally:
        adata.file.close()
    if not np.all(np.isfinite(values)):
        raise InputError(f"X of {path} holds NaN or infinite values")
    if values.size and values.min() < 0:
        raise InputError(f"X of {path} holds negative values; storm expects counts or log-normalised data")
    integer = bool(np.all(np.equal(np.mod(values, 1), 0)))
    return {"looks_like_counts": integer}


def validate(path: str | os.PathLike, spec: DatasetSpec) -> dict:
    """Validate a dataset file against its spec; return the QC summary."""
    obs = io.read_obs(path)
    qc = check_obs(obs, spec)
    n_obs, n_vars = io.read_shape(path)
    if n_vars == 0:
        raise InputError(f"{path} has no genes")
    qc.update(check_values(path))
    qc.update({"n_genes": n_vars, "spec": spec.to_dict()})
    log.info("%s: %d cells, %d genes, %d perturbations, %d cell types",
             path, n_obs, n_vars, qc["n_perturbations"], qc["n_cell_types"])
    return qc
