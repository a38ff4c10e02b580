"""Baselines every benchmark needs: they set the floor a learned model has to clear.

Each is closed form over the training cells' means: a prediction is the target's held-out
controls shifted by an effect (a training mean minus its cell type's training control mean).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import PerturbationData
from ..io import write_csv
from .base import PerturbationModel, load_table, save_table

log = logging.getLogger(__name__)


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
    baseline = True

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
    baseline = True

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
        parts = [p for p in self.spec.singles(perturbation) if p in self.shifts]
        return np.sum([self.shifts[p] for p in parts], axis=0) if parts else np.zeros(n_genes)

    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        return (controls + self.shift(perturbation, controls.shape[1])).astype(np.float32)

    def unrepresentable(self, cell_type: str, perturbation: str) -> str | None:
        unseen = [p for p in self.spec.singles(perturbation) if p not in self.shifts]
        return f"perturbation '{unseen[0]}' was never trained: context_mean has no shift for it" if unseen else None

    def save(self, out_dir: Path) -> None:
        save_table(out_dir / "shifts.npz", list(self.shifts), np.stack(list(self.shifts.values())))

    def load_state(self, out_dir: Path) -> None:
        self.shifts = load_table(out_dir / "shifts.npz")


#: what a pair-specific baseline writes beside its effects: the rule each held-out pair got
RULES = "rules.csv"
SEP = "\t"  # between cell type and perturbation in a saved effect's key


class _PairEffects(PerturbationModel):
    """A baseline built from the training effect of every (cell type, perturbation) pair.

    Subclasses say, in :meth:`resolve`, how a target pair's effect follows from those; the rule
    each held-out pair of the split gets is written to ``rules.csv`` beside the model.
    """

    reads_cells = "disk"
    baseline = True

    def fit(self, data: PerturbationData, out_dir: Path) -> None:
        self.learn(data)
        held_out = ~data.mask("train") & ~data.is_control
        pairs = pd.DataFrame({"cell_type": data.cell_type[held_out], "perturbation": data.perturbation[held_out]})
        pairs = pairs.drop_duplicates().sort_values(["cell_type", "perturbation"])
        pairs["rule"] = [self.resolve(ct, pert, len(data.genes))[1]
                         for ct, pert in zip(pairs["cell_type"], pairs["perturbation"])]
        write_csv(pairs, out_dir / RULES)
        fallbacks = pairs["rule"].str.contains("fallback")
        if fallbacks.any():
            log.info("%d of %d held-out pairs fall back to a wider rule (%s)", fallbacks.sum(), len(pairs), RULES)

    def learn(self, data: PerturbationData) -> None:
        """The training effect of every pair whose cell type has training controls."""
        ctrl = _control_means(data)
        train_pert = data.mask("train") & ~data.is_control
        self.index({(ct, pert): (row.to_numpy() - ctrl[ct]).astype(np.float32)
                    for (ct, pert), row in data.group_means(train_pert).iterrows() if ct in ctrl})

    def index(self, effects: dict[tuple[str, str], np.ndarray]) -> None:
        """Keep the effects, and them grouped by perturbation, by cell type, and by (cell type,
        single perturbation) of the combinations containing it, so a prediction looks them up."""
        self.effects = effects
        self.by_perturbation: dict[str, list[np.ndarray]] = {}
        self.by_cell_type: dict[str, list[np.ndarray]] = {}
        self.combinations_with: dict[tuple[str, str], list[np.ndarray]] = {}
        for (ct, pert), effect in effects.items():
            self.by_perturbation.setdefault(pert, []).append(effect)
            self.by_cell_type.setdefault(ct, []).append(effect)
            singles = self.spec.singles(pert)
            for single in singles if len(singles) > 1 else ():
                self.combinations_with.setdefault((ct, single), []).append(effect)

    @abstractmethod
    def resolve(self, cell_type: str, perturbation: str, n_genes: int) -> tuple[np.ndarray, str]:
        """The effect predicted for ``perturbation`` in ``cell_type``, and the rule that gave it."""

    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        return (controls + self.resolve(cell_type, perturbation, controls.shape[1])[0]).astype(np.float32)

    def save(self, out_dir: Path) -> None:
        save_table(out_dir / "effects.npz", [f"{ct}{SEP}{pert}" for ct, pert in self.effects],
                   np.stack(list(self.effects.values())))

    def load_state(self, out_dir: Path) -> None:
        self.index({tuple(key.split(SEP, 1)): effect for key, effect in load_table(out_dir / "effects.npz").items()})

    def across_cell_types(self, perturbation: str) -> np.ndarray | None:
        """context_mean's rule: the perturbation's mean effect over the cell types it was trained in."""
        found = self.by_perturbation.get(perturbation)
        return np.mean(found, axis=0) if found else None

    def perturbed_mean(self, cell_type: str, n_genes: int) -> tuple[np.ndarray, str]:
        """Systema's non-control mean: the mean effect of every training perturbation of the cell
        type (each perturbation weighs one); with none, the other cell types' means averaged."""
        if cell_type in self.by_cell_type:
            return np.mean(self.by_cell_type[cell_type], axis=0), "perturbed mean of the cell type"
        if not self.by_cell_type:
            return np.zeros(n_genes), "fallback: no perturbed training cells, no change"
        return (np.mean([np.mean(e, axis=0) for e in self.by_cell_type.values()], axis=0),
                "fallback: perturbed mean of the other cell types")


class Additive(_PairEffects):
    """The additive baseline (Ahlmann-Eltze et al. 2025): a pair's controls + the training effect
    of each of its single perturbations measured in that same cell type.

    A single perturbation not trained in the cell type takes context_mean's rule (its mean effect
    over the cell types it was trained in; never trained: no effect), recorded in ``rules.csv``.
    """

    def resolve(self, cell_type: str, perturbation: str, n_genes: int) -> tuple[np.ndarray, str]:
        effect, rules = np.zeros(n_genes, dtype=np.float32), []
        for part in self.spec.singles(perturbation):
            if (cell_type, part) in self.effects:
                effect = effect + self.effects[cell_type, part]
                rules.append(f"{part}: its effect in the cell type")
            elif (elsewhere := self.across_cell_types(part)) is not None:
                effect = effect + elsewhere
                rules.append(f"{part}: fallback, its mean effect over other cell types")
            else:
                rules.append(f"{part}: fallback, never trained, no effect")
        return effect, "; ".join(rules)


    def unrepresentable(self, cell_type: str, perturbation: str) -> str | None:
        unseen = [p for p in self.spec.singles(perturbation) if p not in self.by_perturbation]
        return f"perturbation '{unseen[0]}' was never trained: additive has no effect for it" if unseen else None


class PerturbedMean(_PairEffects):
    """Systema's perturbed-mean baseline: the controls shifted by the mean effect of all the cell
    type's training perturbations, whatever the perturbation: it knows only that cells were perturbed."""

    def resolve(self, cell_type: str, perturbation: str, n_genes: int) -> tuple[np.ndarray, str]:
        return self.perturbed_mean(cell_type, n_genes)


class MatchingMean(_PairEffects):
    """Systema's matching-mean baseline: a combination is the mean of its singles' training means,
    a single the mean of the training combinations containing it, each in the cell type (a single
    trained only elsewhere: its mean over those cell types); else the perturbed mean."""

    def resolve(self, cell_type: str, perturbation: str, n_genes: int) -> tuple[np.ndarray, str]:
        parts = self.spec.singles(perturbation)
        if len(parts) > 1:
            found = [e for p in parts
                     if (e := self.effects.get((cell_type, p), self.across_cell_types(p))) is not None]
            if found:
                return np.mean(found, axis=0), f"mean of {len(found)} of its {len(parts)} singles"
        elif combinations := self.combinations_with.get((cell_type, perturbation)):
            return np.mean(combinations, axis=0), f"mean of the {len(combinations)} combinations containing it"
        effect, rule = self.perturbed_mean(cell_type, n_genes)
        return effect, rule if rule.startswith("fallback") else f"fallback: {rule}"
