"""Predict held-out (cell type, perturbation) pairs from held-out controls (counterfactual).

For each pair of the evaluated split, as many control cells of that cell type and split as the
pair has real cells are drawn (with replacement, seeded) and passed through the model.
``pred.h5ad`` and ``real.h5ad`` hold those pairs plus the split's control cells of the same cell
types, over the same genes, with canonical obs columns and the spec in ``uns['storm']``.
Predictions are clipped at 0, as log-normalised expression is never negative.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from tqdm import tqdm

from . import io
from .data import PerturbationData, load_split_data
from .errors import InputError
from .spec import CELL_TYPE, PERTURBATION
from .train import load_model

log = logging.getLogger(__name__)


def _to_anndata(X: np.ndarray, perturbation: np.ndarray, cell_type: np.ndarray,
                data: PerturbationData, kind: str) -> ad.AnnData:
    obs = pd.DataFrame(
        {PERTURBATION: pd.Categorical(perturbation), CELL_TYPE: pd.Categorical(cell_type)},
        index=pd.Index([f"{kind}{i}" for i in range(len(perturbation))], dtype=object),
    )
    adata = ad.AnnData(X=X.astype(np.float32), obs=obs, var=pd.DataFrame(index=pd.Index(data.genes, dtype=object)))
    adata.uns["storm"] = {"spec": data.spec.to_dict()}
    return adata


def predict(prepared: str | os.PathLike, split_csv: str | os.PathLike, split_name: str,
            model_dir: str | os.PathLike, out_dir: str | os.PathLike, seed: int = 0,
            eval_split: str = "test") -> dict:
    """Write ``pred.h5ad`` and ``real.h5ad`` for the pairs of ``eval_split``; return a summary."""
    model, meta = load_model(model_dir)
    data = load_split_data(prepared, split_csv, split_name, obsm_keys=(model.input_key,) if model.input_key else (),
                           backed=bool(meta["config"].get("backed", False)))
    if data.genes.tolist() != meta["genes"]:
        raise InputError(f"the model in {model_dir} was trained on other genes than split '{split_name}' selects")

    held = data.mask(eval_split) & ~data.is_control
    pairs = sorted(set(zip(data.cell_type[held], data.perturbation[held])))
    if not pairs:
        raise InputError(f"split '{split_name}' has no perturbed cells in '{eval_split}'")
    rng = np.random.default_rng(seed)
    pred_X, pred_pert, pred_ct, real_idx, skipped = [], [], [], [], []
    for ct, pert in tqdm(pairs, desc="predict", unit="pair", disable=None):
        real = np.flatnonzero(data.mask(eval_split, cell_type=ct, perturbation=pert))
        pool = np.flatnonzero(data.mask(eval_split, cell_type=ct) & data.is_control)
        if pool.size == 0:
            skipped.append(f"{ct}/{pert}")
            continue
        controls = model.inputs(data, rng.choice(pool, size=real.size))
        # log-normalised expression is never negative, whatever a model's arithmetic says
        pred_X.append(np.clip(model.predict(controls, ct, pert), 0.0, None))
        pred_pert.append(np.full(real.size, pert, dtype=object))
        pred_ct.append(np.full(real.size, ct, dtype=object))
        real_idx.append(real)
    if skipped:
        log.warning("no %s controls for %d pair(s), not predicted: %s", eval_split, len(skipped), ", ".join(skipped))

    if not pred_X:
        raise InputError(f"no pair of split '{split_name}' can be predicted: no {eval_split} controls")

    # the controls of the cell types that have predicted pairs
    ctrl = np.flatnonzero(data.mask(eval_split) & data.is_control
                          & np.isin(data.cell_type, np.unique(np.concatenate(pred_ct))))
    real_idx = np.concatenate(real_idx + [ctrl])
    pred = _to_anndata(
        np.concatenate(pred_X + [data.rows(ctrl)]),
        np.concatenate(pred_pert + [data.perturbation[ctrl]]),
        np.concatenate(pred_ct + [data.cell_type[ctrl]]),
        data, "pred",
    )
    real = _to_anndata(data.rows(real_idx), data.perturbation[real_idx], data.cell_type[real_idx], data, "real")
    real.obs_names = data.cell_ids[real_idx]
    out = Path(out_dir)
    io.write_h5ad(pred, out / "pred.h5ad")
    io.write_h5ad(real, out / "real.h5ad")
    return {"pairs": len(pairs) - len(skipped), "skipped": skipped, "cells": int(pred.n_obs)}
