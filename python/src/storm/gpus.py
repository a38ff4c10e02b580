"""GPUs per task on a multi-GPU workstation (the local executor), as a scheduler would give.

Nextflow's local executor runs tasks side by side but hands out no GPUs. With ``-profile gpu
--local_gpus 0,1,...`` it runs at most as many GPU tasks at once as there are GPUs and tells each
task the list (``STORM_GPUS``); the task claims the first GPU (or, training on ``devices: N``,
the first N) no other task holds, with an exclusive ``flock`` on ``<lock dir>/gpu<N>.lock``, and
sees only those (``CUDA_VISIBLE_DEVICES``). The kernel releases the lock when the task ends,
however it ends, so a killed task never keeps a GPU. A scheduler's own ``CUDA_VISIBLE_DEVICES`` (SLURM) is left alone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
import time
from pathlib import Path

from .errors import StormError

log = logging.getLogger(__name__)

GPUS_ENV, LOCKS_ENV, VISIBLE = "STORM_GPUS", "STORM_GPU_LOCKS", "CUDA_VISIBLE_DEVICES"
_held: list[int] = []  # descriptors of claimed locks: open as long as this process (and its exec) lives
#: the oldest NVIDIA driver (Linux) each CUDA major version of PyPI's torch wheels runs on (NVIDIA's
#: CUDA compatibility table); storm's images pin a CUDA 13 torch
MIN_DRIVER = {11: (450, 80, 2), 12: (525, 60, 13), 13: (580, 65, 6)}
DRIVER_FILE = Path("/proc/driver/nvidia/version")  # the loaded kernel module's version: a GPU host


def training_rank() -> int:
    """This process's rank in a training over several devices: Lightning starts ranks 1.. as
    copies of the command with ``LOCAL_RANK`` set; rank 0 is the process that started them (or
    the only one). Only rank 0 takes the training lock and writes outputs."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def claim_gpu(count: int = 1, poll_seconds: float = 2.0, timeout: float | None = None) -> str | None:
    """Claim ``count`` free GPUs of ``$STORM_GPUS`` and make them this process's only visible
    ones; returns them (comma-separated), or None when there is nothing to claim (no list, or a
    scheduler already chose). Waits while too few are free (``timeout`` seconds at most, then an
    error)."""
    devices = [d.strip() for d in os.environ.get(GPUS_ENV, "").split(",") if d.strip()]
    if not devices or os.environ.get(VISIBLE) or _held:
        return None
    if count > len(devices):
        raise StormError(f"training asks for {count} GPUs; --local_gpus lists {len(devices)} ({','.join(devices)})")
    folder = Path(os.environ.get(LOCKS_ENV) or Path(tempfile.gettempdir()) / f"storm-gpu-locks-{os.getuid()}")
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    while True:
        claimed = []
        for device in devices:
            fd = os.open(folder / f"gpu{device}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            claimed.append((device, fd))
            if len(claimed) == count:
                for _, held in claimed:
                    os.set_inheritable(held, True)  # a hand-over to a model's environment (exec) keeps holding it
                    _held.append(held)
                os.environ[VISIBLE] = ",".join(d for d, _ in claimed)
                log.info("GPU %s of %s claimed", os.environ[VISIBLE], ",".join(devices))
                return os.environ[VISIBLE]
        for _, fd in claimed:  # too few free: let the others have them while this one waits
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        if timeout is not None and time.monotonic() - started > timeout:
            wanted = "free GPU" if count == 1 else f"{count} free GPUs"
            raise StormError(f"no {wanted} among {','.join(devices)} after {timeout:.0f}s (locks in {folder})")
        time.sleep(poll_seconds)


def host_driver() -> tuple[int, ...] | None:
    """The version of the NVIDIA driver this host has loaded; None without one."""
    try:
        text = DRIVER_FILE.read_text()
    except OSError:
        return None
    found = re.search(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)", text)
    return tuple(int(part) for part in found.group(1).split(".")) if found else None


def check_driver(cuda: str | None = None) -> None:
    """On a GPU host, stop before training when its driver is older than torch's CUDA build
    needs (torch would fall back to the CPU or fail deep in a run), naming both versions.
    ``cuda``: torch's CUDA version (default: the installed torch's)."""
    driver = host_driver()
    if driver is None:
        return
    if cuda is None:
        import torch

        cuda = torch.version.cuda
    need = MIN_DRIVER.get(int(cuda.split(".")[0])) if cuda else None
    if need and driver < need:
        raise StormError(f"this host's NVIDIA driver is {'.'.join(map(str, driver))}; torch's CUDA {cuda} needs "
                         f"{'.'.join(map(str, need))} or newer: update the driver, or train on the CPU "
                         f"(--model_set <model>.accelerator=cpu)")
