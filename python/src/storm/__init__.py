"""storm: train and benchmark single-cell perturbation-response models."""

import os
from importlib.metadata import version

#: storm's version has one home, python/pyproject.toml (nextflow.config and docker/build.sh read it too)
__version__ = version("storm")
#: the commit an image was built from (docker/build.sh passes it in); None outside an image
__commit__ = os.environ.get("STORM_COMMIT") or None
