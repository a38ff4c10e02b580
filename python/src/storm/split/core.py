"""Split a dataset at the (covariates, perturbation) pair level, check the result, describe it.

Cells are handled as integer codes only: every cell maps to a pair, every pair gets a split, and
cells take their pair's split through one array lookup, so 100M cells cost seconds. Control cells
are split within each cell type (the first covariate), so every split that holds perturbed cells
of a cell type also holds controls of that cell type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import InputError, StormError
from ..spec import PERTURBATION, DatasetSpec, parse_condition
from .obs import CodedObs

SPLITS = np.array(["train", "val", "test"], dtype=object)
#: how unseen_drug groups compounds: each on its own, or by Bemis-Murcko scaffold
COMPOUND_GROUPS = ("compound", "scaffold")
TRAIN, VAL, TEST = 0, 1, 2
#: a pair table this large is counted with a dense lookup; beyond it, with np.unique
DENSE_PAIR_SPACE = 1 << 25


class SplitInvariantError(StormError):
    """A split breaks one of the rules every split must obey."""


@dataclass
class SplitParams:
    """What to split and how: the dataset's spec names the perturbation column, the control value
    and the combination delimiter; covariates are obs columns, the first is the cell type (by
    default the spec's cell type column alone)."""

    spec: DatasetSpec
    covariate_keys: list[str] = field(default_factory=list)
    strategy: str = "transfer"
    seed: int = 0
    min_cells: int = 10
    min_controls: int = 3
    max_heldout_fraction_per_covariate: float = 0.3
    max_heldout_covariates: int = 1
    min_train_covariates: int = 1
    heldout_fraction: float = 0.5
    test_fraction: float = 0.5
    control_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    zeroshot_covariates: list[str] = field(default_factory=list)
    n_zeroshot: int = 1
    compound_groups: str = "compound"  # unseen_drug: hold out compounds one by one, or by scaffold
    heldout_doses: tuple[float, ...] = ()  # unseen_dose: these doses (default: each compound's highest)
    whole_time_courses: bool = False  # transfer: hold a compound out in a covariate at all its time points

    def __post_init__(self):
        self.covariate_keys = list(self.covariate_keys) or [self.spec.cell_type_key]

    @property
    def perturbation_key(self) -> str:
        return self.spec.perturbation_key

    @property
    def control_value(self) -> str:
        return self.spec.control_value

    @property
    def combo_delimiter(self) -> str:
        return self.spec.combo_delimiter

    def check(self) -> None:
        for name in ("max_heldout_fraction_per_covariate", "heldout_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise InputError(f"{name} must be between 0 and 1, got {value}")
        if len(self.control_fractions) != 3 or any(f < 0 for f in self.control_fractions) \
                or not np.isclose(sum(self.control_fractions), 1):
            raise InputError(f"control fractions must be three shares summing to 1, got {self.control_fractions}")
        if min(self.min_cells, self.min_train_covariates, self.max_heldout_covariates, self.n_zeroshot) < 0:
            raise InputError("min_cells, min_train_covariates, max_heldout_covariates and n_zeroshot must be >= 0")
        if self.compound_groups not in COMPOUND_GROUPS:
            raise InputError(f"compound groups must be one of {', '.join(COMPOUND_GROUPS)}, "
                             f"got '{self.compound_groups}'")
        if self.compound_groups == "scaffold" and not self.spec.smiles_key:
            raise InputError("scaffold groups need SMILES: set the dataset spec's smiles_key")
        if self.perturbation_key in self.covariate_keys:
            raise InputError(f"'{self.perturbation_key}' is the perturbation column; it cannot be a covariate too")


@dataclass
class PairTable:
    """The distinct (covariates, perturbation) pairs and the pair of every cell."""

    pairs: pd.DataFrame  # covariate columns, perturbation, n_cells, is_control, cell_type_code
    cell_pair: np.ndarray  # per cell, its row in ``pairs``
    cell_type: np.ndarray  # per cell, its cell-type code
    cell_types: np.ndarray  # cell-type labels


def build_pairs(obs: CodedObs, params: SplitParams) -> PairTable:
    """Group cells into pairs with integer arithmetic (mixed-radix codes)."""
    keys = [*params.covariate_keys, params.perturbation_key]
    cols = [obs.columns[k] for k in keys]
    sizes = [max(len(c.categories), 1) for c in cols]
    space = int(np.prod(sizes, dtype=np.float64))
    code = np.zeros(obs.n_cells, dtype=np.int32 if space < 2**31 else np.int64)
    for col, size in zip(cols, sizes):
        code *= size
        code += col.codes
    if space <= DENSE_PAIR_SPACE:
        counts = np.bincount(code, minlength=space)
        present = np.flatnonzero(counts)
        lookup = np.full(space, -1, dtype=np.int32)
        lookup[present] = np.arange(len(present), dtype=np.int32)
        cell_pair, n_cells = lookup[code], counts[present]
    else:
        present, cell_pair, n_cells = np.unique(code, return_inverse=True, return_counts=True)
        cell_pair = cell_pair.astype(np.int32)
    # decode each present pair back into its labels
    labels, rest = {}, present.copy()
    for key, col, size in reversed(list(zip(keys, cols, sizes))):
        rest, part = np.divmod(rest, size)
        labels[key] = col.categories[part] if len(col.categories) else part.astype(str)
        if key == params.covariate_keys[0]:
            cell_type_code = part
    pairs = pd.DataFrame({k: labels[k] for k in keys}).rename(columns={params.perturbation_key: PERTURBATION})
    pairs["n_cells"] = n_cells.astype(np.int64)
    pairs["is_control"] = pairs[PERTURBATION] == params.control_value
    pairs["cell_type_code"] = cell_type_code
    ct = obs.columns[params.covariate_keys[0]]
    return PairTable(pairs, cell_pair, ct.codes, ct.categories)


@dataclass
class Split:
    """A finished split: every cell's split code and the per-(pair, split) table."""

    name: str
    cell_split: np.ndarray  # int8 per cell: TRAIN, VAL or TEST
    pairs: pd.DataFrame  # covariates, perturbation, split, n_cells (one row per pair and split)
    summary: dict


def split_controls(table: PairTable, pair_split: np.ndarray, params: SplitParams,
                   forced: dict[int, int], rng: np.random.Generator) -> np.ndarray:
    """Split codes of every cell: perturbed cells take their pair's split, controls are split per
    cell type by ``control_fractions``, or go wholly to the split named in ``forced`` (cell-type
    code -> split) when a cell type is held out whole. A cell type's controls go to val or test
    only if it has perturbed cells there (nothing else would use them): a cell type with nothing
    held out is training-only, controls included."""
    cell_split = pair_split[table.cell_pair].astype(np.int8)
    perturbed = ~table.pairs["is_control"].to_numpy()
    held = {(int(ct), int(split)) for ct, split in zip(table.pairs["cell_type_code"].to_numpy()[perturbed],
                                                        pair_split[perturbed])}
    is_ctrl = table.pairs["is_control"].to_numpy()[table.cell_pair]
    ctrl_idx = np.flatnonzero(is_ctrl)
    order = np.argsort(table.cell_type[ctrl_idx], kind="stable")
    ctrl_idx = ctrl_idx[order]
    bounds = np.searchsorted(table.cell_type[ctrl_idx], np.arange(len(table.cell_types) + 1))
    fractions = np.asarray(params.control_fractions)
    for ct in range(len(table.cell_types)):
        idx = ctrl_idx[bounds[ct]:bounds[ct + 1]]
        if idx.size == 0:
            continue
        if ct in forced:
            cell_split[idx] = forced[ct]
            continue
        idx = rng.permutation(idx)
        n = idx.size
        n_val = max(1, round(fractions[VAL] * n)) if n >= 3 and fractions[VAL] > 0 and (ct, VAL) in held else 0
        n_test = max(1, round(fractions[TEST] * n)) if n >= 3 and fractions[TEST] > 0 and (ct, TEST) in held else 0
        cell_split[idx[:n - n_val - n_test]] = TRAIN
        cell_split[idx[n - n_val - n_test:n - n_test]] = VAL
        cell_split[idx[n - n_test:]] = TEST
    return cell_split


def pair_split_table(table: PairTable, cell_split: np.ndarray, covariate_keys: list[str]) -> pd.DataFrame:
    """One row per (pair, split) that holds cells, with its cell count."""
    counts = np.bincount(table.cell_pair.astype(np.int64) * 3 + cell_split, minlength=3 * len(table.pairs))
    counts = counts.reshape(-1, 3)
    rows, splits = np.nonzero(counts)
    out = table.pairs.iloc[rows][[*covariate_keys, PERTURBATION, "is_control"]].reset_index(drop=True)
    out.insert(len(covariate_keys) + 1, "split", SPLITS[splits])
    out["n_cells"] = counts[rows, splits]
    out["pair"] = rows  # the row in ``table.pairs``
    return out


def check_invariants(table: PairTable, cell_split: np.ndarray, per_pair: pd.DataFrame,
                     params: SplitParams, rule: str, whole_cell_types: frozenset[int] = frozenset()) -> None:
    """Raise :class:`SplitInvariantError` listing every broken rule.

    Rules: every cell has a split; every (cell type, split) with perturbed cells has controls of
    that cell type; pairs with fewer than ``min_cells`` cells are in training, except in cell types
    held out whole (``whole_cell_types``, codes), which cannot train at all; and the strategy's
    rule for held-out pairs (``rule``): 'seen' — its perturbation is in training in at least
    ``min_train_covariates`` other covariates; 'unseen_compound' — no condition of its compound is
    in training; 'dose_seen' — its compound is in training at another dose in the same covariates;
    'singles' — both singles of a held-out combination are in training in the same covariates;
    'in_combo' — a held-out single is in training inside a combination in the same covariates.
    """
    problems: list[str] = []
    if cell_split.shape[0] != table.cell_pair.shape[0] or (cell_split.size and not
                                                           TRAIN <= cell_split.min() <= cell_split.max() <= TEST):
        problems.append("some cells have no split")
    cov = params.covariate_keys
    pert, ctrl = per_pair[~per_pair["is_control"]], per_pair[per_pair["is_control"]]
    ct_key = cov[0]
    need = set(zip(pert[ct_key], pert["split"]))
    have = set(zip(ctrl[ct_key], ctrl["split"]))
    for ct, split in sorted(need - have):
        problems.append(f"cell type '{ct}' has perturbed cells in '{split}' but no control cells there")
    rows = pert["pair"].to_numpy()
    small = table.pairs["n_cells"].to_numpy()[rows] < params.min_cells
    small &= ~np.isin(table.pairs["cell_type_code"].to_numpy()[rows], list(whole_cell_types))
    for _, r in pert[small & (pert["split"] != "train").to_numpy()].iterrows():
        problems.append(f"pair {_pair_name(r, cov)} has fewer than {params.min_cells} cells but is held out")
    held = pert[pert["split"] != "train"]
    train = pert[pert["split"] == "train"]
    if rule == "seen" and params.min_train_covariates > 0 and len(held):
        seen = train.groupby(PERTURBATION).apply(lambda g: set(map(tuple, g[cov].to_numpy())), include_groups=False)
        for _, r in held.iterrows():
            others = seen.get(r[PERTURBATION], set()) - {tuple(r[cov])}
            if len(others) < params.min_train_covariates:
                problems.append(f"held-out pair {_pair_name(r, cov)} is in training in {len(others)} other "
                                f"covariate(s), fewer than min_train_covariates={params.min_train_covariates}")
    elif rule in ("unseen_compound", "dose_seen") and len(held):
        def compounds(rows: pd.DataFrame) -> list[str]:
            return [parse_condition(label)[0] for label in rows[PERTURBATION]]

        if rule == "unseen_compound":
            trained = set(compounds(train))
            for (_, r), compound in zip(held.iterrows(), compounds(held)):
                if compound in trained:
                    problems.append(f"held-out pair {_pair_name(r, cov)}: compound '{compound}' is in training")
        else:
            trained = set(zip(map(tuple, train[cov].to_numpy()), compounds(train)))
            for (_, r), compound in zip(held.iterrows(), compounds(held)):
                if (tuple(r[cov]), compound) not in trained:
                    problems.append(f"held-out pair {_pair_name(r, cov)}: compound '{compound}' is at no other "
                                    f"dose in training there")
    elif rule in ("singles", "in_combo") and len(held):
        trained = set(map(tuple, train[[*cov, PERTURBATION]].to_numpy()))
        in_combo: dict[tuple, set] = {}
        for *key, name in train[[*cov, PERTURBATION]].to_numpy():
            if params.combo_delimiter in name:
                in_combo.setdefault(tuple(key), set()).update(name.split(params.combo_delimiter))
        for _, r in held.iterrows():
            key = tuple(r[cov])
            if rule == "singles":
                missing = [s for s in r[PERTURBATION].split(params.combo_delimiter) if (*key, s) not in trained]
                if missing:
                    problems.append(f"held-out combination {_pair_name(r, cov)} has single(s) "
                                    f"{', '.join(missing)} not in training")
            elif r[PERTURBATION] not in in_combo.get(key, set()):
                problems.append(f"held-out single {_pair_name(r, cov)} is in no training combination")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise SplitInvariantError(f"the {params.strategy} split breaks {len(problems)} rule(s): {shown}")


def _pair_name(row: pd.Series, covariate_keys: list[str]) -> str:
    return "/".join(str(row[k]) for k in covariate_keys) + f"/{row[PERTURBATION]}"
