"""The network of storm's State Transition model (:mod:`storm.models.st`).

A set of control cells of one cell type is encoded cell by cell, the perturbation's and cell
type's embeddings are added to every cell, a bidirectional transformer lets the cells of the set
see each other, and an MLP maps each cell back to the input space (a change from the control with
``predict_residual``). A gene decoder maps an embedding input to expression.

Residual connections are plain pre-norm ones, or manifold-constrained hyper-connections (mHC,
Xie et al. 2025): ``streams`` copies of the residual stream; each branch reads a learned mix of
them (``H_pre``) and writes into each (``H_post``), and the streams are mixed by ``H_res``, kept
doubly stochastic by Sinkhorn-Knopp so the mixing preserves the stream's mean and cannot blow the
signal up over depth. storm keeps mHC's static matrices and leaves out its input-dependent part.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .neural import mlp


def sinkhorn(logits: torch.Tensor, iters: int) -> torch.Tensor:
    """The doubly stochastic matrix Sinkhorn-Knopp reaches from ``exp(logits)``, normalising rows
    and columns in log space ``iters`` times."""
    log_m = logits
    for _ in range(iters):
        log_m = log_m - torch.logsumexp(log_m, dim=1, keepdim=True)
        log_m = log_m - torch.logsumexp(log_m, dim=0, keepdim=True)
    return log_m.exp()


class Attention(nn.Module):
    """Multi-head self-attention over the cells of a set, no mask (every cell sees every cell).
    Its projections are plain ``nn.Linear`` named ``q``, ``k``, ``v``, ``o``: LoRA's targets."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, self.heads, d // self.heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)),
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.o(y.transpose(1, 2).reshape(b, s, d))


class FeedForward(nn.Module):
    def __init__(self, dim: int, intermediate: int, dropout: float):
        super().__init__()
        self.up, self.down, self.drop = nn.Linear(dim, intermediate), nn.Linear(intermediate, dim), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.drop(F.gelu(self.up(x))))


class PlainResidual(nn.Module):
    """``x + branch(norm(x))``."""

    def __init__(self, branch: nn.Module, dim: int):
        super().__init__()
        self.norm, self.branch = nn.LayerNorm(dim), branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(self.norm(x))


#: at initialisation a branch reads its own stream with weight 1 - (streams - 1) * OTHER_STREAMS
OTHER_STREAMS = 0.05


class HyperResidual(nn.Module):
    """mHC over ``streams`` residual streams (batch, set, streams, dim):
    ``X' = H_res X + H_post^T branch(norm(H_pre X))``. It starts as a plain residual connection
    (the streams are copies, ``H_pre`` sums to one, ``H_post`` writes the branch into each,
    ``H_res`` is near the identity), but branch ``index`` reads mostly stream ``index mod
    streams``, as Hyper-Connections initialise it: with every branch reading every stream alike,
    the streams would get the same gradients and stay copies for ever."""

    def __init__(self, branch: nn.Module, dim: int, streams: int, sinkhorn_iters: int, index: int = 0):
        super().__init__()
        self.norm, self.branch, self.iters = nn.LayerNorm(dim), branch, sinkhorn_iters
        weights = torch.full((streams,), OTHER_STREAMS)
        weights[index % streams] = 1 - (streams - 1) * OTHER_STREAMS
        self.pre = nn.Parameter(torch.logit(weights))  # sigmoid(pre) = weights
        self.post = nn.Parameter(torch.zeros(streams))  # 2 sigmoid(0) = 1
        self.res = nn.Parameter(4.0 * torch.eye(streams))

    def mixing(self) -> torch.Tensor:
        """``H_res``: doubly stochastic."""
        return sinkhorn(self.res, self.iters)

    def forward(self, streams: torch.Tensor) -> torch.Tensor:
        y = self.branch(self.norm(torch.einsum("bsnd,n->bsd", streams, torch.sigmoid(self.pre))))
        mixed = torch.einsum("mn,bsnd->bsmd", self.mixing(), streams)
        return mixed + (2 * torch.sigmoid(self.post))[:, None] * y[:, :, None, :]


class Backbone(nn.Module):
    """Transformer layers (attention, then MLP), each with its own residual connection."""

    def __init__(self, dim: int, layers: int, heads: int, intermediate: int, attention_dropout: float = 0.0,
                 hidden_dropout: float = 0.0, streams: int = 0, sinkhorn_iters: int = 20):
        super().__init__()
        self.streams = streams

        def residual(branch: nn.Module, index: int) -> nn.Module:
            if streams:
                return HyperResidual(branch, dim, streams, sinkhorn_iters, index)
            return PlainResidual(branch, dim)

        branches = [branch for _ in range(layers) for branch in
                    (Attention(dim, heads, attention_dropout), FeedForward(dim, intermediate, hidden_dropout))]
        self.blocks = nn.ModuleList(residual(branch, index) for index, branch in enumerate(branches))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.streams:
            x = x.unsqueeze(2).expand(-1, -1, self.streams, -1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x.mean(dim=2) if self.streams else x)


class STNet(nn.Module):
    """(control set, perturbation, covariates) -> predicted set in the input space; :meth:`genes`
    decodes it to expression when the input is an embedding."""

    def __init__(self, n_inputs: int, n_genes: int, n_perturbations: int, n_covariates: int, config: dict,
                 decode_genes: bool):
        super().__init__()
        hidden, dropout = int(config["hidden_dim"]), float(config["dropout"])
        backbone, mhc = config["transformer_backbone_kwargs"], config["mhc"]
        self.basal_encoder = mlp(n_inputs, hidden, hidden, int(config["n_encoder_layers"]), dropout)
        self.pert_encoder = mlp(n_perturbations, hidden, hidden, int(config["n_encoder_layers"]), dropout)
        self.cov_encoder = nn.Linear(n_covariates, hidden, bias=False)
        self.backbone = Backbone(hidden, int(backbone["num_hidden_layers"]), int(backbone["num_attention_heads"]),
                                 int(backbone["intermediate_size"]), float(backbone["attention_dropout"]),
                                 float(backbone["hidden_dropout"]), int(mhc["streams"]) if mhc["enable"] else 0,
                                 int(mhc["sinkhorn_iters"]))
        self.project_out = mlp(hidden, hidden, n_inputs, int(config["n_decoder_layers"]), dropout)
        self.residual = bool(config["predict_residual"])
        self.gene_decoder = mlp(n_inputs, 2 * hidden, n_genes, 2, dropout) if decode_genes else None

    def forward(self, control: torch.Tensor, pert: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        condition = self.pert_encoder(pert) + self.cov_encoder(cov)
        out = self.project_out(self.backbone(self.basal_encoder(control) + condition[:, None, :]))
        return control + out if self.residual else out

    def genes(self, cells: torch.Tensor) -> torch.Tensor:
        return cells if self.gene_decoder is None else self.gene_decoder(cells)
