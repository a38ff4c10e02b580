"""One GPU per task on a multi-GPU workstation (the local executor), as a scheduler would give.

Nextflow's local executor runs tasks side by side but hands out no GPUs. With ``-profile gpu
--local_gpus 0,1,...`` it runs at most as many GPU tasks at once as there are GPUs and tells each
task the list (``STORM_GPUS``); the task claims the first GPU no other task holds, with an
exclusive ``flock`` on ``<lock dir>/gpu<N>.lock``, and sees only that one
(``CUDA_VISIBLE_DEVICES``). The kernel releases the lock when the task ends, however it ends, so
a killed task never keeps a GPU. A scheduler's own ``CUDA_VISIBLE_DEVICES`` (SLURM) is left alone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path

from .errors import StormError

log = logging.getLogger(__name__)

GPUS_ENV, LOCKS_ENV, VISIBLE = "STORM_GPUS", "STORM_GPU_LOCKS", "CUDA_VISIBLE_DEVICES"
_held: list[int] = []  # descriptors of claimed locks: open as long as this process (and its exec) lives


def claim_gpu(poll_seconds: float = 2.0, timeout: float | None = None) -> str | None:
    """Claim a free GPU of ``$STORM_GPUS`` and make it this process's only visible one; returns
    it, or None when there is nothing to claim (no list, or a scheduler already chose). Waits
    while every GPU is held (``timeout`` seconds at most, then an error)."""
    devices = [d.strip() for d in os.environ.get(GPUS_ENV, "").split(",") if d.strip()]
    if not devices or os.environ.get(VISIBLE) or _held:
        return None
    folder = Path(os.environ.get(LOCKS_ENV) or Path(tempfile.gettempdir()) / f"storm-gpu-locks-{os.getuid()}")
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    while True:
        for device in devices:
            fd = os.open(folder / f"gpu{device}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.set_inheritable(fd, True)  # a hand-over to a model's environment (exec) keeps holding it
            _held.append(fd)
            os.environ[VISIBLE] = device
            log.info("GPU %s of %s claimed", device, ",".join(devices))
            return device
        if timeout is not None and time.monotonic() - started > timeout:
            raise StormError(f"no free GPU among {','.join(devices)} after {timeout:.0f}s (locks in {folder})")
        time.sleep(poll_seconds)
