"""The checks that need no expression values: they run in seconds, before any expensive step.

``storm check`` (the pipeline's CHECK task) calls them for every dataset: the spec's columns and
embedding exist, every run of the grid's plan (storm.grid) resolves its config, and what each model
reads besides X is in the data.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py

from .errors import InputError, SpecError, StormError
from .grid import Run, resolved_config
from .io import verify
from .spec import DatasetSpec
from .split.obs import require_columns

log = logging.getLogger(__name__)


def check_dataset(path: str | os.PathLike, spec: DatasetSpec) -> dict:
    """The spec's obs columns and embedding exist and X is there; returns the keys of its ``obsm``
    and ``layers`` (``{"obsm": keys, "layers": keys}``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"h5ad file not found: {path}")
    verify(path)
    try:
        with h5py.File(path, "r") as f:
            if "X" not in f:
                layers = ", ".join(f["layers"]) if "layers" in f else "none"
                raise InputError(f"{path} has no X matrix (layers: {layers}); storm reads expression from X")
            obsm = list(f["obsm"]) if "obsm" in f else []
            layers = list(f["layers"]) if "layers" in f else []
    except OSError as exc:
        raise InputError(f"cannot read {path} as h5ad: {exc}") from exc
    require_columns(path, spec.columns())
    if spec.embed_key and spec.embed_key not in obsm:
        raise SpecError(f"embedding '{spec.embed_key}' (embed_key) is not in obsm of {path}; "
                        f"obsm holds: {', '.join(obsm) or 'nothing'}")
    return {"obsm": obsm, "layers": layers}


def check_models(runs: list[Run], spec: DatasetSpec, stored: dict[str, list[str]],
                 require_environments: bool = False) -> None:
    """Every run of the plan finds what its model reads besides X (an embedding, a velocity layer)
    ``stored`` in the data; with ``require_environments``, its environment is installed here."""
    from .models import get_model_class
    from .models.environments import require

    for run in runs:
        cls = get_model_class(run.model)
        if require_environments:
            require(run.name, cls)
        config = resolved_config(run)
        try:
            reads = cls.data_keys(config, spec, stored)
        except StormError as exc:
            raise SpecError(f"model {run.name}: {exc}") from exc
        also = [f"{slot}['{key}']" for slot in ("obsm", "layers") for key in reads[slot]]
        log.info("model %s: config checks out%s", run.name, f", reads {', '.join(also)}" if also else "")
