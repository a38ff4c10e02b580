"""The memory each step asks for, from the sizes of its dataset (VALIDATE records them).

Steps read X a block of rows at a time, so what they hold is a fixed part (the interpreter, its
packages, a block) plus a part per cell (the obs table, labels and indices), plus, where a step
holds dense expression, that matrix: training in memory holds every cell over the split's genes,
scoring holds one cell type's scored cells. The constants were fitted to peak RSS measured by
``tests/benchmarks/pipeline_scale.py`` (the README's table); a request adds ``HEADROOM`` on top,
and Nextflow multiplies it by the attempt, so a task killed for memory is retried with more.
"""

from __future__ import annotations

from dataclasses import dataclass

from .metrics import CELLS_PER_PAIR, CONTROLS_PER_CELL_TYPE

GB = 1 << 30
#: what each step holds whatever the data's size, and per cell (fitted; see the module's doc)
FIXED = {"PREPARE": 1.8 * GB, "SPLIT": 0.5 * GB, "GENES": 1.8 * GB, "REFERENCE": 0.9 * GB, "TRAIN": 1.2 * GB,
         "PREDICT": 1.2 * GB, "EVALUATE": 1.2 * GB}
PER_CELL = {"PREPARE": 400, "SPLIT": 400, "GENES": 300, "REFERENCE": 500, "TRAIN": 500, "PREDICT": 500,
            "EVALUATE": 0}
#: bytes per value of dense expression a step holds: float32 when training, scoring's float64 copies
DENSE_VALUE = {"TRAIN": 4, "EVALUATE": 40}
HEADROOM = 1.25
#: the least any step asks for
FLOOR = 1 * GB
#: training holds its cells in memory up to this; past it, models that can read cells from disk do
#: (``backed``) and those that cannot stop with an error naming it (the pipeline's --train_memory_budget)
TRAIN_MEMORY_BUDGET = 16 * GB


@dataclass(frozen=True)
class Sizes:
    """What a dataset's memory needs depend on (``qc.json``'s counts)."""

    n_cells: int
    n_genes: int
    n_perturbations: int
    largest_cell_type: int  # cells of the cell type with the most

    @classmethod
    def from_qc(cls, qc: dict) -> "Sizes":
        return cls(int(qc["n_cells"]), int(qc["n_genes"]), int(qc["n_perturbations"]),
                   max(map(int, qc["cells_per_cell_type"].values())))


def dense_bytes(n_cells: int, n_genes: int) -> int:
    """A dense float32 cells x genes matrix: what training in memory holds."""
    return n_cells * n_genes * DENSE_VALUE["TRAIN"]


def trains_in_memory(n_cells: int, n_genes: int, budget: int = TRAIN_MEMORY_BUDGET) -> bool:
    return dense_bytes(n_cells, n_genes) <= budget


def _request(step: str, n_cells: int, dense_values: int = 0) -> int:
    need = FIXED[step] + PER_CELL[step] * n_cells + DENSE_VALUE.get(step, 0) * dense_values
    return int(max(FLOOR, need * HEADROOM))


def requests(sizes: Sizes, n_top_genes: int, budget: int = TRAIN_MEMORY_BUDGET) -> dict[str, int]:
    """Bytes of memory per step for a dataset of ``sizes`` whose splits keep ``n_top_genes``.
    ``TRAIN`` is a model that holds its cells in memory while they fit ``budget`` (past it, it
    reads them from disk); ``TRAIN_BACKED`` one that reads them from disk."""
    genes = min(n_top_genes, sizes.n_genes)
    scored = min(sizes.largest_cell_type, sizes.n_perturbations * CELLS_PER_PAIR + CONTROLS_PER_CELL_TYPE)
    in_memory = trains_in_memory(sizes.n_cells, genes, budget)
    out = {step: _request(step, sizes.n_cells) for step in ("PREPARE", "SPLIT", "GENES", "REFERENCE", "PREDICT")}
    out["TRAIN"] = _request("TRAIN", sizes.n_cells, sizes.n_cells * genes if in_memory else 0)
    out["TRAIN_BACKED"] = _request("TRAIN", sizes.n_cells)
    out["EVALUATE"] = _request("EVALUATE", sizes.n_cells, scored * genes)
    return out
