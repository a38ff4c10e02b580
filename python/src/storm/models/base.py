"""The interface every storm model implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..data import PerturbationData
from ..errors import StormError
from ..io import atomic_path
from ..spec import DatasetSpec


class PerturbationModel(ABC):
    """Predicts how control cells of a cell type look under a perturbation.

    Subclasses set :attr:`defaults` (their config keys and default values) and implement
    :meth:`fit`, :meth:`predict`, :meth:`save` and :meth:`load_state`. ``storm train`` passes config
    overrides from ``--set key=value``; unknown keys are rejected.
    """

    defaults: ClassVar[dict[str, Any]] = {}
    #: where a trainable model keeps its checkpoints (set by ``storm train``; None: out_dir/checkpoints)
    checkpoint_dir: Path | None = None

    def __init__(self, spec: DatasetSpec, seed: int = 0, **config: Any):
        self.check_config(config)
        self.spec = spec
        self.seed = seed
        self.config = {**self.defaults, **config}

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        """Reject config keys the model does not know, before any data is read."""
        unknown = sorted(set(config) - set(cls.defaults))
        if unknown:
            raise StormError(
                f"unknown config key(s) {', '.join(unknown)} for {cls.__name__}; "
                f"valid keys: {', '.join(sorted(cls.defaults)) or '(none)'}"
            )

    @abstractmethod
    def fit(self, data: PerturbationData, out_dir: Path) -> None:
        """Fit on the ``train`` cells of ``data`` (``val`` cells may steer early stopping)."""

    @abstractmethod
    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        """Predicted expression of ``controls`` (cells x genes) under ``perturbation``."""

    @abstractmethod
    def save(self, out_dir: Path) -> None:
        """Write the fitted state into ``out_dir``."""

    @abstractmethod
    def load_state(self, out_dir: Path) -> None:
        """Read back what :meth:`save` wrote."""

    @classmethod
    def load(cls, out_dir: Path, spec: DatasetSpec, seed: int, config: dict[str, Any]) -> "PerturbationModel":
        """Rebuild a fitted model from ``out_dir``."""
        model = cls(spec, seed=seed, **config)
        model.load_state(out_dir)
        return model


def save_table(path: Path, keys: list[str], values: np.ndarray) -> None:
    """Save rows of ``values`` keyed by strings, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, keys=np.asarray(keys, dtype=str), values=values)


def load_table(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return dict(zip(npz["keys"].tolist(), npz["values"]))
