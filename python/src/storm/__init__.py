"""storm: train and benchmark single-cell perturbation-response models."""

__version__ = "0.1.0"
