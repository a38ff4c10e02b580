"""What the published models storm runs through their own packages share.

Each lives in its family's environment (``models.environments``), so its package is imported only
inside ``fit`` and ``load_state``. storm hands the package the split's training cells as AnnData
with canonical obs columns (validation cells marked for the package's early stopping), lets the
package train and save, and keeps the saved model in ``out_dir/<package_dir>``, written whole or
not at all.
"""

from __future__ import annotations

import logging
import random
import shutil
from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

import anndata as ad
import numpy as np
import pandas as pd

from ..data import PerturbationData
from ..logs import adopt
from ..spec import CELL_TYPE, PERTURBATION
from .base import PerturbationModel

log = logging.getLogger(__name__)

SPLIT = "split"        # obs column of the training AnnData: "train" or "valid"
TRAIN, VALID = "train", "valid"


def cells_anndata(X: np.ndarray, perturbation: np.ndarray, cell_type: np.ndarray, genes: np.ndarray,
                  names: np.ndarray | None = None) -> ad.AnnData:
    """Cells as the packages read them: expression in X, perturbation and cell type in obs."""
    obs = pd.DataFrame({PERTURBATION: pd.Categorical(perturbation), CELL_TYPE: pd.Categorical(cell_type)},
                       index=pd.Index(names if names is not None else np.arange(len(X)).astype(str), dtype=object))
    return ad.AnnData(X=np.asarray(X, dtype=np.float32), obs=obs,
                      var=pd.DataFrame(index=pd.Index(genes.astype(str), dtype=object)))


def training_anndata(data: PerturbationData) -> ad.AnnData:
    """The split's training and validation cells (never its test cells), ``obs['split']`` saying which."""
    cells = np.flatnonzero(data.split != "test")
    adata = cells_anndata(data.rows(cells), data.perturbation[cells], data.cell_type[cells], data.genes,
                          data.ids(cells))
    adata.obs[SPLIT] = pd.Categorical(np.where(data.split[cells] == "val", VALID, TRAIN))
    return adata


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class PackageModel(PerturbationModel):
    """A published model trained and saved by its own package; subclasses say which."""

    #: the folder of ``out_dir`` the package saves its model into
    package_dir: ClassVar[str] = "package"
    resume = "restarts training: the package keeps no mid-training checkpoint"

    def fit(self, data: PerturbationData, out_dir: Path) -> None:
        adopt("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "scvi", "jax")
        self.checkpoints = self.checkpoint_dir or out_dir / "checkpoints"
        self.seen = sorted(set(data.perturbation[data.split != "test"]))
        self.warned: set[str] = set()
        self.train_package(training_anndata(data), data)

    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        if perturbation not in self.seen:
            if perturbation not in self.warned:
                log.warning("%s never saw '%s' in training; predicting it as the control",
                            type(self).__name__, perturbation)
                self.warned.add(perturbation)
            perturbation = self.spec.control_value
        return np.asarray(self.predict_package(controls, cell_type, perturbation), dtype=np.float32)

    def save(self, out_dir: Path) -> None:
        """The package writes into a scratch folder, renamed into place when it is complete."""
        final, scratch = out_dir / self.package_dir, out_dir / f"{self.package_dir}.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        self.save_package(scratch)
        (scratch / "seen.txt").write_text("\n".join(self.seen) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        scratch.rename(final)

    def load_state(self, out_dir: Path) -> None:
        folder = out_dir / self.package_dir
        self.seen = (folder / "seen.txt").read_text().split("\n")[:-1]
        self.warned = set()
        self.load_package(folder)

    @abstractmethod
    def train_package(self, adata: ad.AnnData, data: PerturbationData) -> None:
        """Train on ``adata`` (from :func:`training_anndata`)."""

    @abstractmethod
    def predict_package(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        """``controls`` under ``perturbation``, one it saw in training (or the control value)."""

    @abstractmethod
    def save_package(self, folder: Path) -> None:
        """The package's own save, into a new ``folder``."""

    @abstractmethod
    def load_package(self, folder: Path) -> None:
        """Read back what :meth:`save_package` wrote."""
