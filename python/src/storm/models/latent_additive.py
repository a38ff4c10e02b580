"""PerturBench's LatentAdditive: an MLP autoencoder that adds perturbations in its latent space."""

from __future__ import annotations

import torch
from torch import nn

from .config import load_defaults
from .neural import NeuralModel, autoencoder_sizes, mlp


class _LatentAdditiveModule(nn.Module):
    def __init__(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int, config: dict):
        super().__init__()
        hidden, latent, layers, dropout = autoencoder_sizes(config)
        self.encoder = mlp(n_inputs, hidden, latent, layers, dropout)
        self.pert_embedding = nn.Linear(n_perturbations, latent, bias=False)
        self.cov_embedding = nn.Linear(n_cell_types, latent, bias=False) if config["inject_covariates"] else None
        self.decoder = mlp(latent, hidden, n_genes, layers, dropout)
        self.softplus = bool(config["softplus_output"])

    def forward(self, control: torch.Tensor, pert: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        latent = self.encoder(control) + self.pert_embedding(pert)
        if self.cov_embedding is not None:
            latent = latent + self.cov_embedding(cov)
        out = self.decoder(latent)
        return nn.functional.softplus(out) if self.softplus else out


class LatentAdditive(NeuralModel):
    """Encodes the control cell (expression, or an obsm embedding with ``embed_key``), adds a
    learned embedding of each single perturbation in latent space and decodes to expression."""

    defaults = load_defaults("latent_additive", base=("training", "neural"))

    def build_module(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int) -> nn.Module:
        return _LatentAdditiveModule(n_inputs, n_genes, n_perturbations, n_cell_types, self.config)
