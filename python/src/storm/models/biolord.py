"""biolord (Piran et al. 2024) through the biolord package: a decoder from disentangled
attribute embeddings (here the cell type and the perturbation) to expression.

storm registers the training cells with ``Biolord.setup_anndata`` (cell type and perturbation as
categorical attributes), trains with biolord's own training plan and scvi-tools' early stopping
on the validation cells, and saves with the package's ``save``. A held-out pair is predicted by
giving the held-out controls the pair's attributes and running biolord's decoder
(``module.get_expression``), the step ``compute_prediction_adata`` runs for every category at once.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np

from ..data import PerturbationData
from ..errors import StormError
from ..spec import CELL_TYPE, PERTURBATION
from .config import load_defaults
from .zoo import SPLIT, TRAIN, VALID, PackageModel, cells_anndata, seed_everything


class Biolord(PackageModel):
    """biolord (Piran et al. 2024, the biolord package): expression decoded from learned
    embeddings of the cell type and the perturbation."""

    defaults = load_defaults("biolord")
    open_sections = frozenset({"module_params", "plan_kwargs"})
    family = "biolord"
    environment = "biolord"
    requires = ("biolord", "scvi")
    package_dir = "biolord"

    @classmethod
    def resolve_config(cls, overrides: dict) -> dict:
        config = super().resolve_config(overrides)
        if config["module_params"].get("unknown_attributes", True):
            raise StormError("biolord: module_params.unknown_attributes needs a code learnt for each predicted "
                             "cell, and held-out controls have none; leave it false")
        return config

    def train_package(self, adata: ad.AnnData, data: PerturbationData) -> None:
        import biolord
        import scvi

        c = self.config
        seed_everything(self.seed)
        scvi.settings.seed = self.seed
        biolord.Biolord.setup_anndata(adata, categorical_attributes_keys=[CELL_TYPE, PERTURBATION])
        has_valid = bool((adata.obs[SPLIT] == VALID).any())
        self.model = biolord.Biolord(
            adata, n_latent=int(c["n_latent"]), module_params={**c["module_params"], "seed": self.seed},
            split_key=SPLIT if has_valid else None, train_split=TRAIN, valid_split=VALID, test_split="test")
        self.model.train(
            max_epochs=int(c["max_epochs"]), batch_size=int(c["batch_size"]), accelerator=str(c["accelerator"]),
            plan_kwargs=dict(c["plan_kwargs"]), early_stopping=True,
            early_stopping_patience=int(c["early_stopping_patience"]), enable_checkpointing=False,
            check_val_every_n_epoch=1, enable_progress_bar=False, default_root_dir=str(self.checkpoints))

    def predict_package(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        import torch

        n = len(controls)
        cells = cells_anndata(controls, np.full(n, perturbation), np.full(n, cell_type),
                              self.model.adata.var_names.to_numpy())
        # biolord indexes each cell's own code by obs['_indices'] (its setup_anndata's column); held-out
        # cells have none, and with unknown_attributes off the code is multiplied by zero
        cells.obs["_indices"] = 0
        with torch.no_grad():
            expression, _ = self.model.module.get_expression(self.model.get_dataset(cells))
        return expression.cpu().numpy()

    def save_package(self, folder: Path) -> None:
        self.model.save(str(folder), overwrite=True, save_anndata=True)

    def load_package(self, folder: Path) -> None:
        import biolord

        self.model = biolord.Biolord.load(str(folder), accelerator="cpu")
        self.model.module.eval()
