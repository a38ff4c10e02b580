"""Normalise a dataset once, for every split of it.

``X`` becomes log1p(counts normalised to 10,000 per cell) and the counts move to
``layers['counts']``; data that is already log-normalised is kept as it is.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .spec import (
    BATCH,
    CELL_TYPE,
    COMPOUND,
    DOSE,
    PERTURBATION,
    PROFILES,
    SMILES,
    TIME,
    DatasetSpec,
    condition_labels,
    profiles_of,
)
from .validate import classify_scale, stats_of

log = logging.getLogger(__name__)

TARGET_SUM = 1e4  #: counts per cell after normalisation (scanpy's normalize_total(target_sum=1e4))


def _numbers(obs: pd.DataFrame, key: str | None) -> np.ndarray | None:
    return pd.to_numeric(obs[key], errors="coerce").to_numpy(dtype=np.float64) if key else None


def add_canonical_obs(adata: ad.AnnData, spec: DatasetSpec) -> None:
    """Copy the spec's columns to storm's canonical names as string categoricals. With a dose or
    time, ``perturbation`` is the condition (compound at dose and time) and the parts are kept
    as ``compound``, ``dose`` and ``time``; SMILES go to ``smiles``."""
    obs = adata.obs
    agent = obs[spec.perturbation_key].astype(str).to_numpy(dtype=object)
    dose, time = _numbers(obs, spec.dose_key), _numbers(obs, spec.time_key)
    obs[PERTURBATION] = pd.Categorical(condition_labels(agent, dose, time, spec.control_value))
    obs[CELL_TYPE] = pd.Categorical(obs[spec.cell_type_key].astype(str).to_numpy(dtype=object))
    if dose is not None or time is not None:
        obs[COMPOUND] = pd.Categorical(agent)
    for canonical, values in ((DOSE, dose), (TIME, time)):
        if values is not None:
            obs[canonical] = values
    if spec.smiles_key:
        obs[SMILES] = pd.Categorical(obs[spec.smiles_key].astype(str).to_numpy(dtype=object))
    batch = adata.obs[spec.batch_key].astype(str).to_numpy(dtype=object) if spec.batch_key else "batch0"
    adata.obs[BATCH] = pd.Categorical(np.broadcast_to(batch, adata.n_obs).astype(object))


def normalise(adata: ad.AnnData) -> str:
    """Log-normalise X in place; return the scale X had on input (decided as VALIDATE does)."""
    scale, reason = classify_scale(stats_of(adata.X, adata.obs_names, adata.var_names))
    log.info("X holds %s: %s", scale, reason)
    X = sp.csr_matrix(adata.X, dtype=np.float32)
    if scale == "counts":
        adata.layers["counts"] = X.copy()
        totals = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
        scale_by = np.where(totals > 0, TARGET_SUM / np.where(totals > 0, totals, 1), 1.0)  # empty cells stay 0
        X = sp.csr_matrix(sp.diags(scale_by.astype(np.float32)) @ X)
    elif scale == "normalised":
        log.warning("X is normalised but not logged; applying log1p (no counts layer)")
    else:
        log.info("X is already log-normalised; keeping it (no counts layer)")
    if scale != "log":
        X.data = np.log1p(X.data)
    adata.X = X
    return scale


def molecule_table(adata: ad.AnnData, spec: DatasetSpec, embeddings: Path | None = None) -> dict | None:
    """Features of every compound of the dataset (held-out ones too: a molecule is an input, not an
    answer), from an embedding table or featurised from the SMILES column; None for a screen
    without molecules. Stored as plain arrays so every model environment reads them."""
    if embeddings is None and not spec.smiles_key:
        return None
    from .chem.molecules import compound_features

    obs = adata.obs[~(adata.obs[spec.perturbation_key].astype(str) == spec.control_value).to_numpy()]
    compounds = sorted(obs[spec.perturbation_key].astype(str).unique())
    smiles = None
    if spec.smiles_key:
        smiles = obs.drop_duplicates(spec.perturbation_key).set_index(spec.perturbation_key)[spec.smiles_key]
        smiles.index = smiles.index.astype(str)
    features = compound_features(compounds, smiles=smiles, embeddings=embeddings)
    log.info("molecule features: %d compounds x %d (%s)", *features.shape,
             embeddings.name if embeddings else "RDKit, from SMILES")
    return {"compounds": np.asarray(compounds, dtype=object), "features": features.to_numpy(np.float32),
            "columns": np.asarray(features.columns.astype(str), dtype=object)}


def prepare(adata: ad.AnnData, spec: DatasetSpec, molecule_embeddings: Path | None = None) -> ad.AnnData:
    """Prepare a dataset for training: canonical obs columns, log-normalised X, counts kept.

    Writes ``obs['perturbation'|'cell_type'|'batch']`` (and a chemical screen's ``compound``,
    ``dose``, ``time``, ``smiles``), ``layers['counts']`` (for count input), ``uns['storm']`` (the
    spec, the input's scale, whether it holds cells or bulk profiles and, for compounds, their
    ``molecules`` features). Genes are chosen per split later, on each split's training cells
    (:mod:`storm.genes`).
    """
    molecules = molecule_table(adata, spec, molecule_embeddings)  # a bad SMILES fails before the work
    add_canonical_obs(adata, spec)
    profiles = profiles_of(adata.uns)
    scale = normalise(adata)
    adata.uns["storm"] = {"spec": spec.to_dict(), "input_scale": scale, PROFILES: profiles}
    if molecules is not None:
        adata.uns["storm"]["molecules"] = molecules
    return adata
