"""Look models up by name among the installed ``storm.models`` entry points.

A lab adds a model by shipping a package that declares, in its pyproject.toml::

    [project.entry-points."storm.models"]
    my_model = "my_lab.models:MyModel"
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points

from ..errors import StormError, UnknownModelError
from .base import PerturbationModel

GROUP = "storm.models"


def available_models() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def get_model_class(name: str) -> type[PerturbationModel]:
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        raise UnknownModelError(
            f"unknown model '{name}'; installed models: {', '.join(available_models()) or '(none)'}"
        )
    cls = matches[0].load()
    if not (isinstance(cls, type) and issubclass(cls, PerturbationModel)):
        raise UnknownModelError(f"entry point '{name}' ({matches[0].value}) is not a PerturbationModel")
    return cls


#: a model's name in results, folders and config overrides
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def model_variants(entries: list[str]) -> dict[str, str]:
    """``["st", "st_lora=st"]`` -> ``{"st": "st", "st_lora": "st"}``: each entry runs an
    installed model under its own name (the name = the model, or ``name=model`` for a variant
    configured on its own, e.g. in a study). Names are unique and never another model's."""
    installed = set(available_models())
    variants: dict[str, str] = {}
    for entry in entries:
        name, _, model = (part.strip() for part in entry.partition("="))
        model = model or name
        if not NAME.match(name):
            raise StormError(f"model name '{name}' may hold only letters, digits, '_', '.' and '-'")
        get_model_class(model)  # unknown models fail here
        if name != model and name in installed:
            raise StormError(f"'{entry}': {name} is an installed model; give the variant a name of its own")
        if name in variants:
            raise StormError(f"model name '{name}' is given twice")
        variants[name] = model
    return variants
