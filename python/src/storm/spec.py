"""The dataset spec: which obs columns hold what, and which value marks control cells.

After ``storm prepare`` the data carries canonical columns (``perturbation``, ``cell_type``,
``batch``) and the spec lives in ``uns['storm']['spec']``, so later steps need no column names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

PERTURBATION = "perturbation"
CELL_TYPE = "cell_type"
BATCH = "batch"

#: how ``storm split`` can choose held-out pairs (see storm.split.strategies)
SPLIT_STRATEGIES = ("transfer", "combo", "combo_inverse", "zeroshot", "manual", "file")


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
    """

    perturbation_key: str = "perturbation"
    cell_type_key: str = "cell_type"
    control_value: str = "control"
    batch_key: str | None = "batch"
    combo_delimiter: str = "+"

    def columns(self) -> list[str]:
        """obs columns the spec names, in a stable order."""
        cols = [self.perturbation_key, self.cell_type_key]
        if self.batch_key:
            cols.append(self.batch_key)
        return cols

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetSpec":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
