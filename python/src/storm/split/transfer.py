"""Cell-type transfer split: each perturbation is held out in some cell types and kept for
training in the others, so a model must transfer its effect to a cell type it never saw it in.

Controls are split within each cell type, so every split that holds perturbed cells of a cell
type also holds controls of that cell type (the counterfactual starting point).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..errors import InputError

SPLITS = ("train", "val", "test")


@dataclass
class SplitResult:
    cells: pd.DataFrame  # cell_id, split
    pairs: pd.DataFrame  # cell_type, perturbation, split, n_cells
    summary: dict


def _hold_out_pairs(pairs: pd.DataFrame, heldout_fraction: float, rng: np.random.Generator) -> pd.Series:
    """Choose the held-out cell types of each perturbation, balancing load across cell types."""
    heldout = pd.Series(False, index=pairs.index)
    load = {ct: 0 for ct in pairs["cell_type"].unique()}
    perturbations = pairs["perturbation"].unique()
    for pert in rng.permutation(perturbations):
        rows = pairs.index[pairs["perturbation"] == pert]
        cell_types = pairs.loc[rows, "cell_type"].to_numpy()
        if len(rows) < 2:
            continue  # seen in one cell type only: nothing to transfer from
        n_hold = min(len(rows) - 1, max(1, math.floor(heldout_fraction * len(rows) + 0.5)))
        # least-loaded cell types first, random among ties
        order = sorted(range(len(rows)), key=lambda i: (load[cell_types[i]], rng.random()))
        for i in order[:n_hold]:
            heldout[rows[i]] = True
            load[cell_types[i]] += 1
    return heldout


def _split_controls(idx: np.ndarray, fractions: tuple[float, float, float],
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    idx = rng.permutation(idx)
    n = len(idx)
    n_val = max(1, round(fractions[1] * n)) if n >= 3 else 0
    n_test = max(1, round(fractions[2] * n)) if n >= 3 else 0
    n_train = n - n_val - n_test
    return {"train": idx[:n_train], "val": idx[n_train:n_train + n_val], "test": idx[n_train + n_val:]}


def transfer_split(
    obs: pd.DataFrame,
    perturbation_key: str,
    cell_type_key: str,
    control_value: str,
    seed: int,
    heldout_fraction: float = 0.25,
    control_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> SplitResult:
    """Split cells for cell-type transfer.

    Parameters
    ----------
    obs
        the obs table (index = cell ids).
    perturbation_key, cell_type_key, control_value
        the dataset spec.
    seed
        the same seed gives the same split.
    heldout_fraction
        share of each perturbation's cell types held out (at least one, never all).
    control_fractions
        train/val/test shares of each cell type's controls.
    """
    if not 0 < heldout_fraction < 1:
        raise InputError(f"heldout_fraction must be between 0 and 1, got {heldout_fraction}")
    rng = np.random.default_rng(seed)
    pert = obs[perturbation_key].astype(str).to_numpy()
    cell_type = obs[cell_type_key].astype(str).to_numpy()
    is_control = pert == control_value

    cells = pd.DataFrame({"cell_type": cell_type, "perturbation": pert})
    pairs = (
        cells[~is_control].groupby(["cell_type", "perturbation"]).size().rename("n_cells").reset_index()
    )
    heldout = _hold_out_pairs(pairs, heldout_fraction, rng)
    held = pairs.index[heldout].to_numpy()
    held = rng.permutation(held)
    n_val = len(held) // 2
    pairs["split"] = "train"
    pairs.loc[held[:n_val], "split"] = "val"
    pairs.loc[held[n_val:], "split"] = "test"

    split = cells.merge(pairs, on=["cell_type", "perturbation"], how="left")["split"].to_numpy(dtype=object)
    for ct in np.unique(cell_type):
        ctrl_idx = np.flatnonzero(is_control & (cell_type == ct))
        for name, idx in _split_controls(ctrl_idx, control_fractions, rng).items():
            split[idx] = name

    single_type = pairs.groupby("perturbation")["cell_type"].transform("size") < 2
    summary = {
        "strategy": "transfer",
        "seed": seed,
        "heldout_fraction": heldout_fraction,
        "cells_per_split": {s: int((split == s).sum()) for s in SPLITS},
        "pairs_per_split": {s: int((pairs["split"] == s).sum()) for s in SPLITS},
        "train_only_perturbations": {
            p: "seen in one cell type only" for p in sorted(pairs.loc[single_type, "perturbation"].unique())
        },
    }
    cells_out = pd.DataFrame({"cell_id": obs.index.astype(str), "split": split})
    return SplitResult(cells_out, pairs[["cell_type", "perturbation", "split", "n_cells"]], summary)


def write_split(result: SplitResult, out_dir: str | os.PathLike) -> None:
    """Write ``split.csv``, ``pairs.csv`` and ``summary.json`` into ``out_dir``."""
    out = Path(out_dir)
    io.write_csv(result.cells, out / "split.csv")
    io.write_csv(result.pairs, out / "pairs.csv")
    io.write_json(result.summary, out / "summary.json")
