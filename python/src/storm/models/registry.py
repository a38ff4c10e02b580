"""Look models up by name among the installed ``storm.models`` entry points.

A lab adds a model by shipping a package that declares, in its pyproject.toml::

    [project.entry-points."storm.models"]
    my_model = "my_lab.models:MyModel"
"""

from __future__ import annotations

from importlib.metadata import entry_points

from ..errors import UnknownModelError
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
