"""Model configs: a YAML of defaults per model, overridden by a config file and dot keys.

``--set lora.rank=8`` reaches ``{"lora": {"rank": 8}}``. A key the defaults do not have is an
error, so a typo never trains with a silent default; sections a model declares open (State's own
Hydra keys) take any key.
"""

from __future__ import annotations

import copy
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError, StormError


def parse_value(text: str, where: str) -> Any:
    """A setting's value written as text (``--set``, ``--model_set``), read as YAML: numbers,
    booleans, lists, strings; ``1e-3`` is a number (YAML 1.1 would read a string)."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StormError(f"{where}: the value is not valid YAML ({exc.problem})") from exc
    if isinstance(parsed, str):
        try:
            return float(parsed)
        except ValueError:
            pass
    return parsed


def load_defaults(model_name: str, base: tuple[str, ...] = ()) -> dict[str, Any]:
    """The defaults shipped in ``storm/models/configs/<model_name>.yaml``, over those of the
    ``base`` YAMLs (keys a family of models shares), later ones over earlier ones."""
    def read(name: str) -> dict[str, Any]:
        return yaml.safe_load(files(__package__).joinpath("configs", f"{name}.yaml").read_text()) or {}
    merged: dict[str, Any] = {}
    for name in (*base, model_name):
        merged.update(read(name))
    return merged


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A user's YAML config (nested keys), checked to be a mapping."""
    try:
        tree = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read model config {path}: {exc}") from exc
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise InputError(f"model config {path} must be a mapping of keys to values")
    return tree


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dot keys; a key that already holds dots is kept as one path."""
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def _inside(path: str, sections: frozenset[str]) -> bool:
    return any(path == s or path.startswith(f"{s}.") for s in sections)


def resolve(defaults: dict[str, Any], overrides: dict[str, Any], open_sections: frozenset[str] = frozenset(),
            owner: str = "model") -> dict[str, Any]:
    """``defaults`` with ``overrides`` (dot keys or nested) applied; unknown keys raise."""
    config = copy.deepcopy(defaults)
    unknown = []
    for path, value in flatten(overrides).items():
        *parents, leaf = path.split(".")
        node = config
        if _inside(".".join(parents), open_sections):  # an open section grows as needed
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
            continue
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            unknown.append(path)
            continue
        if isinstance(node[leaf], dict) and not isinstance(value, dict):
            raise StormError(f"config key {path} of {owner} is a section; set the keys under it, e.g. "
                             f"{path}.{next(iter(node[leaf]), 'key')}=...")
        node[leaf] = value
    if unknown:
        also = f" (and any key under {', '.join(sorted(open_sections))})" if open_sections else ""
        raise StormError(f"unknown config key(s) {', '.join(sorted(unknown))} for {owner}; "
                         f"valid keys: {', '.join(sorted(flatten(defaults))) or '(none)'}{also}")
    return config
