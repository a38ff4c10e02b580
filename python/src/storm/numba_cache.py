"""Numba kernels that cell-eval's dependencies compile afresh in every process (pdex's
Mann-Whitney U, UMAP's and pynndescent's neighbour graph: upstream does not cache them) cost
EVALUATE and REFERENCE tasks 10-20 s each. Turning numba's on-disk cache on for them means only
the first task on a machine compiles; the others load the compiled code."""

from __future__ import annotations

import functools
import importlib
import os
import tempfile
from pathlib import Path

MODULES = ("numba_mwu", "pdex._math", "umap.umap_", "umap.utils", "umap.sparse", "umap.layouts",
           "pynndescent.pynndescent_", "pynndescent.utils", "pynndescent.distances", "pynndescent.sparse")


def use_cache_dir() -> None:
    """Point numba's cache at a writable folder shared by a user's tasks (before numba loads):
    $NUMBA_CACHE_DIR if set, else ~/.cache/storm/numba, else the temporary folder."""
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    candidates = (Path.home() / ".cache" / "storm" / "numba",
                  Path(tempfile.gettempdir()) / f"storm-numba-{os.getuid()}")
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                os.environ["NUMBA_CACHE_DIR"] = str(folder)
                return
        except OSError:
            continue


@functools.cache
def cache_kernels() -> None:
    """Turn caching on for the numba functions of :data:`MODULES` that are installed."""
    from numba.core.registry import CPUDispatcher

    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher):
                try:
                    obj.enable_caching()
                except RuntimeError:  # no cache locator (a closure, say): it compiles as before
                    continue
