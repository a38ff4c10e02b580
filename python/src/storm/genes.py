"""Choose the genes of one split on its training cells only, so the gene set never depends on the
cells a model is judged on (PerturBench chooses them on all cells, test included).

``genes.csv`` lists the chosen genes (column ``gene``) in the prepared data's order.
"""

from __future__ import annotations

import logging
import os

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc

from . import io
from .errors import InputError

log = logging.getLogger(__name__)


def read_split(split_csv: str | os.PathLike, cell_ids: pd.Index) -> np.ndarray:
    """The split label of every cell of ``cell_ids``, from a ``cell_id,split`` CSV."""
    table = io.read_csv(split_csv, dtype={"cell_id": str, "split": str})
    if list(table.columns[:2]) != ["cell_id", "split"]:
        raise InputError(f"{split_csv} is not a split table (columns cell_id, split)")
    split = table.set_index("cell_id")["split"].reindex(cell_ids.astype(str))
    if split.isna().any():
        example = split.index[split.isna().to_numpy()][0]
        raise InputError(f"{split_csv} gives no split for {int(split.isna().sum())} cell(s), e.g. {example}")
    return split.to_numpy(dtype=object)


def select_genes(prepared: str | os.PathLike, split_csv: str | os.PathLike, n_top_genes: int) -> pd.DataFrame:
    """The ``n_top_genes`` most variable genes (Seurat's dispersion) among the training cells."""
    if n_top_genes < 1:
        raise InputError(f"n_top_genes must be at least 1, got {n_top_genes}")
    adata = io.read_h5ad(prepared, backed=True)
    try:
        train = np.flatnonzero(read_split(split_csv, adata.obs_names) == "train")
        if train.size == 0:
            raise InputError(f"{split_csv} has no training cells to choose genes on")
        genes = adata.var_names.to_numpy(dtype=object)
        if n_top_genes >= genes.size:
            mask = np.ones(genes.size, dtype=bool)
        else:
            cells = ad.AnnData(X=adata.X[train], var=pd.DataFrame(index=adata.var_names))
            table = sc.pp.highly_variable_genes(cells, n_top_genes=n_top_genes, flavor="seurat", inplace=False)
            mask = table["highly_variable"].to_numpy()
    finally:
        adata.file.close()
    log.info("%d of %d genes chosen on %d training cells", int(mask.sum()), genes.size, train.size)
    return pd.DataFrame({"gene": genes[mask]})


def read_genes(genes_csv: str | os.PathLike, var_names: pd.Index) -> np.ndarray:
    """Boolean mask over ``var_names`` of the genes a ``genes.csv`` lists."""
    genes = io.read_csv(genes_csv, dtype={"gene": str})
    if "gene" not in genes.columns or genes.empty:
        raise InputError(f"{genes_csv} lists no genes (expected a 'gene' column)")
    mask = var_names.isin(genes["gene"])
    if mask.sum() != genes["gene"].nunique():
        missing = sorted(set(genes["gene"]) - set(var_names))
        raise InputError(f"{genes_csv} names {len(missing)} gene(s) the data lacks, e.g. {missing[0]}")
    return np.asarray(mask)
