"""TranSiGen (Tong et al. 2024) following the paper on storm's base: two variational
autoencoders, one for the basal profile x1 (a control) and one for the perturbed profile x2, and
a network that carries x1's latent state, with the molecule embedding, to x2's.

Training sums the reconstructions of x1 and x2 by their own VAEs, the reconstruction of x2 from
the latent state mapped from x1, and the VAEs' KL terms (weight ``beta``); predicting maps the
control's latent mean and decodes with x2's decoder. TranSiGen reads a precomputed molecule
embedding (KPGT): give one with ``storm prepare --molecule-embeddings`` or let storm's RDKit
features and learned dose response stand in; the cell line and time join the molecule at the map.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import load_defaults
from .neural import NeuralModel, autoencoder_sizes, mlp


class _VAE(nn.Module):
    def __init__(self, n: int, hidden: int, latent: int, layers: int, dropout: float):
        super().__init__()
        self.encoder = mlp(n, hidden, 2 * latent, layers, dropout)
        self.decoder = mlp(latent, hidden, n, layers, dropout)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.encoder(x).chunk(2, dim=1)
        return mean, log_var.clamp(-10, 10)

    @staticmethod
    def sample(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        return mean + torch.randn_like(mean) * (0.5 * log_var).exp()

    @staticmethod
    def kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        return -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).sum(dim=1).mean()


class _TranSiGenModule(nn.Module):
    def __init__(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int, config: dict):
        super().__init__()
        hidden, latent, layers, dropout = autoencoder_sizes(config)
        self.basal = _VAE(n_inputs, hidden, latent, layers, dropout)
        self.perturbed = _VAE(n_genes, hidden, latent, layers, dropout)
        self.map = mlp(latent + n_perturbations + n_cell_types, hidden, latent, 1, dropout)
        self.beta = float(config["beta"])

    def _mapped(self, z1: torch.Tensor, pert: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        return self.perturbed.decoder(self.map(torch.cat([z1, pert, cov], dim=1)))

    def forward(self, control: torch.Tensor, pert: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        return self._mapped(self.basal.encode(control)[0], pert, cov)

    def training_loss(self, control, pert, cov, target) -> torch.Tensor:
        mean1, log_var1 = self.basal.encode(control)
        mean2, log_var2 = self.perturbed.encode(target)
        z1 = _VAE.sample(mean1, log_var1)
        mse = nn.functional.mse_loss
        reconstruction = (mse(self.basal.decoder(z1), control)
                          + mse(self.perturbed.decoder(_VAE.sample(mean2, log_var2)), target)
                          + mse(self._mapped(z1, pert, cov), target))
        return reconstruction + self.beta * (_VAE.kl(mean1, log_var1) + _VAE.kl(mean2, log_var2)) / target.shape[1]


class TranSiGen(NeuralModel):
    """TranSiGen (Tong et al. 2024) following the paper: paired VAEs, the basal profile's latent
    state mapped with the molecule to the perturbed profile's."""

    family = "storm (TranSiGen paper)"
    defaults = load_defaults("transigen", base=("training", "neural"))

    def build_module(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int) -> nn.Module:
        return _TranSiGenModule(n_inputs, n_genes, n_perturbations, n_cell_types, self.config)
