"""Choose the genes of one split on its training cells only, so the gene set never depends on the
cells a model is judged on (PerturBench chooses them on all cells, test included).

``genes.csv`` lists the chosen genes (column ``gene``) in the prepared data's order. X is read a
block of rows at a time.
"""

from __future__ import annotations

import logging
import os

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import io, shards
from .errors import InputError
from .rowblocks import read_blocks

log = logging.getLogger(__name__)


class GeneMoments:
    """Per-gene sum and sum of squares of expm1(X), taken a block of rows at a time."""

    def __init__(self, n_genes: int):
        self.total, self.squares, self.n = np.zeros(n_genes), np.zeros(n_genes), 0

    def add(self, block) -> None:
        block = sp.csr_matrix(block, dtype=np.float64).expm1()
        self.total += np.asarray(block.sum(axis=0)).ravel()
        block.data **= 2
        self.squares += np.asarray(block.sum(axis=0)).ravel()
        self.n += block.shape[0]

    def mean_var(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance (ddof 1)."""
        mean = self.total / self.n
        return mean, (self.squares - self.n * mean ** 2) / max(self.n - 1, 1)


def mean_var(X, rows: np.ndarray, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and variance (ddof 1) of expm1(X) over ``rows`` (sorted) of an in-memory X."""
    moments = GeneMoments(X.shape[1])
    for start in range(0, rows.size, chunk):
        moments.add(X[rows[start:start + chunk]])
    return moments.mean_var()


def file_mean_var(dataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mean_var` of a dataset's X (one file or its shards), read in order a block of rows
    at a time (the training cells are most of a screen: reading every row in order beats seeking
    to each)."""
    paths = shards.paths_of(dataset)
    shapes = [io.read_shape(path) for path in paths]
    keep = np.zeros(sum(n for n, _ in shapes), dtype=bool)
    keep[rows] = True
    moments = GeneMoments(shapes[0][1])
    offset = 0
    for path, (n_cells, _) in zip(paths, shapes):
        with h5py.File(path, "r") as f:
            for start, block in read_blocks(f["X"]):
                wanted = keep[offset + start:offset + start + block.shape[0]]
                if wanted.any():
                    moments.add(block[wanted])
        offset += n_cells
    return moments.mean_var()


def seurat_dispersion(mean: np.ndarray, var: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """Seurat's normalised dispersion (scanpy's ``flavor='seurat'``): log dispersion z-scored within
    20 bins of log mean; a gene alone in its bin gets 1."""
    mean = np.where(mean == 0, 1e-12, mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = var / mean
        dispersion[dispersion == 0] = np.nan
        dispersion = np.log(dispersion)
    table = pd.DataFrame({"dispersion": dispersion, "bin": pd.cut(np.log1p(mean), bins=n_bins)})
    stats = table.groupby("bin", observed=True)["dispersion"].agg(avg="mean", dev="std")
    alone = stats["dev"].isna()
    stats.loc[alone, "dev"] = stats.loc[alone, "avg"]
    stats.loc[alone, "avg"] = 0
    per_gene = stats.loc[table["bin"]]
    return ((table["dispersion"].to_numpy() - per_gene["avg"].to_numpy()) / per_gene["dev"].to_numpy())


#: highly variable genes a split keeps unless told otherwise (the pipeline's --n_top_genes says so too)
N_TOP_GENES = 2000


def top_genes(normalised: np.ndarray, n_top_genes: int) -> np.ndarray:
    """Genes whose normalised dispersion reaches the ``n_top_genes``-th highest (ties are kept).
    When no gene varies among the cells, none is more variable than another: all are kept."""
    finite = np.sort(normalised[~np.isnan(normalised)])[::-1]
    if finite.size == 0:
        log.warning("no gene varies among the training cells: keeping all %d genes", normalised.size)
        return np.ones(normalised.size, dtype=bool)
    cutoff = finite[min(n_top_genes, finite.size) - 1]
    return np.nan_to_num(normalised, nan=-np.inf) >= cutoff


def select_genes(prepared, split_csv: str | os.PathLike, n_top_genes: int) -> pd.DataFrame:
    """The ``n_top_genes`` most variable genes (Seurat's dispersion) among the training cells of
    a prepared dataset (one file or its shards)."""
    if n_top_genes < 1:
        raise InputError(f"n_top_genes must be at least 1, got {n_top_genes}")
    from .split.inputs import split_labels
    from .split.obs import read_dataset_obs

    train = np.flatnonzero(split_labels(split_csv, read_dataset_obs(prepared, []).cell_ids) == "train")
    if train.size == 0:
        raise InputError(f"{split_csv} has no training cells to choose genes on")
    genes = shards.read_var(prepared).index.to_numpy(dtype=object)
    if n_top_genes >= genes.size:
        mask = np.ones(genes.size, dtype=bool)
    else:
        mask = top_genes(seurat_dispersion(*file_mean_var(prepared, train)), n_top_genes)
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
