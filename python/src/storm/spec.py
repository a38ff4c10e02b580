"""The dataset spec: which obs columns hold what, and which value marks control cells.

After ``storm prepare`` the data carries canonical columns (``perturbation``, ``cell_type``,
``batch``) and the spec lives in ``uns['storm']['spec']``, so later steps need no column names.
The pipeline builds a spec per dataset (from its samplesheet row, or the global parameters) and
hands it to every step whole, as one JSON argument (``--spec``). Its fields are the parameters of
the ``dataset_spec`` group of ``nextflow_schema.json``; a test keeps the two equal.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

import numpy as np

from .errors import SpecError

PERTURBATION = "perturbation"
CELL_TYPE = "cell_type"
BATCH = "batch"
#: canonical obs columns of a chemical screen (see :func:`condition_labels`)
COMPOUND, DOSE, TIME, SMILES = "compound", "dose", "time", "smiles"
#: separates a compound from its dose and time in a condition's label: ``imatinib|dose=10|time=24``
CONDITION_SEPARATOR = "|"
#: uns['storm'][PROFILES]: "bulk" for bulk profiles (samples, not cells: `storm import` marks them),
#: else "cells"; evaluation skips the metrics that need single cells on bulk data
PROFILES = "profiles"

#: the other tools ``storm split --export`` writes a split's files for (storm.split.export)
SPLIT_EXPORTS = ("state", "perturbench")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset keeps its perturbation annotations.

    Parameters
    ----------
    perturbation_key
        obs column with the perturbation of each cell.
    cell_type_key
        obs column with the cell type (the covariate perturbations transfer across).
    control_value
        value of ``perturbation_key`` that marks unperturbed control cells.
    batch_key
        obs column with the batch, or ``None`` when the data has a single batch.
    combo_delimiter
        separator of combined perturbations, as in ``A+B``.
    dose_key, time_key
        obs columns with a numeric dose and time after perturbation, or ``None``.
    smiles_key
        obs column with each compound's SMILES, or ``None``.
    embed_key
        obsm key of a cell embedding that models with an ``embed_key`` setting read by default.
    """

    perturbation_key: str = "perturbation"
    cell_type_key: str = "cell_type"
    control_value: str = "control"
    batch_key: str | None = "batch"
    combo_delimiter: str = "+"
    dose_key: str | None = None
    time_key: str | None = None
    smiles_key: str | None = None
    embed_key: str | None = None

    def __post_init__(self):
        for name in ("perturbation_key", "cell_type_key", "control_value", "combo_delimiter"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise SpecError(f"the dataset spec's {name} must be a non-empty string, got {value!r}")
        if self.control_value != self.control_value.strip():
            raise SpecError(f"the control value {self.control_value!r} has surrounding white space")
        for name in ("batch_key", "dose_key", "time_key", "smiles_key", "embed_key"):
            if getattr(self, name) == "":  # '' from a command line means "none"
                object.__setattr__(self, name, None)
        named = [c for c in self.columns()]
        twice = sorted({c for c in named if named.count(c) > 1})
        if twice:
            raise SpecError(f"the dataset spec names obs column(s) {', '.join(twice)} for more than one role")

    def columns(self) -> list[str]:
        """obs columns the spec names, in a stable order."""
        optional = [self.batch_key, self.dose_key, self.time_key, self.smiles_key]
        return [self.perturbation_key, self.cell_type_key, *(c for c in optional if c)]

    def singles(self, perturbation: str) -> list[str]:
        """The single perturbations a (possibly combined) perturbation is made of (``A+B`` -> A, B)."""
        return [p for p in perturbation.split(self.combo_delimiter) if p]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetSpec":
        """A spec from a mapping; unknown keys are an error (a typo must not pass silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown dataset spec key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{k: v for k, v in data.items()})

    @classmethod
    def from_json(cls, text: str) -> "DatasetSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"--spec is not valid JSON ({exc.msg} at character {exc.pos}): {text[:80]}") from exc
        if not isinstance(data, dict):
            raise SpecError("--spec must be a JSON object of spec keys to values")
        return cls.from_dict(data)


def _condition_field(name: str, values: np.ndarray) -> np.ndarray:
    """``|name=value`` per cell ('' where missing), formatted once per distinct value."""
    distinct, inverse = np.unique(np.asarray(values, dtype=np.float64), return_inverse=True)
    text = np.array(["" if np.isnan(v) else f"{CONDITION_SEPARATOR}{name}={v:g}" for v in distinct], dtype=object)
    return text[inverse.ravel()]


def condition_labels(perturbation: np.ndarray, dose: np.ndarray | None, time: np.ndarray | None,
                     control_value: str) -> np.ndarray:
    """The condition of each cell: its perturbation, with its dose and time when the spec names
    them (``imatinib|dose=10|time=24``), so a compound at two doses is two conditions to predict.
    Controls keep the control value whatever their vehicle's dose; a missing dose or time is left
    out of the label."""
    perturbation = np.asarray(perturbation, dtype=object).astype(str).astype(object)
    labels = perturbation.copy()
    for name, values in ((DOSE, dose), (TIME, time)):
        if values is not None:
            labels = labels + _condition_field(name, values)
    return np.where(perturbation == control_value, control_value, labels).astype(object)


def parse_condition(label: str) -> tuple[str, float | None, float | None]:
    """(compound, dose, time) of a condition label written by :func:`condition_labels`."""
    compound, *fields = str(label).split(CONDITION_SEPARATOR)
    values = dict(field.split("=", 1) for field in fields)
    dose, time = values.get(DOSE), values.get(TIME)
    return compound, None if dose is None else float(dose), None if time is None else float(time)


def profiles_of(uns) -> str:
    """"bulk" when AnnData's ``uns`` marks bulk profiles, else "cells"."""
    storm = uns.get("storm", {})
    return "bulk" if isinstance(storm, dict) and storm.get(PROFILES) == "bulk" else "cells"
