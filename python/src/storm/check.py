"""The checks that need no expression values: they run in seconds, before any expensive step.

``storm check`` (the pipeline's CHECK task) calls them for every dataset: the spec's columns and
embedding exist, every requested model is installed and takes its config overrides, and each
model's embedding input is in the data.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import defaultdict
from pathlib import Path

import h5py

from .errors import InputError, SpecError, StormError
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


def model_overrides(variants: dict[str, str], overrides: dict) -> dict[str, dict]:
    """``{"linear_additive.max_epochs": 5}`` -> per model name ``{"max_epochs": 5}``. A key naming
    an installed model applies to every variant of it (``st.min_steps`` reaches ``st_lora=st``),
    then a key naming a variant, over it. A key naming neither an installed model nor a variant is
    an error (a typo would otherwise be ignored); one naming an installed model that is not run (a
    profile's setting, say) is ignored with a note."""
    from .models import available_models

    installed = set(available_models())
    per_model: dict[str, dict] = defaultdict(dict)
    own: dict[str, dict] = defaultdict(dict)
    for key, value in overrides.items():
        model, sep, rest = key.partition(".")
        if not sep or not rest:
            raise StormError(f"model override '{key}' must be <model>.<key>=<value>, e.g. linear_additive.lr=0.01")
        if model not in installed and model not in variants:
            raise StormError(f"model override '{key}' names model '{model}', which is not installed; "
                             f"models: {', '.join(sorted(installed))}")
        if model not in variants and model not in variants.values():
            log.info("model override %s ignored: %s is not among the models run", key, model)
            continue
        for name, base in variants.items():
            if model == base and name != base:
                per_model[name][rest] = value
        (own if model in variants else per_model)[model][rest] = value
    for name, settings in own.items():
        per_model[name].update(settings)
    return per_model


def check_models(models: list[str], overrides: dict, spec: DatasetSpec, stored: dict[str, list[str]],
                 require_environments: bool = False) -> dict[str, str]:
    """Every model (``name`` or a variant ``name=model``) is installed and resolves its config;
    what it reads besides X (an embedding, a velocity layer) is ``stored`` in the data; with
    ``require_environments``, its environment is installed here. Returns each name's environment."""
    from .models import get_model_class, model_variants
    from .models.environments import require

    variants = model_variants(models)
    per_model = model_overrides(variants, overrides)
    environments = {}
    for name, base in variants.items():
        cls = get_model_class(base)
        environments[name] = cls.environment
        if require_environments:
            require(name, cls)
        configurations = sweep_configurations(per_model.get(name, {}))
        for overrides_of_one in configurations:
            config = cls.resolve_config(overrides_of_one)
            try:
                reads = cls.data_keys(config, spec, stored)
            except StormError as exc:
                raise SpecError(f"model {name}: {exc}") from exc
        also = [f"{slot}['{key}']" for slot in ("obsm", "layers") for key in reads[slot]]
        swept = f", {len(configurations)} configurations swept" if len(configurations) > 1 else ""
        log.info("model %s: config checks out%s%s", name, swept, f", reads {', '.join(also)}" if also else "")
    return environments


def sweep_configurations(overrides: dict) -> list[dict]:
    """A model's overrides with a sweep's values (``lr: "1e-3|1e-4"``, from ``--model_set
    linear_additive.lr=1e-3|1e-4``) as every configuration they make (the pipeline trains each,
    StormLaunch.sweeps names them): the product over the swept keys, each value parsed alone."""
    from .models.config import parse_value

    axes = [[(key, parse_value(v, f"--model_set {key}={value}")) for v in value.split("|")]
            if isinstance(value, str) and "|" in value else [(key, value)] for key, value in overrides.items()]
    return [dict(choice) for choice in itertools.product(*axes)]
