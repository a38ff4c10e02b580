"""Normalise a dataset once, for every split of it.

``X`` becomes log1p(counts normalised to 10,000 per cell) and the counts move to
``layers['counts']``; data that is already log-normalised is kept as it is. Normalisation is per
cell, so :func:`prepare_file` does it a block of rows at a time: its memory is the obs table and
one block, whatever the number of cells.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm import tqdm

from . import io, shards
from .rowblocks import read_blocks, write_h5ad_rows
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
from .validate import classify_scale, scan_values, stats_of

log = logging.getLogger(__name__)

TARGET_SUM = 1e4  #: counts per cell after normalisation (scanpy's normalize_total(target_sum=1e4))


def _numbers(obs: pd.DataFrame, key: str | None) -> np.ndarray | None:
    return pd.to_numeric(obs[key], errors="coerce").to_numpy(dtype=np.float64) if key else None


def add_canonical_obs(obs: pd.DataFrame, spec: DatasetSpec) -> None:
    """Copy the spec's columns to storm's canonical names as string categoricals. With a dose or
    time, ``perturbation`` is the condition (compound at dose and time) and the parts are kept
    as ``compound``, ``dose`` and ``time``; SMILES go to ``smiles``."""
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
    batch = obs[spec.batch_key].astype(str).to_numpy(dtype=object) if spec.batch_key else "batch0"
    obs[BATCH] = pd.Categorical(np.broadcast_to(batch, len(obs)).astype(object))


def normalise_block(block: sp.spmatrix, scale: str) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """(log-normalised rows, their counts or None) of a block of whole rows on the input ``scale``."""
    X = sp.csr_matrix(block, dtype=np.float32)
    counts = None
    if scale == "counts":
        counts = X.copy()
        totals = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
        scale_by = np.where(totals > 0, TARGET_SUM / np.where(totals > 0, totals, 1), 1.0)  # empty cells stay 0
        X = sp.csr_matrix(sp.diags(scale_by.astype(np.float32)) @ X)
    if scale != "log":
        X.data = np.log1p(X.data)
    return X, counts


def _log_scale(scale: str, reason: str) -> None:
    log.info("X holds %s: %s", scale, reason)
    if scale == "normalised":
        log.warning("X is normalised but not logged; applying log1p (no counts layer)")
    elif scale == "log":
        log.info("X is already log-normalised; keeping it (no counts layer)")


def normalise(adata: ad.AnnData) -> str:
    """Log-normalise X in place; return the scale X had on input (decided as VALIDATE does)."""
    scale, reason = classify_scale(stats_of(adata.X, adata.obs_names, adata.var_names))
    _log_scale(scale, reason)
    adata.X, counts = normalise_block(adata.X, scale)
    if counts is not None:
        adata.layers["counts"] = counts
    return scale


def molecule_table(obs: pd.DataFrame, spec: DatasetSpec, embeddings: Path | None = None) -> dict | None:
    """Features of every compound of the dataset (held-out ones too: a molecule is an input, not an
    answer), from an embedding table or featurised from the SMILES column; None for a screen
    without molecules. Stored as plain arrays so every model environment reads them."""
    if embeddings is None and not spec.smiles_key:
        return None
    from .chem.molecules import compound_features

    obs = obs[~(obs[spec.perturbation_key].astype(str) == spec.control_value).to_numpy()]
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


def _storm_uns(uns: dict, spec: DatasetSpec, scale: str, molecules: dict | None) -> dict:
    """``uns`` with ``uns['storm']``: the spec, the input's scale, cells or bulk, the molecules."""
    storm = {"spec": spec.to_dict(), "input_scale": scale, PROFILES: profiles_of(uns)}
    if molecules is not None:
        storm["molecules"] = molecules
    return {**uns, "storm": storm}


def prepare(adata: ad.AnnData, spec: DatasetSpec, molecule_embeddings: Path | None = None) -> ad.AnnData:
    """Prepare a dataset in memory (:func:`prepare_file` does the same by row blocks): canonical
    obs columns, log-normalised X, counts kept.

    Writes ``obs['perturbation'|'cell_type'|'batch']`` (and a chemical screen's ``compound``,
    ``dose``, ``time``, ``smiles``), ``layers['counts']`` (for count input), ``uns['storm']`` (the
    spec, the input's scale, whether it holds cells or bulk profiles and, for compounds, their
    ``molecules`` features). Genes are chosen per split later, on each split's training cells
    (:mod:`storm.genes`).
    """
    molecules = molecule_table(adata.obs, spec, molecule_embeddings)  # a bad SMILES fails before the work
    add_canonical_obs(adata.obs, spec)
    scale = normalise(adata)
    adata.uns = _storm_uns(dict(adata.uns), spec, scale, molecules)
    return adata


def _kept_elements(f: h5py.File, scale: str) -> tuple[str, ...]:
    """The input's layers, embeddings and graphs, carried over as they are (a counts layer is
    replaced by X's counts when X holds them)."""
    kept = []
    for group in ("layers", "obsm", "varm", "obsp", "varp"):
        if group in f:
            kept += [f"{group}/{name}" for name in f[group]
                     if not (group == "layers" and name == "counts" and scale == "counts")]
    return tuple(kept)


def prepare_file(path: str | os.PathLike, out: str | os.PathLike, spec: DatasetSpec,
                 molecule_embeddings: Path | None = None, scale: str | None = None, dataset=None) -> str:
    """:func:`prepare` from file to file, a block of rows at a time; ``scale`` is the one VALIDATE
    recorded in ``qc.json`` (without it, X is scanned for it first). ``path`` may be one shard of
    a ``dataset`` (its shards' paths): its compounds are then the whole dataset's, so every shard
    carries the same molecule table. Returns the input's scale."""
    obs = io.read_obs(path)
    compounds = shards.read_obs(dataset) if dataset and (molecule_embeddings or spec.smiles_key) else obs
    molecules = molecule_table(compounds, spec, molecule_embeddings)  # a bad SMILES fails before the work
    add_canonical_obs(obs, spec)
    with h5py.File(path, "r") as f:  # read_obs found and verified it
        var = io.read_elem(f["var"])
        if scale is None:
            scale, reason = classify_scale(scan_values(path, obs.index, var.index))
        else:
            reason = "as VALIDATE recorded"
        _log_scale(scale, reason)
        uns = _storm_uns(io.read_elem(f["uns"]) if "uns" in f else {}, spec, scale, molecules)
        with write_h5ad_rows(out, obs, var, uns, copy_from=f, copy=_kept_elements(f, scale)) as rows, \
                tqdm(total=len(obs), desc="prepare", unit="cell", unit_scale=True, disable=None) as progress:
            X = rows.matrix("X", len(var))
            counts = rows.matrix("layers/counts", len(var)) if scale == "counts" else None
            for _, block in read_blocks(f["X"]):
                normalised, block_counts = normalise_block(block, scale)
                X.append(normalised)
                if counts is not None:
                    counts.append(block_counts)
                progress.update(block.shape[0])
    return scale
