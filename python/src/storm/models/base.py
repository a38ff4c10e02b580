"""The interface every storm model implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..data import PerturbationData
from ..errors import InputError
from ..io import atomic_path
from ..spec import DatasetSpec
from .config import resolve

#: what a trainable model's folder holds besides its weights: the loss per epoch and per step
EPOCH_LOG, STEP_LOG = "train_log.csv", "train_steps.csv"


#: what each ``reads_cells`` means, as ``storm models`` states it
READS_CELLS = {"disk": "from disk, a block or a row at a time", "auto": "in memory; from disk past the budget",
               "memory": "in memory; past the budget an error"}


class PerturbationModel(ABC):
    """Predicts how control cells of a cell type look under a perturbation.

    Subclasses set :attr:`defaults` (their config keys and default values, possibly nested) and
    implement :meth:`fit`, :meth:`predict`, :meth:`save` and :meth:`load_state`. ``storm train``
    passes overrides from ``--config FILE`` and ``--set key.sub=value``; unknown keys are rejected.
    """

    defaults: ClassVar[dict[str, Any]] = {}
    #: config sections passed on as they are (any key accepted), e.g. another tool's own settings
    open_sections: ClassVar[frozenset[str]] = frozenset()
    #: who implements it: "storm" or the package whose code trains it
    family: ClassVar[str] = "storm"
    #: the environment it trains and predicts in (``models.environments``), and the modules it
    #: needs there: storm runs it here when those import, else hands the command to that environment
    environment: ClassVar[str] = "core"
    requires: ClassVar[tuple[str, ...]] = ()
    #: what a retried training does after a killed one, as ``storm models`` states it
    resume: ClassVar[str] = "nothing to resume (fits in seconds)"
    #: where training reads cells from (``storm train`` decides by the data's size): "disk" always
    #: (it needs only group means, summed a block at a time), "auto" in memory while the split's
    #: cells fit the memory budget and from disk past it, "memory" always (its package needs them
    #: in memory: past the budget it is an error naming the budget)
    reads_cells: ClassVar[str] = "memory"
    #: a closed-form baseline: the verdict asks whether a model beats every baseline of the run
    baseline: ClassVar[bool] = False
    #: where a trainable model keeps its checkpoints (set by ``storm train``; None: out_dir/checkpoints)
    checkpoint_dir: Path | None = None

    def __init__(self, spec: DatasetSpec, seed: int = 0, **config: Any):
        self.spec = spec
        self.seed = seed
        self.config = self.resolve_config(config)
        if "embed_key" in self.config:
            self.config["embed_key"] = self.embedding_key(self.config, spec)

    @staticmethod
    def embedding_key(config: dict[str, Any], spec: DatasetSpec) -> str | None:
        """The obsm key a model with ``config`` reads cells from: its own ``embed_key``, else the
        dataset's (for models that take an embedding at all), else None: expression."""
        if "embed_key" not in config:
            return None
        return config["embed_key"] or spec.embed_key

    @classmethod
    def data_keys(cls, config: dict[str, Any], spec: DatasetSpec, stored: dict[str, list[str]]) -> dict[str, tuple]:
        """What a model with ``config`` reads besides X: ``{"obsm": keys, "layers": keys}``, given
        the keys ``stored`` in the prepared file; a key it needs and cannot find raises here."""
        embed_key = cls.embedding_key(config, spec)
        if embed_key and embed_key not in stored["obsm"]:
            raise InputError(f"embedding '{embed_key}' (embed_key) is not in obsm; obsm holds: "
                             f"{', '.join(stored['obsm']) or 'nothing'}")
        return {"obsm": (embed_key,) if embed_key else (), "layers": ()}

    @classmethod
    def resolve_config(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        """The defaults with ``overrides`` (dot keys or nested) applied; unknown keys raise."""
        return resolve(cls.defaults, overrides, cls.open_sections, owner=cls.__name__)

    @property
    def input_key(self) -> str | None:
        """The obsm key the model reads cells from, or None for expression (``X``)."""
        return self.config.get("embed_key")

    def inputs(self, data: PerturbationData, cells: np.ndarray) -> np.ndarray:
        """What :meth:`predict` takes for ``cells``: their expression, or their embedding."""
        return data.rows(cells) if self.input_key is None else data.obsm[self.input_key][cells]

    @abstractmethod
    def fit(self, data: PerturbationData, out_dir: Path) -> None:
        """Fit on the ``train`` cells of ``data`` (``val`` cells may steer early stopping)."""

    @abstractmethod
    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        """Predicted expression (cells x genes) of ``controls`` under ``perturbation``; ``controls``
        come from :meth:`inputs`."""

    def unrepresentable(self, cell_type: str, perturbation: str) -> str | None:
        """Why the fitted model cannot predict this condition, or None when it can (a request for
        a condition no one measured is checked with this before anything is predicted)."""
        return None

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
