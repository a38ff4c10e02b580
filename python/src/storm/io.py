"""Reading and writing storm's files: h5ad (whole or obs only), CSV, JSON; writes are atomic.

Every writer goes through :func:`atomic_path`, so a killed task never leaves a file that looks
complete: the content is written under a temporary name and renamed into place at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator

import anndata as ad
import h5py
import pandas as pd

from .errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write to; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _require_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    return path


def read_h5ad(path: str | os.PathLike, backed: bool = False) -> ad.AnnData:
    """Read an h5ad file, turning unreadable files into one clear error."""
    path = _require_file(path, "h5ad file")
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read {path} as h5ad: {exc}") from exc


def read_obs(path: str | os.PathLike) -> pd.DataFrame:
    """Read only the obs table of an h5ad file (never X), so huge files open in seconds."""
    path = _require_file(path, "h5ad file")
    try:
        with h5py.File(path, "r") as f:
            return ad.io.read_elem(f["obs"])
    except (OSError, KeyError) as exc:
        raise InputError(f"cannot read the obs table of {path}: {exc}") from exc


def read_shape(path: str | os.PathLike) -> tuple[int, int]:
    """(n_obs, n_vars) of an h5ad file without reading X."""
    with h5py.File(_require_file(path, "h5ad file"), "r") as f:
        x = f["X"]
        shape = x.attrs["shape"] if isinstance(x, h5py.Group) else x.shape
        return int(shape[0]), int(shape[1])


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def write_csv(df: pd.DataFrame, path: str | os.PathLike, **kwargs) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, **kwargs)


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(data: dict, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    return json.loads(_require_file(path, "JSON file").read_text())
