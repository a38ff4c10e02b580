"""One split from obs to files: read codes, apply a strategy, split controls, check, summarise."""

from __future__ import annotations

import logging
import os
from collections import Counter

import numpy as np
import pandas as pd

from ..errors import InputError
from .core import SPLITS, TRAIN, Split, SplitParams, build_pairs, check_invariants, pair_split_table, split_controls
from .inputs import check_split_file, read_manual_holdout
from .obs import CodedObs, require_columns
from .strategies import INPUT_FILES, STRATEGIES, Inputs

log = logging.getLogger(__name__)

def split_name(strategy: str, seed: int) -> str:
    """``seed<N>`` for the default transfer strategy, ``seed<N>_<strategy>`` for the others."""
    return f"seed{seed}" if strategy == "transfer" else f"seed{seed}_{strategy}"


def check_split_inputs(params: SplitParams, source: str | os.PathLike | None = None,
                       manual_holdout: str | os.PathLike | None = None,
                       split_file: str | os.PathLike | None = None) -> pd.DataFrame | None:
    """Check what a split needs before reading any obs value: its parameters, the columns they
    name (in ``source``, when given), the holdout file (parsed) or the split file (its header).
    Returns the parsed manual holdout, if any."""
    params.check()
    if params.strategy not in STRATEGIES:
        raise InputError(f"unknown split strategy '{params.strategy}'; choose one of {', '.join(STRATEGIES)}")
    given = {"manual_holdout": manual_holdout, "split_file": split_file}
    for option, words in INPUT_FILES.items():
        owner = next(s.name for s in STRATEGIES.values() if s.input_file == option)
        if (params.strategy == owner) != (given[option] is not None):
            raise InputError(f"{words} goes with --strategy {owner}, and only with it")
    if split_file is not None:
        check_split_file(split_file)
    if source is not None:
        from ..shards import paths_of

        for path in paths_of(source):
            require_columns(path, [*params.covariate_keys, params.perturbation_key])
    return read_manual_holdout(manual_holdout) if manual_holdout else None


def make_split(obs: CodedObs, params: SplitParams, manual_holdout: str | None = None,
               split_file: str | None = None) -> Split:
    """Split the cells of ``obs`` with ``params.strategy`` and check every invariant."""
    holdout = check_split_inputs(params, None, manual_holdout, split_file)
    if obs.n_cells == 0:
        raise InputError("the obs table has no cells")

    rng = np.random.default_rng(params.seed)
    table = build_pairs(obs, params)
    pairs = table.pairs
    if not pairs["is_control"].any():
        raise InputError(f"control value '{params.control_value}' not found in '{params.perturbation_key}'")
    without = sorted(set(pairs.loc[~pairs["is_control"], params.covariate_keys[0]])
                     - set(pairs.loc[pairs["is_control"], params.covariate_keys[0]]))
    if without:
        raise InputError(f"cell type(s) {', '.join(map(str, without))} have no control cells "
                         f"('{params.control_value}'); counterfactual prediction needs controls in every cell type")
    plan = STRATEGIES[params.strategy].choose(table, params, rng, Inputs(obs, holdout, split_file))
    cell_split = plan.cell_split if plan.cell_split is not None else \
        split_controls(table, plan.pair_split, params, plan.forced_controls, rng)

    per_pair = pair_split_table(table, cell_split, params.covariate_keys)
    check_invariants(table, cell_split, per_pair, params, plan.rule, frozenset(plan.forced_controls))
    name = split_name(params.strategy, params.seed)
    summary = _summary(name, table, cell_split, per_pair, params, plan)
    log.info("%s: %s cells, pairs per split %s", name, f"{obs.n_cells:,}", summary["pairs_per_split"])
    return Split(name, cell_split, per_pair, summary)


def _summary(name, table, cell_split, per_pair, params: SplitParams, plan) -> dict:
    pert = per_pair[~per_pair["is_control"]]
    cov = params.covariate_keys
    reasons = Counter(plan.train_only.values())
    examples = {}
    for row, reason in plan.train_only.items():
        examples.setdefault(reason, [])
        if len(examples[reason]) < 20:
            r = table.pairs.iloc[row]
            examples[reason].append("/".join(str(r[k]) for k in cov) + f"/{r['perturbation']}")
    counts = np.bincount(cell_split, minlength=3)
    return {
        "name": name,
        "strategy": params.strategy,
        "seed": params.seed,
        "covariates": cov,
        "n_cells": int(cell_split.size),
        "cells_per_split": {s: int(counts[i]) for i, s in enumerate(SPLITS)},
        "pairs_per_split": {s: int((pert["split"] == s).sum()) for s in SPLITS},
        "perturbations_held_out": int(pert.loc[pert["split"] != "train", "perturbation"].nunique()),
        "train_only": {reason: {"pairs": n, "examples": examples[reason]} for reason, n in reasons.items()},
        "zeroshot_cell_types": {str(table.cell_types[ct]): str(SPLITS[s]) for ct, s in plan.forced_controls.items()},
        "params": {k: v for k, v in vars(params).items() if k not in ("spec", "covariate_keys")},
        "spec": params.spec.to_dict(),
        "rule": plan.rule,
        "train_fraction": float(counts[TRAIN] / max(cell_split.size, 1)),
    }
