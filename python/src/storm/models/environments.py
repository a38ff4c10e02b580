"""Where each model runs: storm's own environment, or its family's.

A model whose package clashes with storm's core declares its ``environment`` and the modules it
``requires``. Its family's environment is a venv built from ``python/envs/<environment>.lock`` by
``make install-env ENV=<environment>`` at ``<envs dir>/.venv-<environment>`` (the envs dir is
$STORM_ENVS_DIR, else the folder that holds storm's own venv); a container image built from the
same lock has the packages installed. ``storm train`` and ``storm predict`` run a model in the
current interpreter when its modules import here, and otherwise hand the whole command to its
environment's Python, so a task calls ``storm`` the same way on every executor.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from ..errors import StormError

CORE = "core"
ENVS_DIR = "STORM_ENVS_DIR"
HANDED_TO = "STORM_HANDED_TO"  # set on a handed-over command: a second handover would loop
STAMP = ".storm-installed"     # written by tools/install-env once the environment is complete


class EnvironmentMissing(StormError):
    """A model's environment is not installed where storm looks for it."""


def image_of(environment: str) -> str:
    """The image a model of ``environment`` runs in: storm's own, or storm-<environment>."""
    return "storm" if environment == CORE else f"storm-{environment}"


def images() -> list[str]:
    """Every image docker/build.sh builds: storm, storm-gpu, and one per model environment."""
    from .registry import available_models, get_model_class

    environments = {get_model_class(name).environment for name in available_models()} - {CORE}
    return ["storm", "storm-gpu", *sorted(image_of(e) for e in environments)]


def envs_dir() -> Path:
    return Path(os.environ.get(ENVS_DIR) or Path(sys.prefix).parent)


def venv(environment: str) -> Path:
    return envs_dir() / f".venv-{environment}"


def install_command(environment: str) -> str:
    return f"make install-env ENV={environment}"


def runs_here(cls) -> bool:
    """Whether every module the model needs imports in this interpreter."""
    return all(importlib.util.find_spec(module) is not None for module in cls.requires)


def import_error(cls) -> str | None:
    """None when every module the model needs really imports here; else the first failure."""
    for module in cls.requires:
        try:
            importlib.import_module(module)
        except Exception as exc:  # an import can fail in any way: a missing library, a bad pin
            return f"import {module}: {type(exc).__name__}: {exc}".splitlines()[0]
    return None


def installed(environment: str) -> bool:
    return (venv(environment) / STAMP).is_file()


def status(cls) -> str:
    """What ``storm models`` says about a model's environment here."""
    if runs_here(cls):
        return "here"
    if installed(cls.environment):
        return f"installed ({venv(cls.environment)})"
    return f"missing: {install_command(cls.environment)}"


def require(name: str, cls) -> Path | None:
    """None when the model runs here; else the Python of its environment. A missing environment
    (or one that lacks the modules) is an error naming the command that installs it."""
    if runs_here(cls):
        return None
    environment = cls.environment
    if os.environ.get(HANDED_TO) == environment or not installed(environment):
        missing = ", ".join(m for m in cls.requires if importlib.util.find_spec(m) is None)
        where = venv(environment)
        raise EnvironmentMissing(
            f"model '{name}' runs in environment '{environment}' ({missing} missing here), which is not "
            f"installed at {where}: run `{install_command(environment)}` in storm's folder, or point "
            f"${ENVS_DIR} at the folder that holds .venv-{environment}")
    return venv(environment) / "bin" / "python"


def hand_over(python: Path, environment: str, argv: list[str]) -> None:
    """Run this storm command again in ``python`` (never returns)."""
    os.environ[HANDED_TO] = environment
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(python, [str(python), "-m", "storm", *argv])
