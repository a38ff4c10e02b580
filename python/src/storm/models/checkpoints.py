"""Checkpoints a retried task can trust: one attempt at a time writes a run's checkpoint folder,
and a damaged checkpoint (empty, truncated, changed) is named, set aside and replaced by the
newest intact one, so a resume never fails on it again and nothing is deleted."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from .. import io
from ..errors import InputError, StormError

log = logging.getLogger(__name__)

LOCK_FILE = ".training.lock"
DAMAGED_SUFFIX = ".damaged"


class TrainingBusy(StormError):
    """Another attempt is training into the same checkpoint folder."""


@contextlib.contextmanager
def training_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while training: an orphaned attempt (its Nextflow was
    killed) and a new one never write the same checkpoints at once. The lock is the kernel's
    (flock), so it is released when its holder dies, however it dies."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise TrainingBusy(f"{holder} is still training into {folder}; wait for it to finish or stop it, "
                           f"then run again (-resume continues from its checkpoints)") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def damage(path: Path) -> str | None:
    """Why a checkpoint cannot be resumed from, or None when it is intact: empty, not matching the
    checksum written beside it, or (without one) not loadable."""
    if path.stat().st_size == 0:
        return "it is empty"
    try:
        if io.verify(path, strict=True) is not None:
            return None
    except InputError as exc:
        return str(exc).split(";")[0]
    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # any unreadable file is damage, whatever torch raises
        return f"torch cannot load it ({type(exc).__name__}: {exc})"
    return None


def resume_point(folder: Path, first: str = "last.ckpt") -> Path | None:
    """The newest intact checkpoint of ``folder`` (``first`` preferred, then the others newest
    first), or None. Damaged ones are renamed ``<name>.damaged`` with a warning naming them."""
    candidates = [folder / first] if (folder / first).is_file() else []
    candidates += sorted((p for p in folder.glob("*.ckpt") if p.name != first),
                         key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        problem = damage(path)
        if problem is None:
            return path
        aside = path.with_name(path.name + DAMAGED_SUFFIX)
        os.replace(path, aside)
        path.with_name(path.name + io.CHECKSUM_SUFFIX).unlink(missing_ok=True)
        log.warning("checkpoint %s is damaged (%s); set aside as %s; trying an earlier one",
                    path, problem, aside.name)
    if candidates:
        log.warning("no intact checkpoint in %s: training starts over", folder)
    return None
