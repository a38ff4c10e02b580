"""Score predictions against held-out cells, per (cell type, perturbation)."""

from .core import ALL, COLUMNS, evaluate, is_pair_row
from .vcc import build_reference

__all__ = ["ALL", "COLUMNS", "build_reference", "evaluate", "is_pair_row"]
