"""Run a command as a child process and measure it (shared by the benchmark scripts)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path


def measure(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one child process; exits with its stderr if it fails."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty child never blocks on it
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        log.seek(0)
        errors = log.read().decode(errors="replace")
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{errors[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024**2


def sized(root: Path, **sizes) -> Path:
    """A cache folder named by every size that shapes what is cached in it, so data written for one
    set of flags is never timed under another's header."""
    folder = Path(root) / "-".join(f"{key}{value}" for key, value in sizes.items())
    folder.mkdir(parents=True, exist_ok=True)
    return folder
