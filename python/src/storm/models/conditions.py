"""How the neural models see a condition: a multi-hot of single perturbations (``A+B`` sets
both) and a one-hot cell type, or, in a chemical screen, the molecule with its dose and time; and
how training pairs a perturbed cell with a control."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from ..data import PerturbationData
from ..errors import StormError
from ..spec import parse_condition


def one_hot(values: np.ndarray, known: list[str], extra: int = 0) -> np.ndarray:
    """One-hot rows over ``known`` (a value never seen stays zero), plus ``extra`` zero columns."""
    index = {v: i for i, v in enumerate(known)}
    out = np.zeros((len(values), len(known) + extra), dtype=np.float32)
    for row, value in enumerate(values):
        if value in index:
            out[row, index[value]] = 1.0
    return out


@dataclass
class Conditions:
    perturbations: list[str]  # the single perturbations seen in training, in column order
    cell_types: list[str]
    combo_delimiter: str

    @classmethod
    def from_training(cls, data: PerturbationData) -> "Conditions":
        train = data.mask("train") & ~data.is_control
        singles = {s for p in np.unique(data.perturbation[train]) for s in data.spec.singles(p)}
        return cls(sorted(singles), sorted(np.unique(data.cell_type)), data.spec.combo_delimiter)

    def encode(self, perturbations: np.ndarray, cell_types: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Multi-hot perturbations and one-hot cell types; names never seen in training stay zero."""
        pert = np.zeros((len(perturbations), len(self.perturbations)), dtype=np.float32)
        index = {p: i for i, p in enumerate(self.perturbations)}
        for row, name in enumerate(perturbations):
            for single in name.split(self.combo_delimiter):
                if single in index:
                    pert[row, index[single]] = 1.0
        return torch.from_numpy(pert), torch.from_numpy(one_hot(cell_types, self.cell_types))

    def unrepresentable(self, cell_type: str, perturbation: str) -> str | None:
        """Why this encoding cannot represent the condition (None: it can)."""
        if cell_type not in self.cell_types:
            return f"cell type '{cell_type}' was not in the data the model was trained on"
        unseen = [p for p in perturbation.split(self.combo_delimiter) if p not in self.perturbations]
        return f"perturbation '{unseen[0]}' was never trained: the model has no input for it" if unseen else None

    def to_dict(self) -> dict:
        return {"kind": "onehot", **asdict(self)}


@dataclass
class MoleculeConditions:
    """A condition seen as its molecule, so a compound never trained on can still be predicted:
    the compound's features (every compound of the dataset, held-out ones included) and its log
    dose form the perturbation input; the cell type's one-hot and the time (as a share of the
    longest in training) form the covariates. Conditions are parsed from their labels
    (``compound|dose=..|time=..``)."""

    compounds: list[str]
    features: list[list[float]]  # one row per compound
    cell_types: list[str]
    max_time: float

    @classmethod
    def from_training(cls, data: PerturbationData, features: pd.DataFrame) -> "MoleculeConditions":
        times = [parse_condition(p)[2] for p in _training_conditions(data)]
        known = [t for t in times if t is not None]
        return cls(list(features.index), features.to_numpy(np.float32).tolist(),
                   sorted(np.unique(data.cell_type)), float(max(known)) if known else 1.0)

    @functools.cached_property
    def _table(self) -> tuple[dict[str, int], np.ndarray]:
        """compound -> row, and the features as an array: built once, not per batch."""
        return {c: i for i, c in enumerate(self.compounds)}, np.asarray(self.features, dtype=np.float32)

    @property
    def n_features(self) -> int:
        return len(self.features[0])

    @property
    def perturbations(self) -> list[str]:
        """Width of the perturbation input: the features and the log dose."""
        return [*map(str, range(self.n_features)), "log_dose"]

    def encode(self, perturbations: np.ndarray, cell_types: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """[features | log1p(dose)] and [cell type one-hot | time share]; a control or a compound
        without features gets zero features (its dose and time still count)."""
        index, table = self._table
        labels, inverse = np.unique(np.asarray(perturbations, dtype=object).astype(str), return_inverse=True)
        rows = np.zeros((len(labels), self.n_features + 1), dtype=np.float32)
        times = np.zeros(len(labels), dtype=np.float32)
        for i, label in enumerate(labels):
            compound, dose, time = parse_condition(label)
            if compound in index:
                rows[i, :-1] = table[index[compound]]
            rows[i, -1] = np.log1p(dose or 0.0)
            times[i] = (time or 0.0) / self.max_time
        cov = one_hot(cell_types, self.cell_types, extra=1)
        cov[:, -1] = times[inverse.ravel()]
        return torch.from_numpy(rows[inverse.ravel()]), torch.from_numpy(cov)

    def unrepresentable(self, cell_type: str, perturbation: str) -> str | None:
        """Why this encoding cannot represent the condition (None: it can)."""
        if cell_type not in self.cell_types:
            return f"cell type '{cell_type}' was not in the data the model was trained on"
        compound = parse_condition(perturbation)[0]
        if compound not in self._table[0]:
            return (f"compound '{compound}' has no molecule features (no SMILES in the dataset, no row in "
                    f"--molecule_embeddings)")
        return None

    def to_dict(self) -> dict:
        return {"kind": "molecule", **asdict(self)}


ENCODERS = ("auto", "onehot", "molecule")


def _training_conditions(data: PerturbationData) -> np.ndarray:
    return np.unique(data.perturbation[data.mask("train") & ~data.is_control])


def compound_identities(data: PerturbationData) -> pd.DataFrame | None:
    """A chemical screen without molecule features (e.g. LINCS compound ids only), or a time
    course: each training compound as a one-hot feature, CPA's drug input, so its dose and time
    stay numbers a model can interpolate (an unseen dose of a seen drug, the time points of a
    course in order) rather than parts of a one-hot label. None when no training condition has a
    dose or a time."""
    parsed = [parse_condition(p) for p in _training_conditions(data)]
    if all(dose is None and time is None for _, dose, time in parsed):
        return None
    compounds = sorted({compound for compound, _, _ in parsed})
    return pd.DataFrame(np.eye(len(compounds), dtype=np.float32), index=compounds)


def conditions_for(data: PerturbationData, encoder: str) -> Conditions | MoleculeConditions:
    """How a model sees this data's conditions: ``molecule`` needs molecule features (a chemical
    screen prepared with SMILES or an embedding table); ``auto`` takes them when there are some,
    else, in a screen with doses or times, the compound's identity with its dose and time;
    ``onehot``: one column per condition label."""
    if encoder not in ENCODERS:
        raise StormError(f"molecule.encoder must be one of {', '.join(ENCODERS)}, got '{encoder}'")
    if encoder == "molecule" and data.molecules is None:
        raise StormError("molecule.encoder is 'molecule' but the data has no molecule features: prepare it with "
                         "the spec's smiles_key or --molecule-embeddings")
    if encoder == "onehot":
        return Conditions.from_training(data)
    features = data.molecules if data.molecules is not None else compound_identities(data)
    return Conditions.from_training(data) if features is None else MoleculeConditions.from_training(data, features)


def conditions_from_dict(state: dict) -> Conditions | MoleculeConditions:
    state = dict(state)
    kind = state.pop("kind", "onehot")
    return MoleculeConditions(**state) if kind == "molecule" else Conditions(**state)


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
