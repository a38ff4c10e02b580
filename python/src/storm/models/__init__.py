"""Models storm can train, found through the ``storm.models`` entry-point group."""

from .base import PerturbationModel
from .registry import available_models, get_model_class, model_variants

__all__ = ["PerturbationModel", "available_models", "get_model_class", "model_variants"]
