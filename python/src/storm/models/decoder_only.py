"""PerturBench's DecoderOnly: expression from the perturbation and cell type alone."""

from __future__ import annotations

import torch
from torch import nn

from .config import load_defaults
from .neural import NeuralModel, mlp


class _DecoderOnlyModule(nn.Module):
    def __init__(self, n_genes: int, n_perturbations: int, n_cell_types: int, config: dict):
        super().__init__()
        self.decoder = mlp(n_perturbations + n_cell_types, int(config["hidden_dim"]), n_genes,
                           int(config["n_layers"]), float(config["dropout"]))
        self.softplus = bool(config["softplus_output"])

    def forward(self, control: torch.Tensor, pert: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        out = self.decoder(torch.cat([pert, cov], dim=1))
        return nn.functional.softplus(out) if self.softplus else out


class DecoderOnly(NeuralModel):
    """Expression from the perturbation and cell type alone, never the control cell: every cell
    of a pair gets the same prediction, the mode-collapse floor of distribution metrics."""

    defaults = load_defaults("decoder_only", base=("training", "neural"))
    uses_controls = False

    def build_module(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int) -> nn.Module:
        return _DecoderOnlyModule(n_genes, n_perturbations, n_cell_types, self.config)
