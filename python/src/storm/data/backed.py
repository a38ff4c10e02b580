"""Cells of one or many h5ad files (one per plate, say) read by index, never loading X whole.

X must be stored as CSR (anndata's default for sparse data). A fetch sorts its rows, reads each
contiguous run of rows as one slice of ``indptr``/``indices``/``data``, and keeps CSR until the
batch is formed. h5py handles are opened per process (after a DataLoader worker forks, the
child opens its own) with a larger chunk cache. Labels come from obs codes extracted once.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from ..split.obs import read_coded_obs

CHUNK_CACHE_BYTES = 64 * 1024**2


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """Sorted unique rows as [start, stop) runs of consecutive rows."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    return [(int(chunk[0]), int(chunk[-1]) + 1) for chunk in np.split(rows, breaks)]


class BackedCells:
    def __init__(self, paths: list[str | os.PathLike], label_columns: list[str] = (),
                 categories: dict[str, list[str]] | None = None):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InputError("no h5ad files given")
        sizes, n_vars = [], None
        for path in self.paths:
            with h5py.File(path, "r") as f:
                X = f.get("X")
                if not isinstance(X, h5py.Group) or X.attrs.get("encoding-type") != "csr_matrix":
                    raise InputError(f"{path}: X must be a CSR matrix (anndata's sparse default) to read by row")
                shape = tuple(X.attrs["shape"])
            if n_vars is not None and shape[1] != n_vars:
                raise InputError(f"{path} has {shape[1]} genes, the other files {n_vars}")
            sizes.append(shape[0])
            n_vars = shape[1]
        self.n_vars = int(n_vars)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.labels, self.categories = self._labels(list(label_columns), categories or {})
        self._handles: list[h5py.File] | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _labels(self, columns: list[str], given: dict[str, list[str]]) -> tuple[dict, dict]:
        """Integer codes per column over all files, against categories shared by all files (or
        ``given``, e.g. those of a train and a test set together)."""
        per_file = [read_coded_obs(path, columns).columns for path in self.paths]
        labels, categories = {}, {}
        for column in columns:
            names = given.get(column) or sorted({str(c) for coded in per_file for c in coded[column].categories})
            index = {name: i for i, name in enumerate(names)}
            labels[column] = np.concatenate([
                np.array([index[str(c)] for c in coded[column].categories], dtype=np.int64)[coded[column].codes]
                for coded in per_file])
            categories[column] = names
        return labels, categories

    def _files(self) -> list[h5py.File]:
        if self._pid != os.getpid():  # first use in this process, e.g. a freshly forked worker
            self._handles = [h5py.File(p, "r", rdcc_nbytes=CHUNK_CACHE_BYTES) for p in self.paths]
            self._pid = os.getpid()
        return self._handles

    def read(self, cells: np.ndarray) -> sp.csr_matrix:
        """Rows ``cells`` (global indices, any order, repeats allowed) as CSR, in that order."""
        cells = np.asarray(cells, dtype=np.int64)
        unique, inverse = np.unique(cells, return_inverse=True)
        parts = []
        for number, handle in enumerate(self._files()):
            lo, hi = self.offsets[number], self.offsets[number + 1]
            rows = unique[(unique >= lo) & (unique < hi)] - lo
            if rows.size:
                parts.append(self._read_rows(handle["X"], rows))
        block = sp.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
        return block[inverse]

    def _read_rows(self, X: h5py.Group, rows: np.ndarray) -> sp.csr_matrix:
        indptr_ds, data, indices = X["indptr"], [], []
        lengths = []
        for start, stop in _runs(rows):
            ptr = indptr_ds[start:stop + 1]
            data.append(X["data"][ptr[0]:ptr[-1]])
            indices.append(X["indices"][ptr[0]:ptr[-1]])
            lengths.append(np.diff(ptr))
        indptr = np.concatenate([[0], np.cumsum(np.concatenate(lengths))])
        return sp.csr_matrix((np.concatenate(data), np.concatenate(indices), indptr), shape=(rows.size, self.n_vars))
