"""storm's conditional flow matching, after CellFlow (Klein et al. 2025) and PRiMeFlow.

A velocity field v(x, t | perturbation, cell type) is trained so that integrating it from t = 0
to 1 carries a control cell to a cell under the perturbation: each training step draws a time t,
a point x_t on the straight path between a control x0 and a perturbed cell x1 (plus a little
noise), and regresses v(x_t, t) on x1 - x0 (Lipman et al. 2023; Tong et al. 2024). Controls and
targets are matched within each batch and condition by optimal transport (OT-CFM), so paths
cross less. Prediction integrates the field from each held-out control with the midpoint rule.

Departures from CellFlow: the flow runs in the split's genes (log-normalised expression), not in
PCA; conditions are storm's own encodings (one-hot genetic perturbations summed for a
combination, or a molecule's features scaled by chemCPA's dose response), embedded by an MLP,
not CellFlow's set-attention aggregation; the coupling is exact OT within each batch's condition
groups rather than a Sinkhorn solve; no classifier-free guidance.
"""

from __future__ import annotations

import math

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from ..errors import StormError
from .config import load_defaults
from .neural import NeuralModel, mlp


def ot_pairs(source: torch.Tensor, target: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """An order of ``target`` rows matching ``source`` rows by exact optimal transport (squared
    Euclidean cost) within each group; rows of a group of one keep their place."""
    order = torch.arange(len(target))
    for group in torch.unique(groups):
        rows = torch.nonzero(groups == group).flatten()
        if len(rows) < 2:
            continue
        cost = torch.cdist(source[rows].float(), target[rows].float()).pow(2).detach().cpu().numpy()
        _, matched = linear_sum_assignment(cost)
        order[rows] = rows[torch.from_numpy(matched)]
    return order


class _FlowField(nn.Module):
    def __init__(self, n_genes: int, n_perturbations: int, n_cell_types: int, config: dict):
        super().__init__()
        hidden, layers, dropout = int(config["hidden_dim"]), int(config["n_layers"]), float(config["dropout"])
        dim, self.n_time = int(config["condition_dim"]), int(config["time_features"])
        self.pert_embedding = mlp(n_perturbations, hidden, dim, 1, 0.0)
        self.cov_embedding = nn.Linear(n_cell_types, dim, bias=False)
        self.field = mlp(n_genes + 2 * dim + self.n_time, hidden, n_genes, layers, dropout)
        self.sigma, self.coupling = float(config["sigma"]), str(config["coupling"])
        self.ode_steps = int(config["ode_steps"])

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        frequencies = torch.exp(torch.arange(self.n_time // 2, device=t.device) * (-math.log(1000.0) / self.n_time))
        angles = t[:, None] * frequencies[None, :] * 2 * math.pi
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.field(torch.cat([x, self.time_features(t), condition], dim=1))

    def condition(self, pert: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.pert_embedding(pert), self.cov_embedding(cov)], dim=1)

    def forward(self, control: torch.Tensor, pert: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """The control cells carried along the flow to t = 1 (midpoint rule)."""
        condition = self.condition(pert, cov)
        x, dt = control, 1.0 / self.ode_steps
        for step in range(self.ode_steps):
            t = torch.full((len(x),), step * dt, device=x.device)
            half = x + 0.5 * dt * self.velocity(x, t, condition)
            x = x + dt * self.velocity(half, t + 0.5 * dt, condition)
        return x

    def training_loss(self, control, pert, cov, target) -> torch.Tensor:
        if self.coupling == "ot":
            groups = torch.unique(torch.cat([pert, cov], dim=1), dim=0, return_inverse=True)[1]
            target = target[ot_pairs(control, target, groups)]
        t = torch.rand(len(control), device=control.device)
        path = (1 - t[:, None]) * control + t[:, None] * target
        path = path + self.sigma * torch.randn_like(path)
        velocity = self.velocity(path, t, self.condition(pert, cov))
        return nn.functional.mse_loss(velocity.float(), target - control)


class FlowMatching(NeuralModel):
    """Conditional flow matching (CellFlow, PRiMeFlow): a velocity field, conditioned on the
    perturbation and the cell type, carries each control cell to its perturbed state."""

    defaults = load_defaults("flow_matching", base=("training", "neural"))

    @classmethod
    def resolve_config(cls, overrides: dict) -> dict:
        config = super().resolve_config(overrides)
        if config["coupling"] not in ("ot", "independent"):
            raise StormError(f"coupling must be ot or independent, got '{config['coupling']}'")
        if int(config["ode_steps"]) < 1:
            raise StormError(f"ode_steps must be at least 1, got {config['ode_steps']}")
        return config

    def build_module(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int) -> nn.Module:
        return _FlowField(n_genes, n_perturbations, n_cell_types, self.config)
