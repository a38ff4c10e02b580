"""Logging of storm's steps: one line format on stderr (Nextflow keeps it per task) and, with
``storm --log-file``, the same lines in a task log published beside the step's outputs. Lines
that only advertise or repeat (Lightning's tips and hardware banner, its srun hint, library
deprecation notices) are dropped, and libraries that bring their own handler print through
storm's instead of a second time."""

from __future__ import annotations

import logging
import re
import sys
import warnings
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISE = re.compile(
    r"💡 Tip|litlogger|GPU available: |TPU available: |HPU available: |The `srun` command is available"
    r"|is deprecated|LeafSpec|does not have many workers|Output directory .* already exists"
    r"|pdex_kwargs are ignored when reading from a CSV|You are using a CUDA device"
)

#: libraries that log a line per step or epoch at INFO (State's FLOPs counter, cell-load's sampler)
CHATTY = ("state.tx.callbacks", "cell_load.data_modules.samplers")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and record.name.startswith(CHATTY):
            return False
        return not NOISE.search(record.getMessage())


def setup(level: int, log_file: Path | None = None) -> None:
    """Root handlers: stderr, and ``log_file`` when given (its folder is created)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
        handler.addFilter(_DropNoise())
    logging.basicConfig(level=level, handlers=handlers, force=True)
    logging.captureWarnings(True)  # warnings go through the same handlers and filter
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def adopt(*names: str) -> None:
    """Make libraries' loggers print through storm's handlers only (once, in storm's format)."""
    for name in names:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
