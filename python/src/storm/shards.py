"""A dataset stored as several h5ad files (shards: Tahoe's plates) read as one, never concatenated.

The dataset's cells are its shards' cells in the order the shards are given; cell ids are unique
across shards and every shard has the same genes in the same order. Anything that takes a
dataset's path takes a list of shard paths too (a single path is a dataset of one shard).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from . import io
from .errors import InputError


def paths_of(dataset) -> list[Path]:
    """The shard paths of a dataset given as one path or a sequence of them."""
    if isinstance(dataset, (str, os.PathLike)):
        return [Path(dataset)]
    paths = [Path(p) for p in dataset]
    if not paths:
        raise InputError("a dataset needs at least one h5ad file")
    return paths


def check_unique_ids(ids: pd.Index, shard_of: np.ndarray, paths: list[Path]) -> None:
    """Cell ids must be unique across shards (splits and predictions join on them)."""
    repeated = ids.duplicated(keep=False)
    if repeated.any():
        first = ids[repeated][0]
        where = sorted({paths[i].name for i in shard_of[np.asarray(ids == first)]})
        raise InputError(f"cell id {first!r} is in {' and '.join(where) if len(where) > 1 else where[0] + ' twice'}; "
                         f"cell ids must be unique across a dataset's shards (prefix them with the shard's name)")


def read_obs(dataset) -> pd.DataFrame:
    """The obs of every shard, one after the other (never X)."""
    paths = paths_of(dataset)
    if len(paths) == 1:
        return io.read_obs(paths[0])
    tables = [io.read_obs(p) for p in paths]
    obs = pd.concat(tables)
    check_unique_ids(obs.index, np.repeat(np.arange(len(paths)), [len(t) for t in tables]), paths)
    return obs


def read_var(dataset) -> pd.DataFrame:
    """The genes of the dataset: every shard's, which must be the same."""
    paths = paths_of(dataset)
    tables = []
    for path in paths:
        with h5py.File(io.require_file(path, "h5ad file"), "r") as f:
            tables.append(io.read_elem(f["var"]))
    for path, var in zip(paths[1:], tables[1:]):
        if not var.index.equals(tables[0].index):
            raise InputError(f"{path.name} has other genes than {paths[0].name} ({len(var)} against "
                             f"{len(tables[0])}, or in another order); a dataset's shards share their genes")
    return tables[0]


def sizes(dataset) -> list[int]:
    """Cells per shard."""
    return [io.read_shape(p)[0] for p in paths_of(dataset)]


def shape(dataset) -> tuple[int, int]:
    """(cells, genes) of the whole dataset (its shards share their genes)."""
    shapes = [io.read_shape(p) for p in paths_of(dataset)]
    return sum(n for n, _ in shapes), shapes[0][1]
