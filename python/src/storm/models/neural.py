"""What storm's Lightning models share: a module mapping (control cell, perturbation, cell type)
to expression, trained on perturbed cells paired with controls, checkpointed and resumable."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..data import PerturbationData
from ..io import atomic_path
from .base import PerturbationModel
from .conditions import Conditions, control_pairs
from .lightning_utils import EpochSampler, fit_with_resume


class ConditionalModule(L.LightningModule):
    """``forward(control, pert, cov) -> expression``, trained with MSE and Adam."""

    def __init__(self, lr: float, weight_decay: float):
        super().__init__()
        self.lr, self.weight_decay = lr, weight_decay

    def _loss(self, batch) -> torch.Tensor:
        control, pert, cov, target = batch
        return nn.functional.mse_loss(self(control, pert, cov).float(), target)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch), on_step=False, on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def mlp(n_in: int, hidden: int, n_out: int, n_layers: int, dropout: float) -> nn.Sequential:
    """``n_layers`` hidden layers of Linear, LayerNorm, ReLU and dropout, then a linear output."""
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(hidden if n_layers else n_in, n_out))
    return nn.Sequential(*layers)


def precision_for(config: dict) -> str:
    """``auto``: bf16 mixed precision on a GPU, 32-bit on CPU."""
    if config["precision"] != "auto":
        return str(config["precision"])
    on_gpu = config["accelerator"] in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if on_gpu else "32-true"


class NeuralModel(PerturbationModel):
    """A model trained on (control, perturbation, cell type) -> perturbed cell pairs.

    Subclasses build the Lightning module; this class pairs cells, trains with checkpoints and
    resume, predicts, saves and loads. A model that ignores expression input sets
    :attr:`uses_controls` to False and gets zero-width control tensors.
    """

    uses_controls: ClassVar[bool] = True

    @abstractmethod
    def build_module(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int) -> ConditionalModule:
        """The Lightning module for these sizes, configured from :attr:`config`."""

    def _dataset(self, data: PerturbationData, inputs: np.ndarray, split: str,
                 rng: np.random.Generator) -> TensorDataset | None:
        targets, controls = control_pairs(data, split, rng)
        if targets.size == 0:
            return None
        pert, cov = self.conditions.encode(data.perturbation[targets], data.cell_type[targets])
        control = torch.from_numpy(inputs[controls]) if self.uses_controls else torch.zeros(len(targets), 0)
        return TensorDataset(control, pert, cov, torch.from_numpy(data.X[targets]))

    def _build(self) -> None:
        self.module = self.build_module(self.n_inputs, self.n_genes, len(self.conditions.perturbations),
                                        len(self.conditions.cell_types))

    def fit(self, data: PerturbationData, out_dir: Path) -> None:
        self.conditions = Conditions.from_training(data)
        inputs = self.inputs(data)
        self.n_inputs, self.n_genes = inputs.shape[1] if self.uses_controls else 0, data.X.shape[1]
        torch.manual_seed(self.seed)  # initial weights
        self._build()
        rng = np.random.default_rng(self.seed)
        train_set = self._dataset(data, inputs, "train", rng)
        val_set = self._dataset(data, inputs, "val", rng)
        batch = int(self.config["batch_size"])
        fit_with_resume(
            self.module,
            DataLoader(train_set, batch_size=batch, sampler=EpochSampler(len(train_set), self.seed)),
            DataLoader(val_set, batch_size=batch) if val_set is not None else None,
            out_dir, int(self.config["max_epochs"]), str(self.config["accelerator"]), self.seed,
            ckpt_dir=self.checkpoint_dir, precision=precision_for(self.config),
        )

    @torch.no_grad()
    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        n = controls.shape[0]
        pert, cov = self.conditions.encode(np.full(n, perturbation, dtype=object), np.full(n, cell_type, dtype=object))
        control = torch.from_numpy(np.asarray(controls, dtype=np.float32)) if self.uses_controls else torch.zeros(n, 0)
        self.module.eval()
        device = self.module.device
        return self.module(control.to(device), pert.to(device), cov.to(device)).float().cpu().numpy()

    def save(self, out_dir: Path) -> None:
        state = {"state_dict": self.module.state_dict(), "conditions": self.conditions.to_dict(),
                 "n_inputs": self.n_inputs, "n_genes": self.n_genes}
        with atomic_path(out_dir / "weights.pt") as tmp:
            torch.save(state, tmp)

    def load_state(self, out_dir: Path) -> None:
        state = torch.load(out_dir / "weights.pt", map_location="cpu", weights_only=True)
        self.conditions = Conditions(**state["conditions"])
        self.n_inputs, self.n_genes = state["n_inputs"], state["n_genes"]
        self._build()
        self.module.load_state_dict(state["state_dict"])
