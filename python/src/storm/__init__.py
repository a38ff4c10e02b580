"""storm: train and benchmark single-cell perturbation-response models."""

from importlib.metadata import version

#: storm's version has one home, python/pyproject.toml (nextflow.config and docker/build.sh read it too)
__version__ = version("storm")
