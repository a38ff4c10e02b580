"""The view every model trains and predicts from.

A :class:`PerturbationData` holds log-normalised expression over the genes chosen for one split
(dense in memory, or read from ``prepared.h5ad`` by row when loaded ``backed``, for datasets larger
than memory), the canonical obs columns as arrays, and each cell's split. It is built from
``prepared.h5ad`` (or a sharded dataset's prepared shards, read as one) and a ``split.csv``
without copying the data on disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from .. import io, shards
from ..arrays import to_dense
from ..errors import InputError
from ..genes import read_genes
from ..spec import BATCH, CELL_TYPE, PERTURBATION, PROFILES, DatasetSpec
from ..split.inputs import split_labels
from ..split.obs import read_dataset_obs
from .backed import BackedCells

GROUP_CHUNK = 65536  # cells summed at a time when averaging backed data


@dataclass
class PerturbationData:
    X: np.ndarray | None  # cells x genes, float32, log-normalised; None when backed
    genes: np.ndarray
    cell_ids: pa.ChunkedArray  # Arrow strings: a few bytes a cell, where Python strings cost ~60
    perturbation: np.ndarray
    cell_type: np.ndarray
    batch: np.ndarray
    split: np.ndarray
    spec: DatasetSpec
    obsm: dict[str, np.ndarray] = field(default_factory=dict)  # the embeddings asked for, float32
    layers: dict[str, np.ndarray] = field(default_factory=dict)  # layers asked for (e.g. velocity), the split's genes
    molecules: pd.DataFrame | None = None  # chemical screens: compound x molecule features
    profiles: str = "cells"  # or "bulk": samples are bulk profiles (storm.bulk)
    source: BackedCells | None = None  # backed: where rows are read from
    gene_mask: np.ndarray | None = None  # backed: the split's genes among the file's

    @property
    def n_cells(self) -> int:
        return len(self.cell_ids)

    def ids(self, cells: np.ndarray) -> np.ndarray:
        """The cell ids of ``cells`` (indices) as strings."""
        return self.cell_ids.take(pa.array(np.asarray(cells, dtype=np.int64))).to_numpy(zero_copy_only=False)

    def rows(self, cells: np.ndarray) -> np.ndarray:
        """Dense float32 expression of ``cells`` (indices, any order) over the split's genes."""
        if self.X is not None:
            return self.X[cells]
        block = self.source.read(np.asarray(cells))[:, self.gene_mask]
        return block.toarray().astype(np.float32, copy=False)

    @property
    def is_control(self) -> np.ndarray:
        return self.perturbation == self.spec.control_value

    def mask(self, split: str | None = None, cell_type: str | None = None,
             perturbation: str | None = None) -> np.ndarray:
        """Boolean mask of cells matching every criterion given."""
        m = np.ones(self.n_cells, dtype=bool)
        if split is not None:
            m &= self.split == split
        if cell_type is not None:
            m &= self.cell_type == cell_type
        if perturbation is not None:
            m &= self.perturbation == perturbation
        return m

    def group_means(self, mask: np.ndarray) -> pd.DataFrame:
        """Mean expression per (cell_type, perturbation) of the masked cells; rows indexed by pair,
        sorted. The cells are summed a chunk at a time into one running total per pair, so memory
        holds the pairs' sums, never one table per chunk."""
        cells = np.flatnonzero(mask)
        cell_types, ct_names = pd.factorize(self.cell_type[cells], sort=True)
        perturbations, pert_names = pd.factorize(self.perturbation[cells], sort=True)
        pairs, group = np.unique(cell_types.astype(np.int64) * len(pert_names) + perturbations, return_inverse=True)
        del cell_types, perturbations
        sums = np.zeros((pairs.size, len(self.genes)))
        for start in range(0, cells.size, GROUP_CHUNK):
            rows = group[start:start + GROUP_CHUNK]
            pair_of_cell = sp.csr_matrix((np.ones(rows.size), (rows, np.arange(rows.size))),
                                         shape=(pairs.size, rows.size))
            sums += pair_of_cell @ self.rows(cells[start:start + GROUP_CHUNK]).astype(np.float64)
        index = pd.MultiIndex.from_arrays([ct_names[pairs // len(pert_names)], pert_names[pairs % len(pert_names)]],
                                          names=[CELL_TYPE, PERTURBATION])
        counts = np.bincount(group, minlength=pairs.size)
        return pd.DataFrame(sums / counts[:, None], index=index, columns=self.genes)


def prepared_spec(prepared) -> DatasetSpec:
    """The dataset spec ``storm prepare`` stored in a prepared file (a sharded dataset's first
    shard), reading nothing else."""
    import h5py

    path = io.require_file(shards.paths_of(prepared)[0], "prepared h5ad")
    try:
        with h5py.File(path, "r") as f:
            if "uns/storm/spec" not in f:
                raise InputError(f"{path} was not written by `storm prepare` (no uns['storm'])")
            return DatasetSpec.from_dict(_read_flat_mapping(f["uns/storm/spec"]))
    except OSError as exc:
        raise InputError(f"cannot read {path} as h5ad: {exc}") from exc


def _read_flat_mapping(group) -> dict:
    """A mapping of scalars as anndata writes it, read with h5py: anndata < 0.11 (a model
    environment's) cannot read the null encoding that newer anndata writes for None."""
    values = {}
    for key, item in group.items():
        if item.attrs.get("encoding-type") == "null":
            values[key] = None
            continue
        value = item[()]
        values[key] = value.decode() if isinstance(value, bytes) else value.item() if hasattr(value, "item") else value
    return values


def _read_molecules(f) -> pd.DataFrame | None:
    """The compound features ``storm prepare`` stored (plain arrays), or None."""
    if "uns/storm/molecules" not in f:
        return None
    table = f["uns/storm/molecules"]
    return pd.DataFrame(table["features"][()], index=table["compounds"].asstr()[()],
                        columns=table["columns"].asstr()[()])


def stored_keys(prepared) -> dict[str, list[str]]:
    """The keys of a prepared file's (a first shard's) ``obsm`` and ``layers``, reading nothing else."""
    import h5py

    with h5py.File(io.require_file(shards.paths_of(prepared)[0], "prepared h5ad"), "r") as f:
        return {slot: list(f[slot]) if slot in f else [] for slot in ("obsm", "layers")}


def dense_columns(elem, columns: np.ndarray) -> np.ndarray:
    """A stored matrix's ``columns`` (a mask) as dense float32, filled a block of rows at a time:
    only the result is ever whole in memory, never the matrix over all genes."""
    from ..rowblocks import read_blocks

    n_rows = int(elem.attrs["shape"][0]) if "shape" in elem.attrs else elem.shape[0]
    out = np.empty((n_rows, int(columns.sum())), dtype=np.float32)
    for start, block in read_blocks(elem):
        out[start:start + block.shape[0]] = block[:, columns].toarray()
    return out


def load_split_data(prepared, split_csv: str | os.PathLike, genes_csv: str | os.PathLike,
                    obsm_keys: tuple[str, ...] = (), backed: bool = False,
                    layer_keys: tuple[str, ...] = ()) -> PerturbationData:
    """Load a prepared dataset (one file, or its shards in order) with one split's cell
    assignment and genes (``genes.csv``), the embeddings ``obsm_keys`` (cell x dimension arrays of
    ``obsm``) and the layers ``layer_keys`` over the split's genes. ``backed`` leaves X on disk."""
    import h5py

    paths = shards.paths_of(prepared)
    spec = prepared_spec(paths)  # a file storm did not prepare fails here
    # the three columns as codes, labels sharing their categories' strings: per cell, 8 bytes a column
    obs = read_dataset_obs(paths, [PERTURBATION, CELL_TYPE, BATCH])
    var_names = shards.read_var(paths).index
    split = split_labels(split_csv, obs.cell_ids)
    genes = read_genes(genes_csv, var_names)
    # element by element, never uns or layers (counts): smaller, and readable by an older anndata
    parts = {"X": [], **{f"obsm/{k}": [] for k in obsm_keys}, **{f"layers/{k}": [] for k in layer_keys}}
    for path in paths:
        with h5py.File(path, "r") as f:
            stored = list(f["obsm"]) if "obsm" in f else []
            missing = [key for key in obsm_keys if key not in stored]
            if missing:
                raise InputError(f"{path} has no obsm['{missing[0]}']; embeddings there: "
                                 f"{', '.join(stored) or '(none)'}")
            if not backed:
                parts["X"].append(dense_columns(f["X"], genes))
            for key in obsm_keys:
                parts[f"obsm/{key}"].append(to_dense(io.read_elem(f[f"obsm/{key}"])).astype(np.float32, copy=False))
            for key in layer_keys:
                parts[f"layers/{key}"].append(dense_columns(f[f"layers/{key}"], genes))
            if path == paths[0]:
                molecules = _read_molecules(f)
                profiles = f[f"uns/storm/{PROFILES}"][()].decode() if f"uns/storm/{PROFILES}" in f else "cells"
    whole = {key: np.concatenate(arrays) if len(arrays) > 1 else arrays[0] for key, arrays in parts.items() if arrays}
    return PerturbationData(
        X=whole.get("X"),
        genes=var_names[genes].to_numpy(dtype=object),
        cell_ids=pa.chunked_array([obs.cell_ids]) if isinstance(obs.cell_ids, pa.Array) else obs.cell_ids,
        perturbation=obs.columns[PERTURBATION].labels(),
        cell_type=obs.columns[CELL_TYPE].labels(),
        batch=obs.columns[BATCH].labels(),
        split=split,
        spec=spec,
        obsm={key: whole[f"obsm/{key}"] for key in obsm_keys},
        layers={key: whole[f"layers/{key}"] for key in layer_keys},
        molecules=molecules,
        profiles=profiles,
        source=BackedCells(paths) if backed else None,
        gene_mask=genes if backed else None,
    )
