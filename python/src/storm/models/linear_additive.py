"""PerturBench's LinearAdditive: a matched control cell plus a learned linear effect per
perturbation (and optionally per cell type)."""

from __future__ import annotations

import torch
from torch import nn

from .config import load_defaults
from .neural import NeuralModel


class _LinearAdditiveModule(nn.Module):
    def __init__(self, n_genes: int, n_perturbations: int, n_cell_types: int, inject_covariates: bool):
        super().__init__()
        self.fc_pert = nn.Linear(n_perturbations, n_genes)
        self.fc_cov = nn.Linear(n_cell_types, n_genes, bias=False) if inject_covariates else None

    def forward(self, control: torch.Tensor, pert: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        out = control + self.fc_pert(pert)
        if self.fc_cov is not None:
            out = out + self.fc_cov(cov)
        return out


class LinearAdditive(NeuralModel):
    """Predicts ``control + W_p·p (+ W_c·c)`` with ``p`` the multi-hot of the single
    perturbations (``A+B`` sets both) and ``c`` the one-hot cell type, trained on perturbed cells
    paired with a random control of the same cell type and split."""

    defaults = load_defaults("linear_additive", base=("training", "neural"))

    def build_module(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int) -> nn.Module:
        return _LinearAdditiveModule(n_genes, n_perturbations, n_cell_types, bool(self.config["inject_covariates"]))
