"""Tahoe-shaped plates: integer counts in CSR, rows clustered by (cell line, drug) as on disk
after sequencing, with each drug's broad and fine mechanism of action as extra tasks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import io


@dataclass(frozen=True)
class PlateConfig:
    n_plates: int = 3
    cells_per_plate: int = 2000
    n_genes: int = 500
    n_cell_lines: int = 6
    n_drugs: int = 12
    n_moa_broad: int = 3
    n_moa_fine: int = 6
    nnz_per_cell: int = 60
    signal: float = 1.0  # how strongly labels shift expression (0: nothing to learn)
    seed: int = 0


def write_plates(config: PlateConfig, out_dir: Path, compression: str | None = None) -> list[Path]:
    """Write ``plate<i>.h5ad`` files; the last is meant as the held-out test plate."""
    rng = np.random.default_rng(config.seed)
    fine_of_drug = rng.integers(0, config.n_moa_fine, config.n_drugs)
    broad_of_fine = np.arange(config.n_moa_fine) % config.n_moa_broad
    # each label owns a few genes it raises: a linear classifier can find them
    programs = {name: rng.integers(0, config.n_genes, size=(n, 8)) for name, n in
                (("line", config.n_cell_lines), ("drug", config.n_drugs))}
    paths = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for plate in range(config.n_plates):
        n = config.cells_per_plate
        line = np.sort(rng.integers(0, config.n_cell_lines, n))
        drug = rng.integers(0, config.n_drugs, n)
        order = np.lexsort((drug, line))  # clustered on disk by (cell line, drug)
        line, drug = line[order], drug[order]
        cols = rng.integers(0, config.n_genes, size=(n, config.nnz_per_cell))
        boosted = np.concatenate([programs["line"][line], programs["drug"][drug]], axis=1)
        cols = np.concatenate([cols, boosted], axis=1)
        values = np.concatenate([rng.poisson(1.0, (n, config.nnz_per_cell)) + 1,
                                 rng.poisson(1.0 + config.signal, boosted.shape) + 1], axis=1).astype(np.float32)
        X = sp.csr_matrix((values.ravel(), cols.ravel(), np.arange(0, cols.size + 1, cols.shape[1])),
                          shape=(n, config.n_genes))
        X.sum_duplicates()
        obs = pd.DataFrame({
            "cell_line": pd.Categorical([f"line{i}" for i in line]),
            "drug": pd.Categorical([f"drug{i}" for i in drug]),
            "moa_fine": pd.Categorical([f"fine{fine_of_drug[d]}" for d in drug]),
            "moa_broad": pd.Categorical([f"broad{broad_of_fine[fine_of_drug[d]]}" for d in drug]),
            "plate": pd.Categorical([f"plate{plate}"] * n),
        }, index=pd.Index([f"plate{plate}_{i}" for i in range(n)], dtype=object))
        adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(config.n_genes)]))
        path = out_dir / f"plate{plate}.h5ad"
        with io.atomic_path(path) as tmp:
            adata.write_h5ad(tmp, compression=compression)
        paths.append(path)
    return paths
