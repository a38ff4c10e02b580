"""Pilot a whole grid on a slice of a big screen: keep some cell types and a seeded sample of cells
stratified by (cell type, perturbation), reading X (and layers, obsm) by row in bounded chunks.

The sample is drawn with one random key per cell: within each (cell type, perturbation) the cells
with the smallest keys are kept, so the same seed keeps the same cells whatever the file's order.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm import tqdm

from . import io, shards
from .errors import InputError, SpecError
from .spec import DatasetSpec

log = logging.getLogger(__name__)

#: bytes of expression read at a time
CHUNK_BYTES = 256 << 20


@dataclass
class Sample:
    """What to keep: ``cell_types`` (all when empty), then per (cell type, perturbation) a
    ``fraction`` of the cells (at least one) and at most ``max_cells_per_pair`` of them; control
    cells at most ``max_controls_per_cell_type`` per cell type."""

    cell_types: list[str] = field(default_factory=list)
    max_cells_per_pair: int | None = None
    max_controls_per_cell_type: int | None = None
    fraction: float | None = None
    seed: int = 0


def choose_cells(obs: pd.DataFrame, spec: DatasetSpec, sample: Sample) -> np.ndarray:
    """Sorted row numbers of the cells to keep."""
    missing = [c for c in (spec.perturbation_key, spec.cell_type_key) if c not in obs.columns]
    if missing:
        raise SpecError(f"obs column(s) {', '.join(missing)} not found; available: {', '.join(map(str, obs.columns))}")
    cell_type = obs[spec.cell_type_key].astype(str).to_numpy()
    keep = np.ones(len(obs), dtype=bool)
    if sample.cell_types:
        unknown = sorted(set(sample.cell_types) - set(cell_type))
        if unknown:
            raise InputError(f"cell type(s) {', '.join(unknown)} not in obs column '{spec.cell_type_key}' "
                             f"(it holds: {', '.join(sorted(set(cell_type))[:20])})")
        keep = np.isin(cell_type, sample.cell_types)
    rows = np.flatnonzero(keep)
    pert = obs[spec.perturbation_key].astype(str).to_numpy()[rows]
    groups = pd.MultiIndex.from_arrays([cell_type[rows], pert]).factorize()[0]
    key = np.random.default_rng(sample.seed).random(rows.size)
    order = np.lexsort((key, groups))  # by group, then by random key
    sizes = np.bincount(groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    is_control = pert == spec.control_value
    chosen = []
    for group, (start, size) in enumerate(zip(starts, sizes)):
        members = order[start:start + size]
        n = size
        if sample.fraction is not None:
            n = max(1, math.floor(sample.fraction * size))
        cap = sample.max_controls_per_cell_type if is_control[members[0]] else sample.max_cells_per_pair
        if cap is not None:
            n = min(n, cap)
        chosen.append(members[:n])
    return np.sort(rows[np.concatenate(chosen)]) if chosen else rows[:0]


def _encoding(elem) -> str:
    return elem.attrs.get("encoding-type", "") if isinstance(elem, (h5py.Group, h5py.Dataset)) else ""


def _copy_rows(source: h5py.File, target: h5py.File, key: str, rows: np.ndarray, progress: tqdm | None) -> None:
    """Copy the ``rows`` of a cell-indexed matrix (CSR or dense) chunk by chunk."""
    elem = source[key]
    n_cols = int(elem.attrs["shape"][1]) if isinstance(elem, h5py.Group) else int(np.prod(elem.shape[1:]) or 1)
    step = max(1, CHUNK_BYTES // max(4 * n_cols, 1))
    if _encoding(elem) == "csr_matrix":
        stored = ad.io.sparse_dataset(elem)
        for start in range(0, max(rows.size, 1), step):
            chunk = rows[start:start + step]
            block = stored[chunk] if chunk.size else sp.csr_matrix((0, n_cols), dtype=elem["data"].dtype)
            if start == 0:
                ad.io.write_elem(target, key, sp.csr_matrix(block))
            else:
                ad.io.sparse_dataset(target[key]).append(sp.csr_matrix(block))
            if progress is not None:
                progress.update(min(step, rows.size - start))
    elif isinstance(elem, h5py.Dataset):
        out = target.create_dataset(key, shape=(rows.size, *elem.shape[1:]), dtype=elem.dtype, chunks=True)
        for name, value in elem.attrs.items():
            out.attrs[name] = value
        for start in range(0, rows.size, step):
            out[start:start + step] = elem[rows[start:start + step]]
            if progress is not None:
                progress.update(min(step, rows.size - start))
    else:  # another encoding (CSC, a data frame): small enough to subset in memory
        value = ad.io.read_elem(elem)
        ad.io.write_elem(target, key, value.iloc[rows] if isinstance(value, pd.DataFrame) else value[rows])


def write_rows(source: Path, rows: np.ndarray, out: Path, obs: pd.DataFrame) -> None:
    """An h5ad of the ``rows`` of ``source``: X, layers and obsm by row; var, varm, uns copied;
    obsp (cell x cell graphs) dropped."""
    with io.atomic_path(out) as tmp, h5py.File(source, "r") as fin, h5py.File(tmp, "w") as fout:
        for name, value in fin.attrs.items():
            fout.attrs[name] = value
        ad.io.write_elem(fout, "obs", obs.iloc[rows])
        for key in ("var", "varm", "varp", "uns"):
            if key in fin:
                fin.copy(fin[key], fout, name=key)
        matrices = ["X"] + [f"{group}/{name}" for group in ("layers", "obsm") if group in fin for name in fin[group]]
        for group in ("layers", "obsm"):
            if group in fin:
                fout.create_group(group)
                for name, value in fin[group].attrs.items():
                    fout[group].attrs[name] = value
        if "obsp" in fin and len(fin["obsp"]):
            log.info("obsp (%s) is not subsampled; dropped", ", ".join(fin["obsp"]))
        with tqdm(total=rows.size * len(matrices), desc="subsample", unit="row", disable=None) as progress:
            for key in matrices:
                _copy_rows(fin, fout, key, rows, progress)
    io.write_checksum(out)


def subsample(path: str | os.PathLike, out: str | os.PathLike, spec: DatasetSpec, sample: Sample,
              dataset=None) -> dict:
    """Write the sample of ``path`` to ``out``; return what was kept, per cell type. ``path`` may
    be one shard of a ``dataset`` (its shards' paths, in order): the sample is drawn from the
    whole dataset (the caps hold for it, not per shard) and ``out`` gets this shard's part."""
    path, out = Path(path), Path(out)
    paths = shards.paths_of(dataset) if dataset else [path]
    names = [p.name for p in paths]
    if path.name not in names:
        raise InputError(f"{path} is not one of the dataset's shards ({', '.join(names)})")
    obs = shards.read_obs(paths)
    io.read_shape(path)  # X is there
    rows = choose_cells(obs, spec, sample)
    sizes, number = shards.sizes(paths), names.index(path.name)
    first, stop = sum(sizes[:number]), sum(sizes[:number + 1])
    rows = rows[(rows >= first) & (rows < stop)] - first
    if rows.size == 0:
        raise InputError("the sample keeps no cell" + (f" of {path.name}" if len(paths) > 1 else ""))
    shard_obs = obs.iloc[first:stop]
    write_rows(path, rows, out, shard_obs)
    kept = shard_obs.iloc[rows][spec.cell_type_key].astype(str).value_counts().sort_index()
    return {"n_cells_input": int(len(shard_obs)), "n_cells_kept": int(rows.size), "cells_per_cell_type": kept.to_dict(),
            "sample": {k: v for k, v in vars(sample).items()}, "spec": spec.to_dict()}
