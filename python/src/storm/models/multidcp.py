"""MultiDCP (Wu et al. 2022) following the paper on storm's base: drug structure, cell line,
dose and time in, the expression change out, gene by gene.

The cell line is read from its basal expression (here the paired control) by an encoder, the
drug from its structure (storm's molecule features with chemCPA's dose response, where MultiDCP
ran a graph network over atoms), and cell line and time also as covariates; together they form a
context. Each gene has a learned embedding, and one small network reads (gene embedding, context)
to give that gene's change, added to the control. MultiDCP's attention of genes over a drug's
atoms has no counterpart here, as storm's molecule features describe the whole molecule.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import load_defaults
from .neural import NeuralModel, mlp


class _MultiDCPModule(nn.Module):
    def __init__(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int, config: dict):
        super().__init__()
        hidden, context, genes, dropout = (int(config["hidden_dim"]), int(config["context_dim"]),
                                           int(config["gene_dim"]), float(config["dropout"]))
        self.cell = mlp(n_inputs, hidden, context, 1, dropout)
        self.drug = nn.Linear(n_perturbations, context)
        self.context = mlp(2 * context + n_cell_types, hidden, context, 1, dropout)
        self.genes = nn.Parameter(torch.randn(n_genes, genes) * 0.1)
        self.head = mlp(genes + context, int(config["gene_hidden"]), 1, 1, 0.0)

    def forward(self, control: torch.Tensor, pert: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        context = self.context(torch.cat([self.cell(control), self.drug(pert), cov], dim=1))
        n, n_genes = context.shape[0], self.genes.shape[0]
        per_gene = torch.cat([self.genes.expand(n, -1, -1), context[:, None, :].expand(-1, n_genes, -1)], dim=2)
        return control + self.head(per_gene).squeeze(-1)


class MultiDCP(NeuralModel):
    """MultiDCP (Wu et al. 2022) following the paper: a context of drug, dose, cell line and time
    read gene by gene into the expression change."""

    family = "storm (MultiDCP paper)"
    defaults = load_defaults("multidcp", base=("training", "neural"))

    def build_module(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int) -> nn.Module:
        return _MultiDCPModule(n_inputs, n_genes, n_perturbations, n_cell_types, self.config)
