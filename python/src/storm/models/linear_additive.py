"""PerturBench's LinearAdditive: a matched control cell plus a learned linear effect per
perturbation (and optionally per cell type)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..data import PerturbationData
from ..io import atomic_path
from .base import PerturbationModel
from .lightning_utils import EpochSampler, fit_with_resume


class _LinearAdditiveModule(L.LightningModule):
    def __init__(self, n_genes: int, n_perturbations: int, n_cell_types: int,
                 inject_covariates: bool, lr: float, weight_decay: float):
        super().__init__()
        self.save_hyperparameters()
        self.fc_pert = nn.Linear(n_perturbations, n_genes)
        self.fc_cov = nn.Linear(n_cell_types, n_genes, bias=False) if inject_covariates else None

    def forward(self, control: torch.Tensor, pert: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        out = control + self.fc_pert(pert)
        if self.fc_cov is not None:
            out = out + self.fc_cov(cov)
        return out

    def _loss(self, batch) -> torch.Tensor:
        control, pert, cov, target = batch
        return nn.functional.mse_loss(self(control, pert, cov), target)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch), on_step=False, on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class LinearAdditive(PerturbationModel):
    """Predicts ``control + W_p·p (+ W_c·c)`` with ``p`` the multi-hot of the single
    perturbations (``A+B`` sets both) and ``c`` the one-hot cell type, trained on perturbed cells
    paired with a random control of the same cell type and split."""

    defaults = {
        "max_epochs": 30,
        "batch_size": 128,
        "lr": 5e-3,
        "weight_decay": 0.0,
        "inject_covariates": False,
        "accelerator": "auto",
    }

    def _encode(self, perturbations: np.ndarray, cell_types: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        pert = np.zeros((len(perturbations), len(self.perturbations)), dtype=np.float32)
        index = {p: i for i, p in enumerate(self.perturbations)}
        for row, name in enumerate(perturbations):
            for single in name.split(self.spec.combo_delimiter):
                if single in index:
                    pert[row, index[single]] = 1.0
        ct_index = {c: i for i, c in enumerate(self.cell_types)}
        cov = np.zeros((len(cell_types), len(self.cell_types)), dtype=np.float32)
        for row, ct in enumerate(cell_types):
            if ct in ct_index:
                cov[row, ct_index[ct]] = 1.0
        return torch.from_numpy(pert), torch.from_numpy(cov)

    def _pairs(self, data: PerturbationData, split: str, rng: np.random.Generator) -> TensorDataset | None:
        """Perturbed cells of a split, each with a random control of its cell type and split."""
        targets = np.flatnonzero(data.mask(split) & ~data.is_control)
        controls = np.empty_like(targets)
        keep = np.ones(len(targets), dtype=bool)
        for ct in np.unique(data.cell_type[targets]):
            rows = data.cell_type[targets] == ct
            pool = np.flatnonzero(data.mask(split, cell_type=ct) & data.is_control)
            if pool.size == 0:
                keep[rows] = False
                continue
            controls[rows] = rng.choice(pool, size=rows.sum())
        targets, controls = targets[keep], controls[keep]
        if targets.size == 0:
            return None
        pert, cov = self._encode(data.perturbation[targets], data.cell_type[targets])
        return TensorDataset(torch.from_numpy(data.X[controls]), pert, cov, torch.from_numpy(data.X[targets]))

    def _build(self, n_genes: int) -> None:
        self.module = _LinearAdditiveModule(
            n_genes, len(self.perturbations), len(self.cell_types),
            bool(self.config["inject_covariates"]), float(self.config["lr"]),
            float(self.config["weight_decay"]),
        )

    def fit(self, data: PerturbationData, out_dir: Path) -> None:
        train = data.mask("train") & ~data.is_control
        self.perturbations = sorted({s for p in np.unique(data.perturbation[train])
                                     for s in data.single_perturbations(p)})
        self.cell_types = sorted(np.unique(data.cell_type))
        torch.manual_seed(self.seed)  # initial weights
        self._build(data.X.shape[1])
        rng = np.random.default_rng(self.seed)
        train_set = self._pairs(data, "train", rng)
        val_set = self._pairs(data, "val", rng)
        batch = int(self.config["batch_size"])
        fit_with_resume(
            self.module,
            DataLoader(train_set, batch_size=batch, sampler=EpochSampler(len(train_set), self.seed)),
            DataLoader(val_set, batch_size=batch) if val_set is not None else None,
            out_dir, int(self.config["max_epochs"]), str(self.config["accelerator"]), self.seed,
            ckpt_dir=self.checkpoint_dir,
        )

    @torch.no_grad()
    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        n = controls.shape[0]
        pert, cov = self._encode(np.full(n, perturbation, dtype=object), np.full(n, cell_type, dtype=object))
        self.module.eval()
        device = self.module.device
        out = self.module(torch.from_numpy(controls).to(device), pert.to(device), cov.to(device))
        return out.cpu().numpy()

    def save(self, out_dir: Path) -> None:
        state = {"state_dict": self.module.state_dict(), "perturbations": self.perturbations,
                 "cell_types": self.cell_types, "n_genes": self.module.fc_pert.out_features}
        with atomic_path(out_dir / "weights.pt") as tmp:
            torch.save(state, tmp)

    def load_state(self, out_dir: Path) -> None:
        state = torch.load(out_dir / "weights.pt", map_location="cpu", weights_only=True)
        self.perturbations, self.cell_types = state["perturbations"], state["cell_types"]
        self._build(state["n_genes"])
        self.module.load_state_dict(state["state_dict"])
