"""Splits at the (covariates, perturbation) pair level; they are CSVs, never copies of the data."""

from .core import Split, SplitInvariantError, SplitParams
from .export import write_split
from .obs import CodedObs, read_coded_obs
from .run import STRATEGIES, check_split_inputs, make_split, split_name

__all__ = ["CodedObs", "STRATEGIES", "Split", "check_split_inputs", "SplitInvariantError", "SplitParams", "make_split",
           "read_coded_obs", "split_name", "write_split"]
