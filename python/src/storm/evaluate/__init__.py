"""Score predictions against held-out cells, per (cell type, perturbation)."""

from .core import evaluate, pseudobulk_metrics

__all__ = ["evaluate", "pseudobulk_metrics"]
