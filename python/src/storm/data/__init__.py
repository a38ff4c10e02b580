"""In-memory training data: a prepared dataset restricted to one split's genes."""

from .dataset import PerturbationData, load_split_data, prepared_spec, stored_keys

__all__ = ["PerturbationData", "load_split_data", "prepared_spec", "stored_keys"]
