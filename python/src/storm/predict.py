"""Predict held-out (cell type, perturbation) pairs from held-out controls (counterfactual).

For each pair of the evaluated split, as many control cells of that cell type and split as the
pair has real cells are drawn (with replacement, seeded by the seed and the pair) and passed
through the model. A pair is
scored on at most ``metrics.CELLS_PER_PAIR`` of its cells and a cell type on at most
``metrics.CONTROLS_PER_CELL_TYPE`` controls, and both files are written a pair or a block at a
time, so neither step grows with the screen.
``pred.h5ad`` (per model) and ``real.h5ad`` (once per split, by REFERENCE) hold those pairs plus
the split's control cells of the same cell types, over the same genes, with canonical obs
columns and the spec in ``uns['storm']``. Predictions are clipped at 0, as log-normalised
expression is never negative.
"""

from __future__ import annotations

import logging
import os
import zlib

import numpy as np
import pandas as pd
from tqdm import tqdm

from .data import PerturbationData, load_split_data
from .errors import InputError
from .metrics import CELLS_PER_PAIR, CONTROLS_PER_CELL_TYPE
from .rowblocks import WRITE_ROWS, write_h5ad_rows
from .spec import CELL_TYPE, PERTURBATION, PROFILES
from .train import load_model

log = logging.getLogger(__name__)


#: draws of cells to score are seeded by this, never by a model's seed: every model meets the same cells
SCORED_CELLS_SEED = 0


def draw_controls(pool: np.ndarray, n: int, seed: int, cell_type: str, perturbation: str) -> np.ndarray:
    """``n`` controls from ``pool`` (with replacement) to start a pair's prediction from, seeded by
    the seed and the pair's name: a pair meets the same controls whichever other pairs are
    predicted (the benchmark's, or a request for that condition alone)."""
    key = zlib.crc32(f"{cell_type}\t{perturbation}".encode())
    return np.random.default_rng([seed, key]).choice(pool, size=n)


def _at_most(cells: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(cells, n, replace=False)) if cells.size > n else cells


def heldout_pairs(data: PerturbationData, eval_split: str, max_cells: int = CELLS_PER_PAIR,
                  max_controls: int = CONTROLS_PER_CELL_TYPE) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """The (cell type, perturbation) pairs of ``eval_split`` that can be predicted, each with its
    real cells and the pool of that cell type's controls in the split, at most ``max_cells`` and
    ``max_controls`` of them (a seeded draw); a pair without controls is skipped with a warning.
    PREDICT and REFERENCE both use this, so pred and real agree. One pass over the cells groups
    them (a scan per pair took hours at Tahoe's ~57,000 pairs)."""
    in_split = data.mask(eval_split)
    held = np.flatnonzero(in_split & ~data.is_control)
    if not held.size:
        hint = (": a sweep (--model_set key=a|b) chooses its configuration on validation pairs; hold some out "
                "(--split_args '--max-heldout-covariates N --test-fraction 0.5', several held-out perturbations)"
                if eval_split == "val" else "")
        raise InputError(f"the split has no perturbed cells in '{eval_split}'{hint}")
    rng = np.random.default_rng(SCORED_CELLS_SEED)
    controls = np.flatnonzero(in_split & data.is_control)
    pools = {ct: _at_most(cells.to_numpy(), max_controls, rng)
             for ct, cells in pd.Series(controls).groupby(data.cell_type[controls], sort=True)}
    found, skipped = [], []
    for (ct, pert), cells in pd.Series(held).groupby([data.cell_type[held], data.perturbation[held]], sort=True):
        if ct not in pools:
            skipped.append(f"{ct}/{pert}")
            continue
        found.append((ct, pert, _at_most(cells.to_numpy(), max_cells, rng), pools[ct]))
    if skipped:
        log.warning("no %s controls for %d pair(s), not predicted: %s", eval_split, len(skipped), ", ".join(skipped))
    if not found:
        raise InputError(f"no pair of the split can be predicted: no {eval_split} controls")
    return found


def _controls(pairs: list) -> np.ndarray:
    """The control pools of the cell types that have predicted pairs: the controls pred.h5ad
    and real.h5ad carry."""
    pools = {ct: pool for ct, _, _, pool in pairs}
    return np.concatenate([pools[ct] for ct in sorted(pools)])


def _obs(perturbation: np.ndarray, cell_type: np.ndarray, names: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({PERTURBATION: pd.Categorical(perturbation), CELL_TYPE: pd.Categorical(cell_type)},
                        index=pd.Index(names, dtype=object))


def _write(out, obs: pd.DataFrame, data: PerturbationData, blocks) -> None:
    """An h5ad of dense float32 ``blocks`` of rows (obs's, in order) over the split's genes, with
    canonical obs columns and the spec in ``uns['storm']``, written as they come."""
    uns = {"storm": {"spec": data.spec.to_dict(), PROFILES: data.profiles}}
    with write_h5ad_rows(out, obs, pd.DataFrame(index=pd.Index(data.genes, dtype=object)), uns) as rows:
        X = rows.matrix("X", len(data.genes), dense=True)
        for block in blocks:
            X.append(block.astype(np.float32, copy=False))


def _read_rows(data: PerturbationData, cells: np.ndarray):
    for start in range(0, cells.size, WRITE_ROWS):
        yield data.rows(cells[start:start + WRITE_ROWS])


def predict(prepared: str | os.PathLike, split_csv: str | os.PathLike, genes_csv: str | os.PathLike,
            model_dir: str | os.PathLike, out: str | os.PathLike, seed: int = 0, eval_split: str = "test") -> dict:
    """Write ``pred.h5ad`` for the pairs of ``eval_split`` a pair at a time (cells read from disk
    as they are needed); return a summary."""
    model, meta = load_model(model_dir)
    data = load_split_data(prepared, split_csv, genes_csv, obsm_keys=(model.input_key,) if model.input_key else (),
                           backed=True)
    if data.genes.tolist() != meta["genes"]:
        raise InputError(f"the model in {model_dir} was trained on other genes than {genes_csv} lists")
    pairs = heldout_pairs(data, eval_split)
    ctrl = _controls(pairs)
    sizes = [real.size for _, _, real, _ in pairs]
    obs = _obs(np.concatenate([np.repeat([pert for _, pert, _, _ in pairs], sizes), data.perturbation[ctrl]]),
               np.concatenate([np.repeat([ct for ct, _, _, _ in pairs], sizes), data.cell_type[ctrl]]),
               np.array([f"pred{i}" for i in range(sum(sizes) + ctrl.size)], dtype=object))
    def predicted():
        for ct, pert, real, pool in tqdm(pairs, desc="predict", unit="pair", disable=None):
            controls = model.inputs(data, draw_controls(pool, real.size, seed, ct, pert))
            # log-normalised expression is never negative, whatever a model's arithmetic says
            yield np.clip(model.predict(controls, ct, pert), 0.0, None)
        yield from _read_rows(data, ctrl)

    _write(out, obs, data, predicted())
    return {"pairs": len(pairs), "cells": len(obs)}


def write_real(prepared: str | os.PathLike, split_csv: str | os.PathLike, genes_csv: str | os.PathLike,
               out: str | os.PathLike, eval_split: str = "test") -> dict:
    """Write ``real.h5ad``: the real cells of the pairs :func:`predict` predicts and the split's
    controls of their cell types, over the split's genes, named by cell id, read and written a
    block at a time. Once per split."""
    data = load_split_data(prepared, split_csv, genes_csv, backed=True)
    pairs = heldout_pairs(data, eval_split)
    cells = np.concatenate([real for _, _, real, _ in pairs] + [_controls(pairs)])
    _write(out, _obs(data.perturbation[cells], data.cell_type[cells], data.ids(cells)), data,
           _read_rows(data, cells))
    return {"pairs": len(pairs), "cells": int(cells.size)}
