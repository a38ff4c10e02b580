"""chemCPA (Hetzel et al. 2022) following the paper on storm's base: CPA's compositional
autoencoder with the drug seen as its molecule.

A cell is encoded to a basal state stripped of its condition by an adversary; the decoder reads
the basal state plus the condition's embeddings (the molecule's, scaled by chemCPA's learned
dose response, given by storm's molecule encoder; then the cell line's and time's) and gives a
Gaussian mean and variance per gene. Training autoencodes the perturbed cells and the controls
(whose drug embedding is zero), with the Gaussian likelihood; predicting encodes a control and
decodes it with the drug added. On data without molecule features the drug is a one-hot: CPA.

Where storm departs from the paper: the adversary regresses the condition inputs from the
basal state through a gradient-reversal layer (Ganin & Lempitsky 2015), one optimiser instead
of alternating steps, so chemCPA trains, checkpoints and resumes as storm's other networks do;
there is no pretraining on LINCS before the single-cell data.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import load_defaults
from .neural import NeuralModel, autoencoder_sizes, mlp


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient flows back multiplied by ``-weight``."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.weight * grad, None


class _ChemCPAModule(nn.Module):
    def __init__(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int, config: dict):
        super().__init__()
        hidden, latent, layers, dropout = autoencoder_sizes(config)
        self.encoder = mlp(n_inputs, hidden, latent, layers, dropout)
        self.drug = nn.Linear(n_perturbations, latent, bias=False)
        self.covariates = nn.Linear(n_cell_types, latent, bias=False)
        self.decoder = mlp(latent, hidden, 2 * n_genes, layers, dropout)  # mean and log variance
        adversary = config["adversary"]
        self.adversary = mlp(latent, int(adversary["hidden_dim"]), n_perturbations + n_cell_types,
                             int(adversary["n_layers"]), 0.0)
        self.adversary_weight = float(adversary["weight"])

    def _decode(self, basal: torch.Tensor, pert: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.decoder(basal + self.drug(pert) + self.covariates(cov)).chunk(2, dim=1)
        return nn.functional.softplus(mean), log_var.clamp(-10, 10)

    def forward(self, control: torch.Tensor, pert: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        return self._decode(self.encoder(control), pert, cov)[0]

    def training_loss(self, control, pert, cov, target) -> torch.Tensor:
        cells = torch.cat([target, control])
        perts = torch.cat([pert, torch.zeros_like(pert)])
        covs = torch.cat([cov, cov])
        basal = self.encoder(cells)
        mean, log_var = self._decode(basal, perts, covs)
        likelihood = nn.functional.gaussian_nll_loss(mean, cells, log_var.exp())
        guess = self.adversary(_ReverseGradient.apply(basal, self.adversary_weight))
        adversary = nn.functional.mse_loss(guess, torch.cat([perts, covs], dim=1).detach())
        return likelihood + adversary


class ChemCPA(NeuralModel):
    """chemCPA (Hetzel et al. 2022) following the paper: an autoencoder whose basal state an
    adversary strips of the condition, the molecule (with its dose response) added in latent space."""

    family = "storm (chemCPA paper)"
    defaults = load_defaults("chemcpa", base=("training", "neural"))

    def build_module(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int) -> nn.Module:
        return _ChemCPAModule(n_inputs, n_genes, n_perturbations, n_cell_types, self.config)
