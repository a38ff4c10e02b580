"""Cells of one or many h5ad files (one per plate, say) read by index, never loading X whole.

X must be stored as CSR (anndata's default for sparse data). A fetch sorts its rows, reads each
contiguous run of rows as one slice of ``indptr``/``indices``/``data``, and keeps CSR until the
batch is formed. h5py handles are opened per process (after a DataLoader worker forks, the
child opens its own) with a small chunk cache: a fetch reads its rows in order, so one chunk at a
time is reused, and each dataset's cache counts against the task's memory. Labels come from obs
codes extracted once.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from ..split.obs import read_coded_obs

#: per dataset (data, indices) of each file: 64 MB each cost 120 MB of PREDICT's peak and no speed
CHUNK_CACHE_BYTES = 4 * 1024**2
#: rows closer than this many stored values are read in one slice (one h5py call costs about as
#: much as copying this many values), and the rows between them dropped in memory
MERGE_GAP = 8192


def _spans(rows: np.ndarray, indptr: np.ndarray) -> list[tuple[int, int]]:
    """Sorted unique rows as [start, stop) row spans to read, merging runs of rows whose gap
    holds fewer than :data:`MERGE_GAP` stored values."""
    gaps = indptr[rows[1:]] - indptr[rows[:-1] + 1]
    breaks = np.flatnonzero(gaps >= MERGE_GAP) + 1
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
        self._indptr: list[np.ndarray] = []
        self._pid: int | None = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _labels(self, columns: list[str], given: dict[str, list[str]]) -> tuple[dict, dict]:
        """Integer codes per column over all files, against categories shared by all files (or
        ``given``, e.g. those of a train and a test set together)."""
        if not columns:
            return {}, {}
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
            # row pointers in memory (8 bytes a cell): a run of rows then costs two reads, not three
            self._indptr = [handle["X"]["indptr"][:] for handle in self._handles]
            self._datasets = [(handle["X"]["data"], handle["X"]["indices"]) for handle in self._handles]
            self._pid = os.getpid()
        return self._handles

    def read(self, cells: np.ndarray) -> sp.csr_matrix:
        """Rows ``cells`` (global indices, any order, repeats allowed) as CSR, in that order."""
        cells = np.asarray(cells, dtype=np.int64)
        in_order = bool((np.diff(cells) > 0).all())  # sorted fetches need no reordering
        unique, inverse = (cells, None) if in_order else np.unique(cells, return_inverse=True)
        parts = []
        self._files()
        for number in range(len(self.paths)):
            lo, hi = self.offsets[number], self.offsets[number + 1]
            rows = unique[(unique >= lo) & (unique < hi)] - lo
            if rows.size:
                parts.append(self._read_rows(number, rows))
        block = sp.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
        return block if inverse is None else block[inverse]

    def _read_rows(self, number: int, rows: np.ndarray) -> sp.csr_matrix:
        data_ds, indices_ds = self._datasets[number]
        indptr_all = self._indptr[number]
        spans = _spans(rows, indptr_all)
        data = np.concatenate([data_ds[indptr_all[a]:indptr_all[b]] for a, b in spans])
        indices = np.concatenate([indices_ds[indptr_all[a]:indptr_all[b]] for a, b in spans])
        span_rows = np.concatenate([np.arange(a, b) for a, b in spans])
        lengths = indptr_all[span_rows + 1] - indptr_all[span_rows]
        if span_rows.size != rows.size:  # merged spans hold rows between the wanted ones: drop them
            wanted = np.isin(span_rows, rows, assume_unique=True)
            values = np.repeat(wanted, lengths)
            data, indices, lengths = data[values], indices[values], lengths[wanted]
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        return sp.csr_matrix((data, indices, indptr), shape=(rows.size, self.n_vars))
