"""What a step ran: the versions of storm, Python and the libraries the step imported, written as
YAML for the pipeline's ``pipeline_info/software_versions.yml``."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

#: imported module -> its distribution; a step reports those it imported
LIBRARIES = {
    "storm": "storm", "anndata": "anndata", "numpy": "numpy", "pandas": "pandas", "scipy": "scipy",
    "h5py": "h5py", "pyarrow": "pyarrow", "scanpy": "scanpy", "sklearn": "scikit-learn", "torch": "torch",
    "lightning": "lightning", "cell_eval": "cell-eval", "pdex": "pdex", "state": "arc-state",
    "cell_load": "cell-load", "peft": "peft", "boto3": "boto3", "matplotlib": "matplotlib",
    "scvi": "scvi-tools", "biolord": "biolord", "cpa": "cpa-tools", "pertpy": "pertpy", "jax": "jax",
    "pytorch_lightning": "pytorch-lightning", "cellflow": "cellflow-tools", "ott": "ott-jax", "flax": "flax",
}


def used_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for module, dist in LIBRARIES.items():
        if module in sys.modules:
            try:
                found[dist] = version(dist)
            except PackageNotFoundError:
                continue
    return found


def write_versions(path: Path) -> None:
    from .io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(used_versions(), sort_keys=True))
