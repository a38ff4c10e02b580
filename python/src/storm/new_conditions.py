"""Predictions for conditions no one measured.

A lab that has chosen its model asks it about cell types, perturbations, doses and times it has
not screened: a conditions table (``cell_type``, ``perturbation``, and ``dose``/``time`` where the
dataset has them). Each condition is predicted from controls of its cell type (those of the
evaluated split when it has some, else all of them: a model trained on every cell has no held-out
controls), drawn exactly as PREDICT draws a held-out pair's, so a pair the benchmark held out and
then requested here gets the benchmark's prediction. With one model per seed, the predicted mean
change per gene is averaged over seeds with its spread. Conditions unlike anything in training (a
cell type never perturbed, a perturbation or compound never trained, a dose outside the trained
range) are flagged; one a model cannot represent at all stops the request before any prediction.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import io
from .data import PerturbationData, load_split_data
from .errors import InputError
from .metrics import CELLS_PER_PAIR, CONTROLS_PER_CELL_TYPE
from .predict import SCORED_CELLS_SEED, _at_most, _obs, draw_controls
from .rowblocks import write_h5ad_rows
from .spec import CELL_TYPE, DOSE, PERTURBATION, PROFILES, TIME, DatasetSpec, condition_labels, parse_condition
from .train import load_model

log = logging.getLogger(__name__)

#: the genes named per condition as most up- and down-regulated
TOP_GENES = 10
SEED = "seed"
#: a conditions table's optional column naming the dataset a row asks (a run of several datasets)
DATASET = "dataset"


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A conditions table as text, with the columns it needs; every mistake is an InputError."""
    try:
        table = pd.read_csv(io.require_file(path, "conditions table"), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a readable CSV: {exc}") from exc
    missing = [c for c in (CELL_TYPE, PERTURBATION) if c not in table.columns]
    if missing:
        raise InputError(f"{path}: no column {', '.join(missing)}; a conditions table has cell_type, perturbation "
                         f"and, where the dataset has them, dose and time")
    if table.empty:
        raise InputError(f"{path} names no condition")
    return table


def read_conditions(path: str | os.PathLike, spec: DatasetSpec, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The requested conditions as (cell_type, perturbation) rows, the perturbation a condition
    label with its dose and time where the dataset has them; every mistake is an InputError."""
    table = read_table(path) if table is None else table
    numbers = {}
    for column, key in ((DOSE, spec.dose_key), (TIME, spec.time_key)):
        if column in table.columns and not key:
            raise InputError(f"{path}: column {column}, but the dataset has no {column} (its spec's {column}_key)")
        if key:
            if column not in table.columns:
                raise InputError(f"{path}: the dataset's conditions have a {column}: add a {column} column")
            values = pd.to_numeric(table[column], errors="coerce")
            if values.isna().any():
                raise InputError(f"{path}: {column} '{table[column][values.isna()].iloc[0]}' is not a number")
            numbers[column] = values.to_numpy(float)
    labels = condition_labels(table[PERTURBATION].to_numpy(), numbers.get(DOSE), numbers.get(TIME),
                              spec.control_value)
    conditions = pd.DataFrame({CELL_TYPE: table[CELL_TYPE].to_numpy(), PERTURBATION: labels})
    if (conditions[PERTURBATION] == spec.control_value).any():
        raise InputError(f"{path}: '{spec.control_value}' is the control, not a condition to predict")
    repeated = conditions.duplicated()
    if repeated.any():
        row = conditions[repeated].iloc[0]
        raise InputError(f"{path}: condition {row[CELL_TYPE]}/{row[PERTURBATION]} is requested twice")
    return conditions


def requested_conditions(path: str | os.PathLike, dataset, spec: DatasetSpec, dataset_id: str,
                         molecules: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """CHECK's reading of ``--predict_conditions`` for one dataset, before anything trains: the
    table's rows for it (all rows, or those its ``dataset`` column gives this dataset's id) and,
    of those, the conditions the data measures, as a manual holdout (split test): the models for
    new conditions train on every other cell, so a measured condition's prediction stays a
    prediction. Stops on the first condition no model trained on this data could predict: a cell
    type without controls, a perturbation never measured outside the requested conditions (with
    ``molecules``, a compound the dataset has no molecule features for)."""
    from .split.obs import read_split_obs

    table = read_table(path)
    if DATASET in table.columns:
        table = table[table[DATASET] == dataset_id].drop(columns=DATASET)
    if table.empty:
        return table, pd.DataFrame(columns=["split", CELL_TYPE, PERTURBATION])
    conditions = read_conditions(path, spec, table)
    obs = read_split_obs(dataset, spec, [spec.cell_type_key])
    cell_type, pert = obs.columns[spec.cell_type_key], obs.columns[spec.perturbation_key]
    # the measured (cell type, condition) pairs: a count per pair, not a sort of every cell
    n_pert = len(pert.categories)
    codes = np.flatnonzero(np.bincount(cell_type.codes.astype(np.int64) * n_pert + pert.codes,
                                       minlength=len(cell_type.categories) * n_pert))
    measured = pd.DataFrame({CELL_TYPE: cell_type.categories[codes // n_pert],
                             PERTURBATION: pert.categories[codes % n_pert]})
    is_control = measured[PERTURBATION] == spec.control_value
    with_controls = set(measured.loc[is_control, CELL_TYPE])
    asked = set(zip(conditions[CELL_TYPE], conditions[PERTURBATION]))
    perturbed = measured[~is_control]
    held = np.array([pair in asked for pair in zip(perturbed[CELL_TYPE], perturbed[PERTURBATION])], dtype=bool)
    trained = {s for label in perturbed.loc[~held, PERTURBATION]
               for s in spec.singles(parse_condition(label)[0])}
    compounds = {parse_condition(label)[0] for label in perturbed[PERTURBATION]}
    for ct, label in zip(conditions[CELL_TYPE], conditions[PERTURBATION]):
        where = f"{path}: condition {ct}/{label}"
        if ct not in with_controls:
            known = set(measured[CELL_TYPE])
            raise InputError(f"{where}: cell type '{ct}' " + ("has no control cells to start from" if ct in known else
                                                              f"is not in the data (it has {_some(known)})"))
        compound = parse_condition(label)[0]
        if molecules:
            if compound not in compounds:
                raise InputError(f"{where}: compound '{compound}' is not in the dataset, so storm has no molecule "
                                 f"features for it (its SMILES or its --molecule_embeddings row)")
            continue
        unseen = [s for s in spec.singles(compound) if s not in trained]
        if unseen:
            raise InputError(f"{where}: perturbation '{unseen[0]}' is never measured outside the requested conditions, "
                             f"so no model trained on this data can represent it")
    holdout = perturbed.loc[held, [CELL_TYPE, PERTURBATION]]
    log.info("%d condition(s) requested of %s; %d of them measured, held out of training", len(conditions),
             dataset_id, len(holdout))
    return table, holdout.assign(split="test")[["split", CELL_TYPE, PERTURBATION]]


def _some(values, n: int = 5) -> str:
    values = sorted(values)
    return ", ".join(values[:n]) + (f" and {len(values) - n} more" if len(values) > n else "")


def control_pools(data: PerturbationData, cell_types, eval_split: str) -> dict[str, np.ndarray]:
    """Per cell type, the controls its conditions start from: those of ``eval_split`` when it has
    some, else all of them (at most ``CONTROLS_PER_CELL_TYPE``, a seeded draw, as PREDICT takes)."""
    rng = np.random.default_rng(SCORED_CELLS_SEED)
    pools = {}
    for ct in sorted(set(cell_types)):
        controls = data.is_control & (data.cell_type == ct)
        in_split = np.flatnonzero(controls & data.mask(eval_split))
        pools[ct] = _at_most(in_split if in_split.size else np.flatnonzero(controls), CONTROLS_PER_CELL_TYPE, rng)
    return pools


def check_conditions(conditions: pd.DataFrame, models: list, pools: dict[str, np.ndarray]) -> None:
    """Stop on the first condition that cannot be predicted, naming it and why."""
    for ct, pert in zip(conditions[CELL_TYPE], conditions[PERTURBATION]):
        if not pools[ct].size:
            raise InputError(f"condition {ct}/{pert}: cell type '{ct}' has no control cells in the data to start "
                             f"from")
        for model in models:
            reason = model.unrepresentable(ct, pert)
            if reason:
                raise InputError(f"condition {ct}/{pert}: {reason}")


def novelty(conditions: pd.DataFrame, data: PerturbationData) -> list[str]:
    """Per condition, how it differs from everything trained on ('' when it does not)."""
    trained = data.mask("train") & ~data.is_control
    perturbed_types = set(data.cell_type[trained])
    parsed = [parse_condition(label) for label in np.unique(data.perturbation[trained])]
    singles = {s for compound, _, _ in parsed for s in data.spec.singles(compound)}
    doses: dict[str, list[float]] = {}
    for compound, dose, _ in parsed:
        if dose is not None:
            doses.setdefault(compound, []).append(dose)
    flags = []
    for ct, label in zip(conditions[CELL_TYPE], conditions[PERTURBATION]):
        compound, dose, _ = parse_condition(label)
        found = []
        if ct not in perturbed_types:
            found.append("cell type never perturbed in training")
        unseen = [s for s in data.spec.singles(compound) if s not in singles]
        if unseen:
            found.append(f"{unseen[0]} never trained")
        elif dose is not None and compound in doses and not min(doses[compound]) <= dose <= max(doses[compound]):
            found.append(f"dose {dose:g} outside the trained {min(doses[compound]):g}-{max(doses[compound]):g}")
        flags.append("; ".join(found))
    return flags


def predict_conditions(prepared, split_csv, genes_csv, model_dirs: list[str | os.PathLike],
                       conditions_csv: str | os.PathLike, out: str | os.PathLike, eval_split: str = "test",
                       n_cells: int = CELLS_PER_PAIR) -> pd.DataFrame:
    """Write ``out`` (h5ad: each model's predicted cells per condition, obs ``seed``; ``varm``
    ``mean_change`` and ``change_sd``, genes x conditions, over the models) and the CSV beside it
    (a row per condition: its top up- and down-regulated genes, flags); return that table."""
    loaded = [load_model(d) for d in model_dirs]
    names = {meta["model"] for _, meta in loaded}
    if len(names) > 1:
        raise InputError(f"the model folders hold different models ({', '.join(sorted(names))}): give one model's "
                         f"seeds")
    keys = tuple({m.input_key for m, _ in loaded if m.input_key})
    data = load_split_data(prepared, split_csv, genes_csv, obsm_keys=keys, backed=True)
    for model_dir, (_, meta) in zip(model_dirs, loaded):
        if meta["genes"] != data.genes.tolist():
            raise InputError(f"the model in {model_dir} was trained on other genes than {genes_csv} lists")
    conditions = read_conditions(conditions_csv, data.spec)
    pools = control_pools(data, conditions[CELL_TYPE], eval_split)
    check_conditions(conditions, [m for m, _ in loaded], pools)
    pairs = list(zip(conditions[CELL_TYPE], conditions[PERTURBATION]))
    control_means = {ct: data.rows(pool).mean(axis=0) for ct, pool in pools.items()}
    changes = np.zeros((len(loaded), len(pairs), len(data.genes)))

    def predicted():
        for m, (model, meta) in enumerate(loaded):
            for c, (ct, pert) in enumerate(pairs):
                cells = np.clip(model.predict(model.inputs(data, draw_controls(pools[ct], n_cells, meta["seed"], ct,
                                                                                   pert)), ct, pert), 0.0, None)
                changes[m, c] = cells.mean(axis=0) - control_means[ct]
                yield cells

    seeds = [meta["seed"] for _, meta in loaded]
    obs = _obs(np.tile(np.repeat(conditions[PERTURBATION].to_numpy(), n_cells), len(loaded)),
               np.tile(np.repeat(conditions[CELL_TYPE].to_numpy(), n_cells), len(loaded)),
               np.array([f"new{i}" for i in range(len(loaded) * len(pairs) * n_cells)], dtype=object))
    obs[SEED] = np.repeat(seeds, len(pairs) * n_cells)
    uns = {"storm": {"spec": data.spec.to_dict(), PROFILES: data.profiles},
           "conditions": np.asarray([f"{ct}/{pert}" for ct, pert in pairs], dtype=object)}
    with write_h5ad_rows(out, obs, pd.DataFrame(index=pd.Index(data.genes, dtype=object)), uns) as rows:
        X = rows.matrix("X", len(data.genes), dense=True)
        for block in predicted():
            X.append(block.astype(np.float32, copy=False))
        # over the models (seeds): genes x conditions, in uns['conditions'] order
        mean = changes.mean(axis=0)
        io.write_elem(rows.file, "varm/mean_change", mean.T.astype(np.float32))
        io.write_elem(rows.file, "varm/change_sd", changes.std(axis=0).T.astype(np.float32))
    table = conditions.assign(dataset=loaded[0][1].get("dataset", ""), model=names.pop(), seeds=len(loaded),
                              n_cells=n_cells,
                              top_up=[_top(row, data.genes, up=True) for row in mean],
                              top_down=[_top(row, data.genes, up=False) for row in mean],
                              flags=novelty(conditions, data))
    io.write_csv(table, Path(out).with_suffix(".csv"))
    flagged = table[table["flags"] != ""]
    if len(flagged):
        log.warning("%d of %d conditions are unlike anything in training, e.g. %s/%s: %s", len(flagged), len(table),
                    flagged.iloc[0][CELL_TYPE], flagged.iloc[0][PERTURBATION], flagged.iloc[0]["flags"])
    return table


def _top(change: np.ndarray, genes: np.ndarray, up: bool) -> str:
    order = np.argsort(-change if up else change)[:TOP_GENES]
    return ";".join(f"{genes[i]}:{change[i]:+.3g}" for i in order if (change[i] > 0) == up and change[i] != 0)

