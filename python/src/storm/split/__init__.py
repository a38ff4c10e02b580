"""Splits at the (cell type, perturbation) pair level; they are CSVs, never copies of the data."""

from .transfer import SplitResult, transfer_split, write_split

__all__ = ["SplitResult", "transfer_split", "write_split"]
