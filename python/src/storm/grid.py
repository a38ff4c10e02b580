"""The experiment grid, planned once.

``--models`` (names and variants ``name=model``), ``--model_configs`` (a mapping from a params
file) and ``--model_set`` (``model.key=value`` items, a value ``a|b`` sweeping the key) are read
here and nowhere else: :func:`plan` turns them into the training runs, each with its name, the
installed model it runs, its environment and image, the resources it asks for and the exact
settings it trains with. CHECK writes the plan to ``plan.json``; the pipeline schedules TRAIN from
it and passes each run's settings through unchanged.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import StormError

log = logging.getLogger(__name__)

#: separates a swept model from its settings in a configuration's name (``linear_additive@lr=1e-3``)
SWEEP_SEPARATOR = "@"
#: items of --model_set are separated by white space; quotes and brackets keep an item whole
_OPEN, _CLOSE = "[{(", "]})"


def split_items(text: str) -> list[str]:
    """``"a.x=1 b.y='p q' c.z=[1, 2]"`` -> ``["a.x=1", "b.y=p q", "c.z=[1, 2]"]``: white space
    separates items, quotes (removed) and brackets (kept) hold one together. The one splitting rule
    of the pipeline's pass-through strings (``--model_set``, ``--split_args``, ``--loader_set``)."""
    items, item, depth, quote = [], [], 0, None
    for c in text or "":
        if quote:
            if c == quote:
                quote = None
            else:
                item.append(c)
        elif c in "'\"":
            quote = c
        elif c.isspace() and depth == 0:
            if item:
                items.append("".join(item))
            item = []
        else:
            depth += 1 if c in _OPEN else -1 if c in _CLOSE else 0
            item.append(c)
    if quote:
        raise StormError(f"unbalanced {quote} in '{text}'")
    if item:
        items.append("".join(item))
    return items


def as_text(value) -> str:
    """A setting's value as --set text (parsed back as YAML by the model's config)."""
    return value if isinstance(value, str) else json.dumps(value)


def config_items(tree: dict, prefix: str = "") -> list[str]:
    """--model_configs (nested mappings) as ``model.key=value`` items, nested keys dotted."""
    items = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            items.extend(config_items(value, f"{prefix}{key}."))
        else:
            items.append(f"{prefix}{key}={as_text(value)}")
    return items


@dataclass
class Run:
    """One training run of the grid (per split: every split trains every run)."""

    name: str          # what results, folders and the report call it
    model: str         # the installed model it runs
    group: str         # a sweep's configurations share it (the name swept); else the name
    environment: str   # where it trains and predicts (storm models); its image is storm-<environment>
    image: str | None  # the image it runs in when not its step's default (--model_images, its environment's)
    settings: dict[str, str] = field(default_factory=dict)  # key -> value text, as `storm train --set` takes it
    sweep: dict[str, str] | None = None  # a sweep's configuration: its swept keys' values
    resources: dict = field(default_factory=dict)  # memory (None: the step's label), devices, backed


def _parse_item(item: str) -> tuple[str, str, str]:
    owner, dot, rest = item.partition(".")
    key, eq, value = rest.partition("=")
    if not (dot and eq and owner and key):
        raise StormError(f"--model_set item '{item}' must be <model>.<key>=<value>, e.g. linear_additive.lr=0.01")
    return owner, key.strip(), value


def _image(name: str, group: str, model: str, environment: str, overrides: dict[str, str]) -> str | None:
    from .models.environments import CORE, image_of

    for key in (name, group, model):
        if key in overrides:
            return overrides[key]
    return None if environment == CORE else image_of(environment)


def parse_images(text: str) -> dict[str, str]:
    """--model_images ``model=image,...`` -> ``{model: image}``."""
    images = {}
    for entry in filter(None, (e.strip() for e in (text or "").replace(" ", ",").split(","))):
        name, eq, image = entry.partition("=")
        if not eq or not name or not image:
            raise StormError(f"--model_images entry '{entry}' must be <model>=<image>")
        images[name] = image
    return images


def plan(models: list[str], model_set: str = "", model_configs: dict | None = None,
         model_images: str = "") -> list[Run]:
    """Every training run: each model or variant with the settings given to its installed model,
    then those given to its own name (``--model_configs`` first, ``--model_set`` over it); a key
    whose value is ``a|b`` multiplies the runs into a sweep's configurations. A setting naming
    neither an installed model nor a variant is an error (a typo would be ignored otherwise)."""
    from .models import available_models, get_model_class, model_variants

    variants = model_variants(models)
    installed = set(available_models())
    items = config_items(model_configs or {}) + split_items(model_set)
    fixed: dict[str, dict[str, str]] = {}
    swept: dict[str, dict[str, list[str]]] = {}
    for item in items:
        owner, key, value = _parse_item(item)
        if owner not in installed and owner not in variants:
            raise StormError(f"model override '{owner}.{key}' names model '{owner}', which is not installed; "
                             f"models: {', '.join(sorted(installed))}")
        if owner not in variants and owner not in variants.values():
            log.info("model override %s.%s ignored: %s is not among the models run", owner, key, owner)
            continue
        if "|" in value:
            swept.setdefault(owner, {})[key] = value.split("|")
        else:
            fixed.setdefault(owner, {})[key] = value
    images = parse_images(model_images)
    runs = []
    for name, model in variants.items():
        environment = get_model_class(model).environment
        settings = {**fixed.get(model, {}), **fixed.get(name, {})}
        axes = {**swept.get(model, {}), **swept.get(name, {})}
        for key in axes:
            settings.pop(key, None)
        configurations = [dict(zip(axes, choice)) for choice in itertools.product(*axes.values())] if axes else [None]
        for sweep in configurations:
            run_name = name if sweep is None else \
                f"{name}{SWEEP_SEPARATOR}{','.join(f'{k}={v}' for k, v in sweep.items())}"
            run = Run(name=run_name, model=model, group=name, environment=environment,
                      image=_image(run_name, name, model, environment, images),
                      settings={**settings, **(sweep or {})}, sweep=sweep)
            config = resolved_config(run)
            # what it asks its executor for (memory: sized from the data, qc.json); a model that
            # always reads its cells from disk (the baselines) asks for what reading from disk takes
            run.resources = {"memory": None, "devices": int(config.get("devices", 1)),
                             "backed": bool(config.get("backed")) or get_model_class(model).reads_cells == "disk"}
            runs.append(run)
    return runs


def resolved_config(run: Run) -> dict:
    """The config the run trains with: its model's defaults under its settings (unknown keys raise)."""
    from .models import get_model_class
    from .models.config import parse_value

    return get_model_class(run.model).resolve_config(
        {key: parse_value(value, f"--model_set {run.group}.{key}={value}") for key, value in run.settings.items()})


def group_of(name: str) -> str:
    """A sweep configuration's model name (``linear_additive@lr=1e-3`` -> ``linear_additive``)."""
    return name.split(SWEEP_SEPARATOR, 1)[0]


def write_plan(runs: list[Run], path: Path) -> None:
    """plan.json: the runs, and whether any is a sweep's (the pipeline then scores validation pairs)."""
    from .io import write_json

    write_json({"runs": [asdict(run) for run in runs], "sweeps": any(run.sweep for run in runs)}, path)
