"""Predict held-out (cell type, perturbation) pairs from held-out controls (counterfactual).

For each pair of the evaluated split, as many control cells of that cell type and split as the
pair has real cells are drawn (with replacement, seeded) and passed through the model.
``pred.h5ad`` (per model) and ``real.h5ad`` (once per split, by REFERENCE) hold those pairs plus
the split's control cells of the same cell types, over the same genes, with canonical obs
columns and the spec in ``uns['storm']``. Predictions are clipped at 0, as log-normalised
expression is never negative.
"""

from __future__ import annotations

import logging
import os

import anndata as ad
import numpy as np
import pandas as pd
from tqdm import tqdm

from . import io
from .data import PerturbationData, load_split_data
from .errors import InputError
from .spec import CELL_TYPE, PERTURBATION, PROFILES
from .train import load_model

log = logging.getLogger(__name__)


def _to_anndata(X: np.ndarray, perturbation: np.ndarray, cell_type: np.ndarray,
                data: PerturbationData, kind: str) -> ad.AnnData:
    obs = pd.DataFrame(
        {PERTURBATION: pd.Categorical(perturbation), CELL_TYPE: pd.Categorical(cell_type)},
        index=pd.Index([f"{kind}{i}" for i in range(len(perturbation))], dtype=object),
    )
    adata = ad.AnnData(X=X.astype(np.float32), obs=obs, var=pd.DataFrame(index=pd.Index(data.genes, dtype=object)))
    adata.uns["storm"] = {"spec": data.spec.to_dict(), PROFILES: data.profiles}
    return adata


def heldout_pairs(data: PerturbationData, eval_split: str) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """The (cell type, perturbation) pairs of ``eval_split`` that can be predicted, each with its
    real cells and the pool of that cell type's controls in the split; a pair without controls
    is skipped with a warning. PREDICT and REFERENCE both use this, so pred and real agree. One
    pass over the cells groups them (a scan per pair took hours at Tahoe's ~57,000 pairs)."""
    in_split = data.mask(eval_split)
    held = np.flatnonzero(in_split & ~data.is_control)
    if not held.size:
        hint = (": a sweep (--model_set key=a|b) chooses its configuration on validation pairs; hold some out "
                "(--split_args '--max-heldout-covariates N --test-fraction 0.5', several held-out perturbations)"
                if eval_split == "val" else "")
        raise InputError(f"the split has no perturbed cells in '{eval_split}'{hint}")
    controls = np.flatnonzero(in_split & data.is_control)
    pools = {ct: cells.to_numpy() for ct, cells in pd.Series(controls).groupby(data.cell_type[controls], sort=False)}
    found, skipped = [], []
    for (ct, pert), cells in pd.Series(held).groupby([data.cell_type[held], data.perturbation[held]], sort=True):
        if ct not in pools:
            skipped.append(f"{ct}/{pert}")
            continue
        found.append((ct, pert, cells.to_numpy(), pools[ct]))
    if skipped:
        log.warning("no %s controls for %d pair(s), not predicted: %s", eval_split, len(skipped), ", ".join(skipped))
    if not found:
        raise InputError(f"no pair of the split can be predicted: no {eval_split} controls")
    return found


def _controls(data: PerturbationData, pairs: list, eval_split: str) -> np.ndarray:
    """The split's control cells of the cell types that have predicted pairs."""
    cell_types = np.unique([ct for ct, _, _, _ in pairs])
    return np.flatnonzero(data.mask(eval_split) & data.is_control & np.isin(data.cell_type, cell_types))


def predict(prepared: str | os.PathLike, split_csv: str | os.PathLike, genes_csv: str | os.PathLike,
            model_dir: str | os.PathLike, out: str | os.PathLike, seed: int = 0, eval_split: str = "test") -> dict:
    """Write ``pred.h5ad`` for the pairs of ``eval_split``; return a summary."""
    model, meta = load_model(model_dir)
    data = load_split_data(prepared, split_csv, genes_csv, obsm_keys=(model.input_key,) if model.input_key else (),
                           backed=bool(meta["config"].get("backed", False)))
    if data.genes.tolist() != meta["genes"]:
        raise InputError(f"the model in {model_dir} was trained on other genes than {genes_csv} lists")
    pairs = heldout_pairs(data, eval_split)
    rng = np.random.default_rng(seed)
    pred_X, pred_pert, pred_ct = [], [], []
    for ct, pert, real, pool in tqdm(pairs, desc="predict", unit="pair", disable=None):
        controls = model.inputs(data, rng.choice(pool, size=real.size))
        # log-normalised expression is never negative, whatever a model's arithmetic says
        pred_X.append(np.clip(model.predict(controls, ct, pert), 0.0, None))
        pred_pert.append(np.full(real.size, pert, dtype=object))
        pred_ct.append(np.full(real.size, ct, dtype=object))
    ctrl = _controls(data, pairs, eval_split)
    pred = _to_anndata(
        np.concatenate(pred_X + [data.rows(ctrl)]),
        np.concatenate(pred_pert + [data.perturbation[ctrl]]),
        np.concatenate(pred_ct + [data.cell_type[ctrl]]),
        data, "pred",
    )
    io.write_h5ad(pred, out)
    return {"pairs": len(pairs), "cells": int(pred.n_obs)}


def write_real(prepared: str | os.PathLike, split_csv: str | os.PathLike, genes_csv: str | os.PathLike,
               out: str | os.PathLike, eval_split: str = "test") -> dict:
    """Write ``real.h5ad``: the real cells of the pairs :func:`predict` predicts and the split's
    controls of their cell types, over the split's genes, named by cell id. Once per split."""
    data = load_split_data(prepared, split_csv, genes_csv)
    pairs = heldout_pairs(data, eval_split)
    cells = np.concatenate([real for _, _, real, _ in pairs] + [_controls(data, pairs, eval_split)])
    real = _to_anndata(data.rows(cells), data.perturbation[cells], data.cell_type[cells], data, "real")
    real.obs_names = data.cell_ids[cells]
    io.write_h5ad(real, out)
    return {"pairs": len(pairs), "cells": int(real.n_obs)}
