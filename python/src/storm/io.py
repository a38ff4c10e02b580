"""Reading and writing storm's files: h5ad (whole or obs only), CSV, JSON; writes are atomic.

Every writer goes through :func:`atomic_path`, so a killed task never leaves a file that looks
complete: the content is written under a temporary name, flushed to disk and renamed into place.

Files that one step hands to another (h5ad data, split and gene tables, metrics) also get a
checksum sidecar, ``<name>.sha256`` (size and digests). A reader verifies it when it is there,
following a staged symlink back to the producer's folder, so a file truncated or changed after it
was written (a cached output of a killed copy, say) is named with the task that made it instead
of being used again and again; a user's own file that they changed since is read as it now is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Iterator

import anndata as ad
import h5py
import pandas as pd

from .errors import InputError

log = logging.getLogger(__name__)
CHECKSUM_SUFFIX = ".sha256"
#: files up to this size are verified in full; larger ones by size and sampled blocks
FULL_CHECK_BYTES = 1 << 30
SAMPLE_BLOCKS, SAMPLE_BLOCK_BYTES = 64, 1 << 20


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write to; flush it to disk and rename it to
    ``path`` on success, so a crash leaves either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        if tmp.is_file():
            _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)  # the rename itself survives a power cut
    finally:
        if tmp.exists():
            tmp.unlink()


def _sampled_digest(path: Path, size: int) -> str:
    """sha256 of ``SAMPLE_BLOCKS`` blocks spread evenly over the file (first and last included)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for i in range(SAMPLE_BLOCKS):
            fh.seek(max(0, (size - SAMPLE_BLOCK_BYTES) * i // (SAMPLE_BLOCKS - 1)))
            digest.update(fh.read(SAMPLE_BLOCK_BYTES))
    return digest.hexdigest()


def file_digests(path: str | os.PathLike) -> dict:
    """Size, full sha256 and, for a file that :func:`verify` checks by sample (larger than
    ``FULL_CHECK_BYTES``), the sampled digest: on a smaller file the samples overlap and would
    read it several times over for nothing."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(16 << 20), b""):
            digest.update(block)
    size = path.stat().st_size
    sampled = _sampled_digest(path, size) if size > FULL_CHECK_BYTES else None
    return {"size": size, "sha256": digest.hexdigest(), "sampled": sampled}


def write_checksum(path: str | os.PathLike) -> dict:
    """Write ``<path>.sha256`` for a finished file; returns its digests."""
    path = Path(path)
    digests = file_digests(path)
    with atomic_path(path.with_name(path.name + CHECKSUM_SUFFIX)) as tmp:
        tmp.write_text(json.dumps(digests) + "\n")
    return digests


def task_folder(path: Path) -> Path | None:
    """The Nextflow task folder (work/xx/yyyy...) a file was made in, or None: a folder holding
    the ``.command.sh`` Nextflow writes into every task's folder."""
    for folder in path.parents:
        if (folder / ".command.sh").is_file():
            return folder
    return None


def verify(path: str | os.PathLike, strict: bool = False) -> dict | None:
    """Check a file against the checksum its producer wrote beside it (after following a staged
    symlink); returns the recorded digests, or None when the file has no sidecar.

    A cached output of a task (a file in a Nextflow task folder) that no longer matches is an
    error naming that task's folder, the one thing to delete. Any other file (a user's data that
    ``storm synth`` or ``storm import`` once wrote, and they then edited) is theirs to change: it is
    hashed again, with a warning, and its sidecar brought up to date, unless ``strict`` (a
    checkpoint, which must be exactly what training wrote).

    Raises
    ------
    InputError
        naming the file and, for a task's output, the task folder to delete.
    """
    real = Path(os.path.realpath(path))
    sidecar = real.with_name(real.name + CHECKSUM_SUFFIX)
    if not sidecar.is_file() or not real.is_file():
        return None
    try:
        recorded = json.loads(sidecar.read_text())
        size = real.stat().st_size
        if size != recorded["size"]:
            problem = f"it has {size:,} bytes where {recorded['size']:,} were written"
        elif size <= FULL_CHECK_BYTES:
            problem = None if file_digests(real)["sha256"] == recorded["sha256"] else "its sha256 differs"
        else:
            problem = None if _sampled_digest(real, size) == recorded["sampled"] else "its sampled sha256 differs"
    except (OSError, ValueError, KeyError) as exc:
        problem = f"its checksum file is unreadable ({exc})"
    if not problem:
        return recorded
    changed = f"{Path(path).name} was changed or truncated after it was written ({problem})"
    task = task_folder(real)
    if task is not None:
        raise InputError(f"{changed}; it was made by the Nextflow task in {task}: delete that task folder "
                         f"(rm -r '{task}') and run again with -resume, so that task (and the steps after it) "
                         f"run again")
    if strict:
        raise InputError(changed)
    log.warning("%s; not a cached output of storm's, so it is read as it is now (hashed again)", changed)
    try:
        return write_checksum(real)
    except OSError:  # a read-only data folder: the stale sidecar stays, the new digests still count
        return file_digests(real)


def content_digest(path: str | os.PathLike) -> str:
    """The sha256 of a file's content: from its verified sidecar when there is one."""
    recorded = verify(path)
    return recorded["sha256"] if recorded else file_digests(path)["sha256"]


def require_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    verify(path)
    return path


def read_h5ad(path: str | os.PathLike, backed: bool = False) -> ad.AnnData:
    """Read an h5ad file, turning unreadable files into one clear error."""
    path = require_file(path, "h5ad file")
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read {path} as h5ad: {exc}") from exc


# one element of an h5ad file (anndata < 0.11, which a model environment may pin, keeps them in experimental)
read_elem = ad.io.read_elem if hasattr(ad, "io") else ad.experimental.read_elem
write_elem = ad.io.write_elem if hasattr(ad, "io") else ad.experimental.write_elem


def read_obs(path: str | os.PathLike) -> pd.DataFrame:
    """Read only the obs table of an h5ad file (never X), so huge files open in seconds."""
    path = require_file(path, "h5ad file")
    try:
        with h5py.File(path, "r") as f:
            if "obs" not in f:
                raise InputError(f"{path} has no obs table")
            obs = read_elem(f["obs"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read the obs table of {path}: {exc}") from exc
    if not isinstance(obs, pd.DataFrame):
        raise InputError(f"the obs of {path} is not a table (it holds a {type(obs).__name__})")
    return obs


def read_csv(path: str | os.PathLike, **kwargs) -> pd.DataFrame:
    """A CSV table, verified against its checksum when it has one."""
    return pd.read_csv(require_file(path, "table"), **kwargs)


def read_shape(path: str | os.PathLike) -> tuple[int, int]:
    """(n_obs, n_vars) of an h5ad file without reading X."""
    with h5py.File(require_file(path, "h5ad file"), "r") as f:
        if "X" not in f:
            raise InputError(f"{path} has no X matrix (layers: {', '.join(f.get('layers', {})) or 'none'}); "
                             f"store the expression in X")
        x = f["X"]
        shape = x.attrs["shape"] if isinstance(x, h5py.Group) else x.shape
        return int(shape[0]), int(shape[1])


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike, checksum: bool = True) -> None:
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
    if checksum:
        write_checksum(path)


def write_csv(df: pd.DataFrame, path: str | os.PathLike, checksum: bool = False, **kwargs) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, **kwargs)
    if checksum:
        write_checksum(path)


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(data: dict, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    path = require_file(path, "JSON file")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from exc
