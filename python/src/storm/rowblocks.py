"""h5ad matrices read and written a block of rows at a time, so no step holds a dataset's X.

A block is as many whole rows as hold about ``BLOCK_VALUES`` stored values, so its memory is
bounded whatever the number of cells. Written CSR has int64 row pointers (one Tahoe plate holds
~1.75e10 stored values, past int32) and is the layout anndata writes, so any reader opens it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import io
from .errors import InputError

log = logging.getLogger(__name__)

#: stored values per block: ~8 bytes each as float32 values and int32 gene indices, so a block
#: and its transformed copy stay near half a gigabyte
BLOCK_VALUES = 32 << 20
#: dense rows (cells over a split's genes) produced and written at a time
WRITE_ROWS = 8192
#: HDF5 chunk of a written CSR's arrays (values): big enough for fast appends, small for row reads
WRITE_CHUNK = 1 << 18


def block_bounds(indptr: np.ndarray, max_values: int = BLOCK_VALUES) -> list[tuple[int, int]]:
    """[start, stop) row ranges of whole rows holding at most ``max_values`` stored values each
    (a single row holding more is a block alone)."""
    n_rows = indptr.size - 1
    bounds, start = [], 0
    while start < n_rows:
        stop = int(np.searchsorted(indptr, indptr[start] + max_values, side="right")) - 1
        stop = min(max(stop, start + 1), n_rows)
        bounds.append((start, stop))
        start = stop
    return bounds


def _encoding(elem) -> str:
    return elem.attrs.get("encoding-type", "") if isinstance(elem, h5py.Group) else "dense"


def read_blocks(elem: h5py.Group | h5py.Dataset, max_values: int = BLOCK_VALUES
                ) -> Iterator[tuple[int, sp.csr_matrix]]:
    """(first row, CSR block) over a stored matrix (CSR or dense) in row order."""
    encoding = _encoding(elem)
    if encoding == "csr_matrix":
        indptr = elem["indptr"][:]
        n_cols = int(elem.attrs["shape"][1])
        for start, stop in block_bounds(indptr, max_values):
            a, b = int(indptr[start]), int(indptr[stop])
            yield start, sp.csr_matrix((elem["data"][a:b], elem["indices"][a:b], indptr[start:stop + 1] - a),
                                       shape=(stop - start, n_cols))
    elif encoding == "dense":
        step = max(1, max_values // max(int(np.prod(elem.shape[1:])), 1))
        for start in range(0, elem.shape[0], step):
            yield start, sp.csr_matrix(elem[start:start + step])
    elif encoding == "csc_matrix":  # columns first: rows cannot be read in blocks
        log.warning("X is stored by column (CSC): read whole to convert it; store CSR to keep memory bounded")
        yield 0, sp.csr_matrix(io.read_elem(elem))
    else:
        raise InputError(f"a matrix stored as '{encoding}' cannot be read by row")


class CsrWriter:
    """A CSR matrix in an open h5py file, appended a block of rows at a time."""

    def __init__(self, parent: h5py.Group, key: str, n_cols: int, dtype=np.float32):
        self.group = parent.create_group(key)
        self.group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0"})
        self.data = self.group.create_dataset("data", shape=(0,), maxshape=(None,), dtype=dtype, chunks=(WRITE_CHUNK,))
        self.indices = self.group.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32,
                                                 chunks=(WRITE_CHUNK,))
        self.indptr = self.group.create_dataset("indptr", data=np.zeros(1, dtype=np.int64), maxshape=(None,),
                                                chunks=(WRITE_CHUNK,))
        self.n_rows, self.n_cols = 0, int(n_cols)
        self._shape()

    def _shape(self) -> None:
        self.group.attrs["shape"] = np.array([self.n_rows, self.n_cols], dtype=np.int64)

    def append(self, block: sp.spmatrix) -> None:
        block = sp.csr_matrix(block)
        if block.shape[1] != self.n_cols:
            raise ValueError(f"a block of {block.shape[1]} columns appended to a matrix of {self.n_cols}")
        stored, size = self.data.shape[0], block.nnz
        for dataset, values in ((self.data, block.data), (self.indices, block.indices)):
            dataset.resize((stored + size,))
            dataset[stored:] = values
        rows = self.indptr.shape[0]
        self.indptr.resize((rows + block.shape[0],))
        self.indptr[rows:] = block.indptr[1:].astype(np.int64) + stored
        self.n_rows += block.shape[0]
        self._shape()


class DenseWriter:
    """A dense matrix in an open h5py file, appended a block of rows at a time."""

    def __init__(self, parent: h5py.Group, key: str, n_cols: int, dtype=np.float32):
        self.dataset = parent.create_dataset(key, shape=(0, n_cols), maxshape=(None, n_cols), dtype=dtype,
                                             chunks=(max(1, WRITE_CHUNK // max(n_cols, 1)), max(n_cols, 1)))
        self.dataset.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        self.n_rows = 0

    def append(self, block: np.ndarray) -> None:
        self.dataset.resize((self.n_rows + block.shape[0], self.dataset.shape[1]))
        self.dataset[self.n_rows:] = block
        self.n_rows += block.shape[0]


class H5adRows:
    """An h5ad being written: obs, var and uns whole, matrices by :meth:`matrix`."""

    def __init__(self, file: h5py.File):
        self.file, self.writers = file, {}

    def matrix(self, key: str, n_cols: int, dtype=np.float32, dense: bool = False) -> CsrWriter | DenseWriter:
        """A CSR (or dense) writer for ``X`` or ``layers/<name>``, ``n_cols`` wide."""
        self.writers[key] = (DenseWriter if dense else CsrWriter)(self.file, key, n_cols, dtype)
        return self.writers[key]


@contextlib.contextmanager
def write_h5ad_rows(path: str | os.PathLike, obs: pd.DataFrame, var: pd.DataFrame, uns: dict | None = None,
                    copy_from: h5py.File | None = None, copy: tuple[str, ...] = ()) -> Iterator[H5adRows]:
    """Write an h5ad whose matrices come in row blocks (``H5adRows.matrix``). ``copy`` names
    elements of ``copy_from`` (``obsm/emb``, ``layers/velocity``: group/name) copied as they are,
    by HDF5 itself, never through memory. Atomic, with a checksum; every matrix must end with
    obs's rows, or nothing is written."""
    path = Path(path)
    with io.atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        io.write_elem(f, "obs", obs)
        io.write_elem(f, "var", var)
        io.write_elem(f, "uns", uns or {})
        for group in ("layers", "obsm", "varm", "obsp", "varp"):
            io.write_elem(f, group, {})
        for key in copy:
            group, name = key.split("/", 1)
            copy_from.copy(copy_from[key], f[group], name=name)
        rows = H5adRows(f)
        yield rows
        short = {key: w.n_rows for key, w in rows.writers.items() if w.n_rows != len(obs)}
        if short or "X" not in rows.writers:
            raise RuntimeError(f"{path}: matrices hold {short or 'no X'} rows for {len(obs)} cells")
    io.write_checksum(path)
