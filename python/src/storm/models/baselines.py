"""Baselines every benchmark needs: they set the floor a learned model has to clear."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import PerturbationData
from .base import PerturbationModel, load_table, save_table


def _control_means(data: PerturbationData) -> dict[str, np.ndarray]:
    train_ctrl = data.mask("train") & data.is_control
    means = data.group_means(train_ctrl)
    return {ct: row.to_numpy() for (ct, _), row in means.iterrows()}


class ControlMean(PerturbationModel):
    """No change: every perturbed cell is predicted as the mean of its cell type's controls.

    The mean is taken over the controls it is given (held out like the pairs it predicts), so
    its predicted change from control is pure sampling noise: the floor of every delta metric.
    """

    reads_cells = "disk"

    def fit(self, data: PerturbationData, out_dir: Path) -> None:
        """Nothing to learn."""

    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        return np.broadcast_to(controls.mean(axis=0), controls.shape).astype(np.float32)

    def save(self, out_dir: Path) -> None:
        """Nothing to save."""

    def load_state(self, out_dir: Path) -> None:
        """Nothing to load."""


class ContextMean(PerturbationModel):
    """The perturbation's mean shift over the training cell types, added to the target controls.

    A combination never seen in training gets the sum of its singles' shifts; a perturbation
    never seen at all gets no shift.
    """

    reads_cells = "disk"

    def fit(self, data: PerturbationData, out_dir: Path) -> None:
        ctrl = _control_means(data)
        train_pert = data.mask("train") & ~data.is_control
        shifts: dict[str, list[np.ndarray]] = {}
        for (ct, pert), row in data.group_means(train_pert).iterrows():
            if ct in ctrl:
                shifts.setdefault(pert, []).append(row.to_numpy() - ctrl[ct])
        self.shifts = {p: np.mean(s, axis=0) for p, s in shifts.items()}

    def shift(self, perturbation: str, n_genes: int) -> np.ndarray:
        if perturbation in self.shifts:
            return self.shifts[perturbation]
        parts = [p for p in perturbation.split(self.spec.combo_delimiter) if p in self.shifts]
        return np.sum([self.shifts[p] for p in parts], axis=0) if parts else np.zeros(n_genes)

    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        return (controls + self.shift(perturbation, controls.shape[1])).astype(np.float32)

    def save(self, out_dir: Path) -> None:
        save_table(out_dir / "shifts.npz", list(self.shifts), np.stack(list(self.shifts.values())))

    def load_state(self, out_dir: Path) -> None:
        self.shifts = load_table(out_dir / "shifts.npz")
