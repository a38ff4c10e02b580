"""RNA velocity for st's velocity-alignment loss, computed with scVelo from spliced and unspliced
counts (e.g. velocyto or STARsolo's Velocyto output) into ``layers['velocity']``.

scVelo's deterministic steady-state model fits each gene's degradation rate on the cells' moments
over a neighbour graph; the velocity of a gene in a cell is its unspliced abundance beyond what
the steady state predicts. (scVelo 0.3.4's ``stochastic`` mode fails under numpy 2: its
least-squares fit assigns an array to a scalar.)
Genes without a fit (too few counts, a poor fit) get velocity 0, so every gene of the input keeps
a column and X is left as it is.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)

LAYERS = ("spliced", "unspliced")


def compute_velocity(adata: ad.AnnData, n_neighbors: int = 30, n_pcs: int = 30) -> None:
    """Write ``layers['velocity']`` (cells x genes, float32) from ``layers['spliced']`` and
    ``layers['unspliced']``; ``uns['velocity_params']`` records how."""
    missing = [layer for layer in LAYERS if layer not in adata.layers]
    if missing:
        raise InputError(f"velocity needs layers {', '.join(LAYERS)}; missing: {', '.join(missing)} "
                         f"(layers there: {', '.join(adata.layers) or 'none'})")
    import scanpy as sc
    import scvelo as scv

    work = ad.AnnData(X=adata.layers["spliced"].copy(), layers={k: adata.layers[k].copy() for k in LAYERS})
    work.obs_names, work.var_names = adata.obs_names, adata.var_names
    scv.pp.normalize_per_cell(work, layers=list(LAYERS), enforce=True)
    sc.pp.log1p(work)
    sc.pp.pca(work, n_comps=min(n_pcs, work.n_obs - 1, work.n_vars - 1))
    scv.pp.moments(work, n_neighbors=min(n_neighbors, work.n_obs - 1), use_rep="X_pca")
    scv.tl.velocity(work, mode="deterministic", use_highly_variable=False)
    velocity = np.nan_to_num(np.asarray(work.layers["velocity"], dtype=np.float32))
    fitted = int((np.abs(velocity).sum(axis=0) > 0).sum())
    log.info("velocity fitted for %d of %d genes", fitted, adata.n_vars)
    if fitted == 0:
        raise InputError("scVelo fitted no gene: too few spliced/unspliced counts for a velocity")
    adata.layers["velocity"] = velocity
    adata.uns["velocity_params"] = {"tool": "scvelo", "mode": "deterministic", "n_neighbors": n_neighbors,
                                    "n_pcs": n_pcs}
