"""How the neural models see a condition: a multi-hot of single perturbations (``A+B`` sets
both) and a one-hot cell type, and how training pairs a perturbed cell with a control."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..data import PerturbationData


@dataclass
class Conditions:
    perturbations: list[str]  # the single perturbations seen in training, in column order
    cell_types: list[str]
    combo_delimiter: str

    @classmethod
    def from_training(cls, data: PerturbationData) -> "Conditions":
        train = data.mask("train") & ~data.is_control
        singles = {s for p in np.unique(data.perturbation[train]) for s in data.single_perturbations(p)}
        return cls(sorted(singles), sorted(np.unique(data.cell_type)), data.spec.combo_delimiter)

    def encode(self, perturbations: np.ndarray, cell_types: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Multi-hot perturbations and one-hot cell types; names never seen in training stay zero."""
        pert = np.zeros((len(perturbations), len(self.perturbations)), dtype=np.float32)
        index = {p: i for i, p in enumerate(self.perturbations)}
        for row, name in enumerate(perturbations):
            for single in name.split(self.combo_delimiter):
                if single in index:
                    pert[row, index[single]] = 1.0
        ct_index = {c: i for i, c in enumerate(self.cell_types)}
        cov = np.zeros((len(cell_types), len(self.cell_types)), dtype=np.float32)
        for row, ct in enumerate(cell_types):
            if ct in ct_index:
                cov[row, ct_index[ct]] = 1.0
        return torch.from_numpy(pert), torch.from_numpy(cov)

    def to_dict(self) -> dict:
        return asdict(self)


def control_pairs(data: PerturbationData, split: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The perturbed cells of a split and, for each, a random control of its cell type and split
    (cells of a cell type without controls there are left out)."""
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
    return targets[keep], controls[keep]
