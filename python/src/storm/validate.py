"""Check a dataset against its spec before any expensive step runs.

Everything is read: obs and var in full, X in chunks of rows (bounded memory, a progress bar on
long files). Each problem is one line that says what is wrong, where (the first offending cell or
gene) and how to fix it. What storm decides about the data (counts or log-normalised, and why)
goes into ``qc.json``; ``storm prepare`` decides the same way (:func:`classify_scale`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from . import io
from .errors import InputError, SpecError
from .spec import CONDITION_SEPARATOR, DatasetSpec

log = logging.getLogger(__name__)

LOG_MAX = 30.0  #: log1p of normalised counts stays far below this; raw counts rarely do
#: below this share of fractional nonzero values, data is counts with a few stray values (an error)
COUNTS_FRACTIONAL_SHARE = 0.01
IMPLAUSIBLE = 1e8  #: no expression value (count, normalised or log) is this large
CHUNK_VALUES = 32 << 20  #: stored values read at a time


def _first(values: pd.Index | np.ndarray, mask: np.ndarray) -> str:
    return repr(str(np.asarray(values)[np.flatnonzero(mask)[0]]))


def check_names(names: pd.Index, what: str, axis: str) -> None:
    """Names must be non-empty and unique (cells are joined to splits by name, genes to models)."""
    text = pd.Index(names.astype(str))
    empty = np.asarray(text.str.strip() == "")
    if empty.any():
        raise InputError(f"{int(empty.sum())} {what} name(s) are empty, e.g. the {what} at position "
                         f"{int(np.flatnonzero(empty)[0])}; give every {what} a name ({axis}_names)")
    dup = np.asarray(text.duplicated())
    if dup.any():
        raise InputError(f"{int(dup.sum())} {what} name(s) are repeated, e.g. {_first(text, dup)}; "
                         f"make them unique (e.g. adata.{axis}_names_make_unique())")


def _labels(obs: pd.DataFrame, column: str) -> pd.Series:
    values = obs[column]
    n_null = int(values.isna().sum())
    if n_null:
        raise SpecError(f"obs column '{column}' has {n_null} empty value(s), e.g. cell "
                        f"{_first(obs.index, values.isna())}; fill or drop those cells")
    text = values.astype(str)
    blank = (text.str.strip() == "").to_numpy()
    if blank.any():
        raise SpecError(f"obs column '{column}' has {int(blank.sum())} blank label(s), e.g. cell "
                        f"{_first(obs.index, blank)}; label those cells or drop them")
    return text


def check_perturbations(pert: pd.Series, spec: DatasetSpec) -> None:
    """Labels that differ only by surrounding white space, malformed combinations."""
    labels = pd.Series(pert.unique())
    stripped = labels.str.strip()
    clash = stripped.duplicated(keep=False) | ((stripped == spec.control_value) & (labels != spec.control_value))
    if clash.any():
        bad = sorted(labels[clash & (labels != stripped)])
        raise SpecError(f"perturbation label {bad[0]!r} differs from {bad[0].strip()!r} only by surrounding white "
                        f"space ({int(pert.isin(bad).sum())} cells); strip the labels")
    sep = spec.combo_delimiter
    for label in labels[labels.str.contains(sep, regex=False)]:
        parts = label.split(sep)
        if any(not p.strip() for p in parts):
            raise SpecError(f"combination {label!r} has an empty part; write combinations as A{sep}B")
        if len(set(parts)) < len(parts):
            raise SpecError(f"combination {label!r} repeats a perturbation; write each one once")
        if spec.control_value in parts:
            raise SpecError(f"combination {label!r} includes the control value; a single perturbation is written "
                            f"alone (e.g. {next(p for p in parts if p != spec.control_value)!r})")


def check_obs(obs: pd.DataFrame, spec: DatasetSpec) -> dict:
    """Check the obs table against the spec and summarise it.

    Raises
    ------
    SpecError
        a named column is missing or holds empty values, labels clash, the control value is
        absent, or a cell type has no control cells.
    InputError
        the table is empty or there is no perturbed cell.

    Returns
    -------
    dict with the counts that go into ``qc.json``.
    """
    if obs.shape[0] == 0:
        raise InputError("the dataset has no cells")
    missing = [c for c in spec.columns() if c not in obs.columns]
    if missing:
        available = ", ".join(map(str, obs.columns[:20])) or "(none)"
        raise SpecError(f"obs column(s) {', '.join(missing)} not found; available columns: {available}")
    check_names(obs.index, "cell", "obs")
    pert = _labels(obs, spec.perturbation_key)
    cell_type = _labels(obs, spec.cell_type_key)
    if spec.batch_key:
        _labels(obs, spec.batch_key)
    check_perturbations(pert, spec)
    is_control = (pert == spec.control_value).to_numpy()
    if not is_control.any():
        values = ", ".join(sorted(pert.unique())[:10])
        raise SpecError(f"control value '{spec.control_value}' not found in obs column '{spec.perturbation_key}' "
                        f"(values include: {values}); set --control_value")
    if is_control.all():
        raise InputError("every cell is a control: there is no perturbation to model")
    without = sorted(set(cell_type) - set(cell_type[is_control]))
    if without:
        raise SpecError(f"cell type(s) {', '.join(without)} have no control cells ('{spec.control_value}'); "
                        f"counterfactual prediction needs controls in every cell type")
    if spec.dose_key or spec.time_key:
        named = pert[pert.str.contains(CONDITION_SEPARATOR, regex=False)]
        if len(named):
            raise SpecError(f"perturbation '{named.iloc[0]}' holds '{CONDITION_SEPARATOR}', which storm uses to join "
                            f"a compound with its dose and time; rename it")
    for key in (spec.dose_key, spec.time_key):
        if key:
            numeric = pd.to_numeric(obs[key], errors="coerce")
            bad = (numeric.isna() & obs[key].notna()).to_numpy() | (numeric < 0).to_numpy()
            if bad.any():
                raise SpecError(f"obs column '{key}' must hold non-negative numbers; cell {_first(obs.index, bad)} "
                                f"has {obs[key].iloc[int(np.flatnonzero(bad)[0])]!r}")
    if spec.smiles_key:
        smiles = obs[spec.smiles_key]
        bad = ~is_control & (smiles.isna() | (smiles.astype(str).str.strip() == "")).to_numpy()
        if bad.any():
            raise SpecError(f"obs column '{spec.smiles_key}' has no SMILES for {int(bad.sum())} perturbed cell(s), "
                            f"e.g. {_first(obs.index, bad)}")
    perts = pert[~is_control]
    combos = perts[perts.str.contains(spec.combo_delimiter, regex=False)]
    return {
        "n_cells": int(obs.shape[0]),
        "n_control_cells": int(is_control.sum()),
        "n_perturbations": int(perts.nunique()),
        "n_combinations": int(combos.nunique()),
        "n_cell_types": int(cell_type.nunique()),
        "n_batches": int(obs[spec.batch_key].nunique()) if spec.batch_key else 1,
        "cells_per_cell_type": cell_type.value_counts().sort_index().to_dict(),
    }


@dataclass
class ValueStats:
    """What X's stored values say about the data, gathered chunk by chunk."""

    n_values: int = 0
    n_nonzero: int = 0
    n_fractional: int = 0
    max_value: float = 0.0
    total: float = 0.0
    empty_cells: int = 0
    first_fractional: tuple[int, int, float] | None = None
    problems: list[str] = field(default_factory=list)

    def add(self, values: np.ndarray, cell_of, gene_of) -> None:
        """Take a chunk of stored values; ``cell_of(i)``/``gene_of(i)`` locate its ``i``-th value."""
        if values.size == 0:
            return
        values = values.astype(np.float64, copy=False)
        finite = np.isfinite(values)
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            raise InputError(f"X holds NaN or infinite values, the first at cell {cell_of(i)}, gene {gene_of(i)}; "
                             f"remove or impute them")
        if values.min() < 0:
            i = int(np.argmax(values < 0))
            raise InputError(f"X holds negative values (e.g. {values[i]:g} at cell {cell_of(i)}, gene {gene_of(i)}); "
                             f"storm expects counts or log-normalised expression, not scaled or centred data")
        if values.max() >= IMPLAUSIBLE:
            i = int(np.argmax(values))
            raise InputError(f"X holds an implausibly large value ({values[i]:g} at cell {cell_of(i)}, gene "
                             f"{gene_of(i)}); a corrupt entry? expression values stay below {IMPLAUSIBLE:g}")
        fractional = np.mod(values, 1) != 0
        if fractional.any() and self.first_fractional is None:
            i = int(np.argmax(fractional))
            self.first_fractional = (cell_of(i), gene_of(i), float(values[i]))
        self.n_values += values.size
        self.n_nonzero += int(np.count_nonzero(values))
        self.n_fractional += int(fractional.sum())
        self.max_value = max(self.max_value, float(values.max()))
        self.total += float(values.sum())


def classify_scale(stats: ValueStats) -> tuple[str, str]:
    """('counts' | 'log' | 'normalised', why). Integer data is counts; fractional data at most
    ``LOG_MAX`` is log-normalised; fractional data above it is normalised but not logged. Nonzero
    values almost all whole are counts whatever their maximum (log-normalised data has almost no
    whole nonzero value), so counts with a few fractional values are ambiguous and an error: storm
    would skip normalisation."""
    if stats.n_fractional == 0:
        return "counts", "every stored value is an integer"
    share = stats.n_fractional / max(stats.n_nonzero, 1)
    if share < COUNTS_FRACTIONAL_SHARE:
        cell, gene, value = stats.first_fractional
        raise InputError(f"X looks like counts but {stats.n_fractional} value(s) are fractional (e.g. {value:g} at "
                         f"cell {cell}, gene {gene}); round them, or store log-normalised data in X")
    if stats.max_value <= LOG_MAX:
        return "log", (f"nonzero values are fractional ({share:.0%}) and at most {stats.max_value:.3g} "
                       f"(<= {LOG_MAX:g})")
    return "normalised", (f"nonzero values are fractional ({share:.0%}) and reach {stats.max_value:.3g}: "
                          f"normalised, not logged")


def stats_of(X, obs_names: pd.Index, var_names: pd.Index) -> ValueStats:
    """:class:`ValueStats` of an in-memory matrix (dense or sparse)."""
    import scipy.sparse as sp

    stats = ValueStats()
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        stats.add(X.data, lambda i: obs_names[rows[i]], lambda i: var_names[X.indices[i]])
        stats.empty_cells = int((np.diff(X.indptr) == 0).sum())
    else:
        X = np.asarray(X)
        stats.add(X.ravel(), lambda i: obs_names[i // X.shape[1]], lambda i: var_names[i % X.shape[1]])
        stats.empty_cells = int((X.sum(axis=1) == 0).sum())
    return stats


def _scan_sparse(group: h5py.Group, obs_names: np.ndarray, var_names: np.ndarray, csr: bool) -> ValueStats:
    stats = ValueStats()
    indptr = group["indptr"]
    data, indices = group["data"], group["indices"]
    major_names, minor_names = (obs_names, var_names) if csr else (var_names, obs_names)
    with tqdm(total=data.shape[0], desc="validate X", unit="value", unit_scale=True, disable=None) as progress:
        for start in range(0, data.shape[0], CHUNK_VALUES):
            block = data[start:start + CHUNK_VALUES]

            def locate(i, start=start):
                position = start + i
                major = int(np.searchsorted(indptr[:], position, side="right") - 1)
                return major_names[major], minor_names[int(indices[position])]

            stats.add(block, lambda i: locate(i)[0 if csr else 1], lambda i: locate(i)[1 if csr else 0])
            progress.update(block.size)
    if csr:
        for start in range(0, len(obs_names), CHUNK_VALUES):
            stats.empty_cells += int((np.diff(indptr[start:start + CHUNK_VALUES + 1]) == 0).sum())
    return stats


def _scan_dense(dataset: h5py.Dataset, obs_names: np.ndarray, var_names: np.ndarray) -> ValueStats:
    stats = ValueStats()
    n_obs, n_vars = dataset.shape
    step = max(1, CHUNK_VALUES // max(n_vars, 1))
    for start in tqdm(range(0, n_obs, step), desc="validate X", unit="chunk", disable=None):
        block = dataset[start:start + step]
        stats.add(block.ravel(), lambda i, s=start: obs_names[s + i // n_vars], lambda i: var_names[i % n_vars])
        stats.empty_cells += int((block.sum(axis=1) == 0).sum())
    return stats


def scan_values(path: str | os.PathLike, obs_names: pd.Index, var_names: pd.Index) -> ValueStats:
    """Read every value of X in chunks; raise on the first bad one."""
    with h5py.File(path, "r") as f:
        if "X" not in f:
            layers = ", ".join(f["layers"]) if "layers" in f else "none"
            raise InputError(f"{path} has no X matrix (layers: {layers}); storm reads expression from X")
        x = f["X"]
        shape = tuple(int(v) for v in (x.attrs["shape"] if isinstance(x, h5py.Group) else x.shape))
        if len(shape) != 2 or shape != (len(obs_names), len(var_names)):
            raise InputError(f"X of {path} has shape {shape}, but obs has {len(obs_names)} cells and var "
                             f"{len(var_names)} genes; they must agree")
        names = (np.asarray(obs_names.astype(str)), np.asarray(var_names.astype(str)))
        if isinstance(x, h5py.Dataset):
            return _scan_dense(x, *names)
        encoding = x.attrs.get("encoding-type", "")
        if encoding not in ("csr_matrix", "csc_matrix"):
            raise InputError(f"X of {path} is stored as '{encoding}'; storm reads dense, CSR or CSC matrices")
        return _scan_sparse(x, *names, csr=encoding == "csr_matrix")


def _read_var_names(path: Path) -> pd.Index:
    try:
        with h5py.File(path, "r") as f:
            if "var" not in f:
                raise InputError(f"{path} has no var table (genes)")
            var = ad.io.read_elem(f["var"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read the var table of {path}: {exc}") from exc
    if not isinstance(var, pd.DataFrame):
        raise InputError(f"the var of {path} is not a table")
    return var.index


def _check_embedding(path: Path, key: str, n_obs: int) -> None:
    with h5py.File(path, "r") as f:
        if "obsm" not in f or key not in f["obsm"]:
            held = ", ".join(f["obsm"]) if "obsm" in f else "nothing"
            raise SpecError(f"embedding '{key}' (embed_key) is not in obsm; obsm holds: {held}")
        emb = f["obsm"][key]
        if not isinstance(emb, h5py.Dataset) or emb.ndim != 2 or emb.shape[0] != n_obs:
            raise SpecError(f"obsm['{key}'] must be a cells x dimensions array with {n_obs} rows")
        for start in range(0, n_obs, 1 << 16):
            if not np.isfinite(emb[start:start + (1 << 16)]).all():
                raise SpecError(f"obsm['{key}'] holds NaN or infinite values (rows from {start}); fix the embedding")


def validate(path: str | os.PathLike, spec: DatasetSpec) -> dict:
    """Validate a dataset file against its spec; return the QC summary for ``qc.json``."""
    path = Path(path)
    obs = io.read_obs(path)
    qc = check_obs(obs, spec)
    var_names = _read_var_names(path)
    if len(var_names) == 0:
        raise InputError(f"{path} has no genes")
    check_names(var_names, "gene", "var")
    stats = scan_values(path, obs.index, var_names)
    if stats.total == 0:
        raise InputError(f"X of {path} is all zeros; there is no expression to model")
    if spec.embed_key:
        _check_embedding(path, spec.embed_key, len(obs))
    scale, reason = classify_scale(stats)
    if stats.empty_cells:
        log.warning("%d cell(s) have no expressed gene; they stay, as zeros", stats.empty_cells)
    qc.update({"n_genes": len(var_names), "spec": spec.to_dict(), "scale": scale, "scale_reason": reason,
               "max_value": stats.max_value, "n_empty_cells": stats.empty_cells})
    log.info("%s: %d cells, %d genes, %d perturbations, %d cell types; X: %s (%s)",
             path, qc["n_cells"], len(var_names), qc["n_perturbations"], qc["n_cell_types"], scale, reason)
    return qc


def combine(shards: list[dict]) -> dict:
    """The qc of a sharded dataset from its shards' ``qc.json``: counts summed, the genes and the
    scale every shard must share. Perturbations are counted per shard (the labels are not in
    qc.json): the dataset's count is taken as the largest shard's."""
    first = shards[0]
    for key, what in (("n_genes", "genes"), ("scale", "X's scale")):
        other = next((qc for qc in shards if qc[key] != first[key]), None)
        if other is not None:
            raise InputError(f"shard {other['dataset']} has other {what} ({other[key]}) than shard "
                             f"{first['dataset']} ({first[key]}); a dataset's shards share them")
    per_cell_type: dict[str, int] = {}
    for qc in shards:
        for cell_type, n in qc["cells_per_cell_type"].items():
            per_cell_type[cell_type] = per_cell_type.get(cell_type, 0) + n
    summed = {key: sum(qc[key] for qc in shards) for key in ("n_cells", "n_control_cells", "n_empty_cells")}
    largest = {key: max(qc[key] for qc in shards) for key in ("n_perturbations", "n_combinations", "n_batches",
                                                               "max_value")}
    return {**first, **summed, **largest, "n_cell_types": len(per_cell_type), "cells_per_cell_type": per_cell_type,
            "shards": [{"dataset": qc["dataset"], "n_cells": qc["n_cells"]} for qc in shards]}
