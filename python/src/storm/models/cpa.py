"""CPA (Lotfollahi et al. 2023) through cpa-tools: an autoencoder whose latent space is the sum
of a basal state (made independent of the perturbation by an adversary) and embeddings of the
perturbations, each scaled by a learned dose response, and of the covariates (the cell type).

storm registers the split's training cells with ``CPA.setup_anndata`` (storm's combination
delimiter becomes CPA's ``+``; every dose 1.0), trains with CPA's own plan and
early stopping on the validation cells, and saves with the package's ``save``. A held-out pair
is predicted as CPA's tutorials do: its control cells, relabelled with the pair's perturbation,
go through ``CPA.predict`` (the counterfactual: the basal state of each control plus the
perturbation's embedding, decoded).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ..data import PerturbationData
from ..spec import CELL_TYPE, PERTURBATION
from .config import load_defaults
from .zoo import SPLIT, TRAIN, VALID, PackageModel, cells_anndata, seed_everything

DOSE = "dose"      # obs column CPA reads doses from
COMBO = "+"        # CPA's combination delimiter
SMILES = "smiles"  # obs column of molecules, empty for genetic perturbations
SMILES_SEPARATOR = ".."  # cpa-tools' separator of a combination's molecules
CATEGORY = "CPA_cat"     # the obs column CPA.setup_anndata writes (cell type x perturbation)


class Cpa(PackageModel):
    """CPA (Lotfollahi et al. 2023, cpa-tools): perturbation and dose embeddings added to an
    adversarially disentangled basal state."""

    defaults = load_defaults("cpa")
    open_sections = frozenset({"module_params", "plan_kwargs"})
    family = "cpa-tools"
    environment = "cpa"
    requires = ("cpa", "scvi")
    package_dir = "cpa"

    def _setup(self, adata: ad.AnnData) -> None:
        import cpa

        cpa.CPA.setup_anndata(adata, perturbation_key=PERTURBATION, control_group=self.spec.control_value,
                              dosage_key=DOSE, smiles_key=SMILES, categorical_covariate_keys=[CELL_TYPE],
                              is_count_data=False, max_comb_len=max(2, self.max_combination))

    def _cpa_cells(self, adata: ad.AnnData) -> ad.AnnData:
        """``adata`` as CPA reads it: '+' between combined perturbations, and a dose of 1.0 for
        each: a chemical screen's condition (compound at a dose and time) is one perturbation to
        cpa-tools here; ``chemcpa`` is storm's dose- and molecule-aware version."""
        perturbations = [p.replace(self.spec.combo_delimiter, COMBO) for p in adata.obs[PERTURBATION].astype(str)]
        adata.obs[PERTURBATION] = pd.Categorical(perturbations)
        parts = [len(p.split(COMBO)) for p in perturbations]
        adata.obs[DOSE] = pd.Categorical([COMBO.join(["1.0"] * n) for n in parts])
        # cpa-tools 0.8.1's setup reads a molecule per perturbation whether or not it uses them
        adata.obs[SMILES] = [SMILES_SEPARATOR.join([""] * n) for n in parts]
        return adata

    def train_package(self, adata: ad.AnnData, data: PerturbationData) -> None:
        import cpa

        c = self.config
        self.max_combination = max(len(self.spec.singles(p)) for p in self.seen)
        adata = self._cpa_cells(adata)
        seed_everything(self.seed)
        self._setup(adata)
        has_valid = bool((adata.obs[SPLIT] == VALID).any())
        self.model = cpa.CPA(adata, split_key=SPLIT if has_valid else None, train_split=TRAIN,
                             valid_split=VALID, test_split="test", **{**c["module_params"], "seed": self.seed})
        self.model.train(max_epochs=int(c["max_epochs"]), use_gpu=_use_gpu(str(c["accelerator"])),
                         batch_size=int(c["batch_size"]), plan_kwargs=dict(c["plan_kwargs"]),
                         early_stopping_patience=int(c["early_stopping_patience"]),
                         check_val_every_n_epoch=int(c["check_val_every_n_epoch"]), enable_progress_bar=False,
                         save_path=False, default_root_dir=str(self.checkpoints))  # storm saves; nothing in the cwd

    def predict_package(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        n = len(controls)
        cells = self._cpa_cells(cells_anndata(controls, np.full(n, perturbation), np.full(n, cell_type),
                                              self.model.adata.var_names.to_numpy()))
        self._setup(cells)
        # CPA's cell type × perturbation category feeds only a training metric (R² per category); a
        # held-out pair's is new by definition, so the predicted cells carry one CPA knows
        cells.obs[CATEGORY] = self.model.adata.obs[CATEGORY].iloc[0]
        self.model.predict(cells, batch_size=max(n, 1), n_samples=int(self.config["n_samples"]))
        return np.asarray(cells.obsm["CPA_pred"])

    def save_package(self, folder: Path) -> None:
        self.model.save(str(folder), overwrite=True, save_anndata=True)
        (folder / "max_combination.txt").write_text(f"{self.max_combination}\n")

    def load_package(self, folder: Path) -> None:
        import cpa

        self.max_combination = int((folder / "max_combination.txt").read_text())
        self.model = cpa.CPA.load(str(folder), use_gpu=False)


def _use_gpu(accelerator: str) -> bool | None:
    """CPA's (scvi-tools 0.20's) ``use_gpu`` for storm's accelerator: None picks a GPU when there is one."""
    return {"cpu": False, "gpu": True, "cuda": True}.get(accelerator)
