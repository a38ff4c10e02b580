"""Normalise a dataset and choose its genes without leaking held-out perturbations.

``X`` becomes log1p(counts normalised to 10,000 per cell) and the counts move to
``layers['counts']``; data that is already log-normalised is kept as it is. Highly variable genes
are chosen per split on that split's training cells only, into ``var['hvg_<split>']``, so the
gene set never depends on the cells a model is judged on.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from .arrays import stored_values
from .errors import InputError
from .spec import BATCH, CELL_TYPE, PERTURBATION, DatasetSpec

log = logging.getLogger(__name__)

LOG_MAX = 30.0  # log1p of normalised counts stays far below this; raw counts rarely do


def hvg_key(split_name: str) -> str:
    return f"hvg_{split_name}"


def detect_scale(X) -> str:
    """'counts' for integer data, 'log' for log-normalised data, 'normalised' otherwise."""
    values = stored_values(X)
    if values.size == 0 or np.all(np.mod(values, 1) == 0):
        return "counts"
    return "log" if values.max() <= LOG_MAX else "normalised"


def add_canonical_obs(adata: ad.AnnData, spec: DatasetSpec) -> None:
    """Copy the spec's columns to storm's canonical names as string categoricals."""
    sources = {PERTURBATION: spec.perturbation_key, CELL_TYPE: spec.cell_type_key}
    for canonical, source in sources.items():
        adata.obs[canonical] = pd.Categorical(adata.obs[source].astype(str).to_numpy(dtype=object))
    batch = adata.obs[spec.batch_key].astype(str).to_numpy(dtype=object) if spec.batch_key else "batch0"
    adata.obs[BATCH] = pd.Categorical(np.broadcast_to(batch, adata.n_obs).astype(object))


def normalise(adata: ad.AnnData) -> str:
    """Log-normalise X in place; return the scale X had on input."""
    scale = detect_scale(adata.X)
    if scale == "counts":
        adata.layers["counts"] = adata.X.copy()
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
    elif scale == "normalised":
        log.warning("X is normalised but not logged; applying log1p (no counts layer)")
        sc.pp.log1p(adata)
    else:
        log.info("X is already log-normalised; keeping it (no counts layer)")
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    return scale


def select_genes(adata: ad.AnnData, train_mask: np.ndarray, n_top_genes: int) -> np.ndarray:
    """Boolean mask of the ``n_top_genes`` most variable genes among the training cells."""
    if n_top_genes >= adata.n_vars:
        return np.ones(adata.n_vars, dtype=bool)
    train = ad.AnnData(X=adata.X[train_mask], var=pd.DataFrame(index=adata.var_names))
    table = sc.pp.highly_variable_genes(train, n_top_genes=n_top_genes, flavor="seurat", inplace=False)
    return table["highly_variable"].to_numpy()


def prepare(adata: ad.AnnData, spec: DatasetSpec, splits: dict[str, pd.DataFrame],
            n_top_genes: int = 2000) -> ad.AnnData:
    """Prepare a dataset for training.

    Parameters
    ----------
    adata
        the validated input.
    spec
        its dataset spec.
    splits
        split name (e.g. ``seed0``) -> the split table (``cell_id``, ``split``).
    n_top_genes
        genes kept per split.
    """
    if n_top_genes < 1:
        raise InputError(f"n_top_genes must be at least 1, got {n_top_genes}")
    add_canonical_obs(adata, spec)
    scale = normalise(adata)
    for name, table in splits.items():
        split = table.set_index("cell_id")["split"].reindex(adata.obs_names.astype(str))
        if split.isna().any():
            raise InputError(f"split {name} does not cover {int(split.isna().sum())} cell(s) of the dataset")
        mask = select_genes(adata, (split == "train").to_numpy(), n_top_genes)
        adata.var[hvg_key(name)] = mask
        log.info("split %s: %d genes chosen on %d training cells", name, mask.sum(), (split == "train").sum())
    adata.uns["storm"] = {"spec": spec.to_dict(), "input_scale": scale, "splits": sorted(splits)}
    return adata
