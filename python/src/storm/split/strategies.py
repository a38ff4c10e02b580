"""The split strategies: how each chooses the held-out pairs, registered by name.

A strategy is a function ``(table, params, rng, inputs) -> Plan`` registered with
:func:`strategy`: its name, what it holds out (the CLI's and the docs' words) and the file option
it reads, if any. :data:`STRATEGIES` is the one list of them: ``storm split --strategy`` offers it,
the pipeline's schema lists it (a test keeps them equal) and ``make_split`` dispatches on it. A
:class:`Plan` is a split code per pair, cell types whose controls go wholly to one split, reasons
why pairs stayed in training, and the rule its held-out pairs must obey (see
:func:`storm.split.core.check_invariants`); a strategy that reads whole cells' splits (``file``)
gives them instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import InputError
from ..spec import parse_condition
from .core import PERTURBATION, SPLITS, TEST, TRAIN, VAL, PairTable, SplitParams
from .inputs import read_split_file
from .obs import CodedObs


@dataclass
class Plan:
    pair_split: np.ndarray
    forced_controls: dict[int, int] = field(default_factory=dict)
    train_only: dict[int, str] = field(default_factory=dict)  # pair row -> reason
    rule: str = "seen"
    cell_split: np.ndarray | None = None  # every cell's split, when the strategy reads it whole


@dataclass(frozen=True)
class Inputs:
    """What a strategy may read besides the pair table: the cells, and its file, parsed."""

    obs: CodedObs
    manual_holdout: pd.DataFrame | None = None
    split_file: str | None = None


@dataclass(frozen=True)
class Strategy:
    name: str
    holds_out: str                # what it holds out, in a phrase
    choose: Callable[[PairTable, SplitParams, np.random.Generator, Inputs], Plan]
    input_file: str | None = None  # the option naming the file it reads: manual_holdout or split_file
    benchmark: bool = True  # a benchmark's choice (the pipeline's --split_strategy); else storm's own use


STRATEGIES: dict[str, Strategy] = {}
#: the words for each strategy's file option in messages
INPUT_FILES = {"manual_holdout": "a manual holdout file", "split_file": "a split file"}


def strategy(name: str, holds_out: str, input_file: str | None = None, benchmark: bool = True):
    """Register a strategy function under ``name`` (see the module's docstring)."""
    def register(choose):
        STRATEGIES[name] = Strategy(name, holds_out, choose, input_file, benchmark)
        return choose
    return register


def describe_strategies() -> str:
    """``name: what it holds out; ...`` for every strategy, as --help shows them."""
    return "; ".join(f"{s.name}: {s.holds_out}" for s in STRATEGIES.values())


def _eligibility(table: PairTable, params: SplitParams) -> dict[int, str]:
    """Pairs that must stay in training, with the reason."""
    pairs = table.pairs
    reasons: dict[int, str] = {}
    ctrl_per_ct = pairs[pairs["is_control"]].groupby("cell_type_code")["n_cells"].sum()
    few_ctrl = pairs["cell_type_code"].map(ctrl_per_ct).fillna(0) < params.min_controls
    for row in np.flatnonzero(few_ctrl.to_numpy() & ~pairs["is_control"].to_numpy()):
        reasons[row] = f"its cell type has fewer than {params.min_controls} control cells"
    for row in np.flatnonzero((pairs["n_cells"] < params.min_cells).to_numpy() & ~pairs["is_control"].to_numpy()):
        reasons.setdefault(row, f"fewer than {params.min_cells} cells")
    return reasons


def _val_or_test(rows: np.ndarray, groups: np.ndarray, params: SplitParams, rng: np.random.Generator,
                 pair_split: np.ndarray) -> None:
    """Send held-out rows to test or val, ``test_fraction`` of each group (at least one) to test."""
    _units_to_val_or_test([np.array([r]) for r in rows], groups, params, rng, pair_split)


def _units_to_val_or_test(units: list[np.ndarray], groups: np.ndarray, params: SplitParams,
                          rng: np.random.Generator, pair_split: np.ndarray) -> None:
    """As :func:`_val_or_test`, for units of rows that go to one split together."""
    for group in np.unique(groups):
        members = rng.permutation(np.flatnonzero(groups == group))
        n_test = max(1, round(params.test_fraction * members.size)) if params.test_fraction > 0 else 0
        for rank, unit in enumerate(members):
            pair_split[units[unit]] = TEST if rank < n_test else VAL


def _transfer_keys(table: PairTable, params: SplitParams) -> np.ndarray:
    """What transfer holds out across covariates: each condition, or with ``whole_time_courses``
    each compound (at each dose) with all its time points, so a held-out course is whole."""
    labels = table.pairs[PERTURBATION].astype(str).to_numpy()
    if not params.whole_time_courses:
        return labels
    parsed = [parse_condition(label) for label in labels]
    if all(time is None for _, _, time in parsed):
        raise InputError("whole_time_courses needs conditions with a time: set the spec's time_key")
    return np.array([compound if dose is None else f"{compound}|dose={dose:g}" for compound, dose, _ in parsed],
                    dtype=object)


@strategy("transfer", "perturbations in some cell types, seen in others")
def transfer(table: PairTable, params: SplitParams, rng: np.random.Generator, inputs: Inputs) -> Plan:
    """PerturBench's covariate transfer: each perturbation held out in up to
    ``max_heldout_covariates`` covariates while it stays in training in at least
    ``min_train_covariates`` others; no covariate gets more than
    ``max_heldout_fraction_per_covariate`` of its perturbations held out. With
    ``whole_time_courses`` a perturbation is a compound over its time points (held out whole)."""
    pairs = table.pairs
    cov = params.covariate_keys
    train_only = _eligibility(table, params)
    pair_split = np.full(len(pairs), TRAIN, dtype=np.int8)
    pert_rows = pairs.index[~pairs["is_control"]].to_numpy()
    cov_id = pairs[cov].astype(str).agg("\x1f".join, axis=1).to_numpy()
    keys = _transfer_keys(table, params)
    n_perts = pd.Series(list(zip(cov_id[pert_rows], keys[pert_rows]))).drop_duplicates().str[0].value_counts().to_dict()
    held_count = {c: 0 for c in n_perts}
    by_pert = pd.Series(pert_rows).groupby(keys[pert_rows]).apply(np.asarray)
    held_units: list[np.ndarray] = []
    for pert in rng.permutation(by_pert.index.to_numpy()):
        rows = by_pert[pert]
        units = [rows[cov_id[rows] == c] for c in dict.fromkeys(cov_id[rows])]  # one per covariate
        budget = min(params.max_heldout_covariates, len(units) - params.min_train_covariates)
        if budget <= 0:
            for r in rows:
                train_only.setdefault(r, f"measured in {len(units)} covariate(s): none can be held out while "
                                         f"{params.min_train_covariates} stay in training")
            continue
        candidates = [u for u in units if any(r not in train_only for r in u)
                      and held_count[cov_id[u[0]]] + 1 <= params.max_heldout_fraction_per_covariate
                      * n_perts[cov_id[u[0]]]]
        # least-loaded covariates first, random among ties
        candidates.sort(key=lambda u: (held_count[cov_id[u[0]]] / n_perts[cov_id[u[0]]], rng.random()))
        for unit in candidates[:budget]:
            held_units.append(np.array([r for r in unit if r not in train_only]))
            held_count[cov_id[unit[0]]] += 1
    held_units.sort(key=lambda u: u[0])
    _units_to_val_or_test(held_units, np.array([cov_id[u[0]] for u in held_units]), params, rng, pair_split)
    return Plan(pair_split, train_only=train_only)


def _combo_rows(table: PairTable, params: SplitParams) -> tuple[np.ndarray, np.ndarray]:
    names = table.pairs[PERTURBATION].astype(str)
    is_combo = names.str.contains(params.combo_delimiter, regex=False).to_numpy()
    is_combo &= ~table.pairs["is_control"].to_numpy()
    return is_combo, names.to_numpy()


@strategy("combo", "combinations whose singles train")
def combo(table: PairTable, params: SplitParams, rng: np.random.Generator, inputs: Inputs,
          inverse: bool = False) -> Plan:
    """Hold out ``heldout_fraction`` of the combinations ``A+B`` whose singles are measured in the
    same covariates (the singles train). ``inverse``: hold out singles that are measured inside a
    combination in the same covariates (the combinations train)."""
    pairs = table.pairs
    cov = params.covariate_keys
    train_only = _eligibility(table, params)
    is_combo, names = _combo_rows(table, params)
    cov_keys = [tuple(r) for r in pairs[cov].to_numpy()]
    present = set(zip(cov_keys, names))
    in_combo: set[tuple] = set()
    for r in np.flatnonzero(is_combo):
        in_combo.update((cov_keys[r], s) for s in names[r].split(params.combo_delimiter))
    eligible = []
    for r in np.flatnonzero(~pairs["is_control"].to_numpy()):
        if r in train_only or is_combo[r] == inverse:
            continue
        if not inverse and all((cov_keys[r], s) in present for s in names[r].split(params.combo_delimiter)):
            eligible.append(r)
        elif inverse and (cov_keys[r], names[r]) in in_combo:
            eligible.append(r)
    if not eligible:
        what = "singles measured inside a combination" if inverse else "combinations whose singles are measured"
        raise InputError(f"the {'combo_inverse' if inverse else 'combo'} strategy found no {what}")
    eligible = np.asarray(eligible)
    groups = np.asarray(["\x1f".join(map(str, cov_keys[r])) for r in eligible])
    pair_split = np.full(len(pairs), TRAIN, dtype=np.int8)
    for group in np.unique(groups):
        members = rng.permutation(eligible[groups == group])
        pair_split[members[:math.floor(params.heldout_fraction * members.size + 0.5)]] = VAL
    held = np.flatnonzero(pair_split != TRAIN)
    _val_or_test(held, np.zeros(held.size), params, rng, pair_split)
    return Plan(pair_split, train_only=train_only, rule="in_combo" if inverse else "singles")


def _hold_out_cell_types(table: PairTable, names: list[str], params: SplitParams,
                         rng: np.random.Generator) -> tuple[np.ndarray, dict[int, int]]:
    codes = {name: i for i, name in enumerate(table.cell_types)}
    unknown = [n for n in names if n not in codes]
    if unknown:
        raise InputError(f"cell type(s) {', '.join(unknown)} not in the data; "
                         f"known: {', '.join(map(str, table.cell_types[:20]))}")
    order = [codes[n] for n in names]
    n_test = max(1, round(params.test_fraction * len(order))) if params.test_fraction > 0 else 0
    forced = {ct: (TEST if i < n_test else VAL) for i, ct in enumerate(order)}
    pair_split = np.full(len(table.pairs), TRAIN, dtype=np.int8)
    ct_of_pair = table.pairs["cell_type_code"].to_numpy()
    for ct, split in forced.items():
        pair_split[(ct_of_pair == ct) & ~table.pairs["is_control"].to_numpy()] = split
    return pair_split, forced


@strategy("combo_inverse", "singles measured in a training combination")
def combo_inverse(table: PairTable, params: SplitParams, rng: np.random.Generator, inputs: Inputs) -> Plan:
    return combo(table, params, rng, inputs, inverse=True)


@strategy("zeroshot", "whole cell types")
def zeroshot(table: PairTable, params: SplitParams, rng: np.random.Generator, inputs: Inputs) -> Plan:
    """Hold out whole cell types (State's ``[zeroshot]``): ``zeroshot_covariates`` if given, else
    ``n_zeroshot`` drawn by the seed. Their controls go with them."""
    names = list(params.zeroshot_covariates)
    if not names:
        if params.n_zeroshot >= len(table.cell_types):
            raise InputError(f"zeroshot needs fewer held-out cell types ({params.n_zeroshot}) than there are "
                             f"({len(table.cell_types)})")
        names = list(rng.choice(table.cell_types, size=params.n_zeroshot, replace=False))
    pair_split, forced = _hold_out_cell_types(table, names, params, rng)
    return Plan(pair_split, forced_controls=forced)


@strategy("unseen_drug", "whole compounds (--compound-groups scaffold: analogues together)")
def unseen_drug(table: PairTable, params: SplitParams, rng: np.random.Generator, inputs: Inputs) -> Plan:
    """Hold out whole compounds: every condition of ``heldout_fraction`` of the compound groups,
    in every covariate, so a model must predict a drug it never saw. Each compound has a group
    (itself, or its Bemis-Murcko scaffold, so near-identical molecules do not straddle the split);
    a group is held out whole or not at all, and one with a pair too small to hold out stays in
    training."""
    pairs = table.pairs
    train_only = _eligibility(table, params)
    perturbed = ~pairs["is_control"].to_numpy()
    group = _conditions(table)["compound"].map(compound_groups(inputs.obs, params)).to_numpy()
    blocked = {group[r] for r in train_only}
    eligible = sorted(set(group[perturbed]) - blocked)
    n_groups = len(set(group[perturbed]))
    n_held = min(math.floor(params.heldout_fraction * n_groups + 0.5), n_groups - 1, len(eligible))
    if n_held < 1:
        raise InputError(f"unseen_drug found no compound to hold out among {n_groups} compound group(s) "
                         f"({len(eligible)} eligible; heldout_fraction={params.heldout_fraction}); "
                         f"it needs two groups or more")
    held = list(rng.permutation(np.asarray(eligible, dtype=object))[:n_held])
    n_test = max(1, round(params.test_fraction * n_held)) if params.test_fraction > 0 else 0
    pair_split = np.full(len(pairs), TRAIN, dtype=np.int8)
    for i, name in enumerate(held):
        pair_split[perturbed & (group == name)] = TEST if i < n_test else VAL
    return Plan(pair_split, train_only=train_only, rule="unseen_compound")


def compound_groups(obs: CodedObs, params: SplitParams) -> pd.Series:
    """compound -> its group for unseen_drug: itself, or its Bemis-Murcko scaffold (from the SMILES
    of its first cell), so analogues are held out together."""
    pert = obs.columns[params.perturbation_key]
    compounds = pd.Series([parse_condition(label)[0] for label in pert.categories])
    if params.compound_groups == "compound":
        return pd.Series(compounds.to_numpy(), index=compounds.to_numpy()).drop_duplicates()
    from ..chem.molecules import scaffolds

    smiles = obs.columns[params.spec.smiles_key]
    first = pd.Series(smiles.codes).groupby(pert.codes).first()  # condition code -> SMILES code
    by_compound = pd.Series(smiles.categories[first.to_numpy()], index=compounds[first.index].to_numpy())
    by_compound = by_compound[~by_compound.index.duplicated() & (by_compound.index != params.control_value)]
    return scaffolds(by_compound)


@strategy("unseen_dose", "each compound's highest dose (or --heldout-doses), seen at its other doses")
def unseen_dose(table: PairTable, params: SplitParams, rng: np.random.Generator, inputs: Inputs) -> Plan:
    """Hold out doses of compounds measured at other doses in the same covariates: the doses in
    ``heldout_doses``, or each compound's highest; at least one dose of each stays in training."""
    pairs = table.pairs
    parts = _conditions(table)
    if parts.loc[~pairs["is_control"], "dose"].isna().all():
        raise InputError("unseen_dose needs doses: set the dataset spec's dose_key")
    train_only = _eligibility(table, params)
    cov = params.covariate_keys
    pair_split = np.full(len(pairs), TRAIN, dtype=np.int8)
    perturbed = pairs.index[~pairs["is_control"] & parts["dose"].notna()]
    for _, rows in pairs.loc[perturbed].groupby([*cov, parts.loc[perturbed, "compound"], parts.loc[perturbed, "time"]],
                                                dropna=False, observed=True):
        doses = parts.loc[rows.index, "dose"]
        wanted = doses.isin(params.heldout_doses) if params.heldout_doses else doses == doses.max()
        held = [r for r in rows.index[wanted.to_numpy()] if r not in train_only]
        if doses.nunique() < 2 or len(held) >= len(rows):
            continue
        pair_split[held] = VAL
    held = np.flatnonzero(pair_split != TRAIN)
    if not held.size:
        kept = f"; {len(train_only)} pair(s) must stay in training, e.g. {next(iter(train_only.values()))} " \
               f"(bulk profiles: set min_cells to 1)" if train_only else ""
        raise InputError(f"unseen_dose found no compound measured at a held-out dose and at another one{kept}")
    cov_id = pairs[cov].astype(str).agg("\x1f".join, axis=1).to_numpy()
    _val_or_test(held, cov_id[held], params, rng, pair_split)
    return Plan(pair_split, train_only=train_only, rule="dose_seen")


@strategy("manual", "what the manual holdout names", input_file="manual_holdout")
def manual(table: PairTable, params: SplitParams, rng: np.random.Generator, inputs: Inputs) -> Plan:
    """Hold out what the user names: rows of the manual holdout (split, cell_type, perturbation),
    where an empty perturbation holds out the whole cell type and an empty cell type holds out the
    perturbation in every cell type."""
    holdout = inputs.manual_holdout
    pairs = table.pairs
    ct_key = params.covariate_keys[0]
    pair_split = np.full(len(pairs), TRAIN, dtype=np.int8)
    forced: dict[int, int] = {}
    split_code = {name: i for i, name in enumerate(SPLITS)}
    not_control = ~pairs["is_control"].to_numpy()
    for row in holdout.itertuples(index=False):
        ct, pert, split = row.cell_type, row.perturbation, split_code[row.split]
        if ct and not pert:
            ct_split, ct_forced = _hold_out_cell_types(table, [ct], params, rng)
            pair_split[ct_split != TRAIN] = split
            forced.update({code: split for code in ct_forced})
            continue
        match = not_control & (pairs[PERTURBATION] == pert).to_numpy()
        if ct:
            match &= (pairs[ct_key] == ct).to_numpy()
        if not match.any():
            raise InputError(f"manual holdout names {ct or '(any cell type)'}/{pert}, which is not in the data")
        pair_split[match] = split
    return Plan(pair_split, forced_controls=forced, train_only=_eligibility(table, params))


def _conditions(table: PairTable) -> pd.DataFrame:
    """Compound, dose and time of each pair (parsed from its condition label)."""
    parsed = [parse_condition(label) for label in table.pairs[PERTURBATION]]
    return pd.DataFrame(parsed, columns=["compound", "dose", "time"], index=table.pairs.index)


@strategy("none", "nothing: every cell trains (how --predict_conditions trains when the data measures none of them)",
          benchmark=False)
def nothing(table: PairTable, params: SplitParams, rng: np.random.Generator, inputs: Inputs) -> Plan:
    return Plan(np.full(len(table.pairs), TRAIN, dtype=np.int8))


@strategy("file", "an existing split (cell_id,split CSV or split.parquet)", input_file="split_file")
def from_file(table: PairTable, params: SplitParams, rng: np.random.Generator, inputs: Inputs) -> Plan:
    """Every cell's split as the file gives it (PerturBench's CSV, storm's parquet)."""
    return Plan(np.zeros(0, np.int8), cell_split=read_split_file(inputs.split_file, inputs.obs.cell_ids))
