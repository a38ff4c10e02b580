"""scGen (Lotfollahi et al. 2019) as pertpy maintains it: a VAE over expression in which a
perturbation is a vector in latent space, the mean latent of its cells minus the mean latent of
the controls, balanced over cell types (the paper's latent arithmetic).

storm trains ``pertpy.tools.Scgen`` on the split's training cells (perturbation as scGen's
condition, cell type as its label; its own random 10% stops training early), then asks scGen's
``predict`` for each perturbation's latent vector once, seeded: pertpy draws its balanced cells
with an unseeded generator, so storm seeds it. A held-out pair is its controls' latent codes plus
that vector, decoded by scGen's generative network, as ``predict`` does with ``adata_to_predict``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import anndata as ad
import numpy as np

from ..data import PerturbationData
from ..spec import CELL_TYPE, PERTURBATION
from .base import load_table, save_table
from .config import load_defaults
from .zoo import SPLIT, TRAIN, PackageModel, cells_anndata, seed_everything

DELTAS = "deltas.npz"


@contextlib.contextmanager
def seeded_default_rng(seed: int):
    """``np.random.default_rng()`` without a seed returns a generator seeded with ``seed``."""
    unseeded = np.random.default_rng
    np.random.default_rng = lambda *args: unseeded(*(args or (seed,)))
    try:
        yield
    finally:
        np.random.default_rng = unseeded


class ScGen(PackageModel):
    """scGen (Lotfollahi et al. 2019, pertpy's implementation): latent vector arithmetic in a VAE."""

    defaults = load_defaults("scgen")
    family = "pertpy"
    environment = "scgen"
    requires = ("pertpy", "scvi", "jax")
    package_dir = "scgen"

    def train_package(self, adata: ad.AnnData, data: PerturbationData) -> None:
        import scvi
        from pertpy.tools import Scgen

        c = self.config
        seed_everything(self.seed)
        scvi.settings.seed = self.seed
        adata = adata[adata.obs[SPLIT] == TRAIN].copy()
        Scgen.setup_anndata(adata, batch_key=PERTURBATION, labels_key=CELL_TYPE)
        self.model = Scgen(adata, n_hidden=int(c["n_hidden"]), n_latent=int(c["n_latent"]),
                           n_layers=int(c["n_layers"]), dropout_rate=float(c["dropout_rate"]))
        self.model.train(max_epochs=int(c["max_epochs"]), batch_size=int(c["batch_size"]),
                         accelerator=str(c["accelerator"]), early_stopping=True,
                         early_stopping_patience=int(c["early_stopping_patience"]),
                         plan_kwargs={"lr": float(c["lr"])}, enable_progress_bar=False,
                         default_root_dir=str(self.checkpoints))
        control = self.spec.control_value
        probe = adata[:1]
        self.deltas = {}
        with seeded_default_rng(self.seed):
            for perturbation in self.seen:
                if perturbation != control:
                    _, delta = self.model.predict(ctrl_key=control, stim_key=perturbation, adata_to_predict=probe)
                    self.deltas[perturbation] = np.asarray(delta)

    def predict_package(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        n = len(controls)
        # scGen's encoder reads expression only; its registry still wants a label it knows
        labels = self.model.adata.obs[CELL_TYPE].cat.categories
        label = cell_type if cell_type in labels else labels[0]
        cells = cells_anndata(controls, np.full(n, self.spec.control_value), np.full(n, label),
                              self.model.adata.var_names.to_numpy())
        latent = self.model.get_latent_representation(cells)
        if perturbation in self.deltas:
            latent = latent + self.deltas[perturbation]
        return np.asarray(self.model.module.as_bound().generative(latent)["px"])

    def save_package(self, folder: Path) -> None:
        self.model.save(str(folder), overwrite=True, save_anndata=True)
        save_table(folder / DELTAS, list(self.deltas), np.stack(list(self.deltas.values())))

    def load_package(self, folder: Path) -> None:
        from pertpy.tools import Scgen

        self.model = Scgen.load(str(folder), accelerator="cpu")
        self.deltas = load_table(folder / DELTAS)
