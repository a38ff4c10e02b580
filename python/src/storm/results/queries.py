"""What `storm results` answers from the store: the runs, a leaderboard over all runs, two runs
side by side, and any table as CSV."""

from __future__ import annotations

import pandas as pd

from ..errors import InputError
from ..evaluate.core import is_pair_row
from ..metrics import better_direction
from ..report.stats import metric_flags, paired_comparisons, summarise, with_flags
from .store import SCHEMAS, Store

LEADERBOARD_COLUMNS = ["dataset", "metric", "rank", "model", "mean", "sd", "n_splits", "n_runs", "n_pairs",
                       "p_vs_leader", "q_vs_leader", "flag"]
COMPARE_COLUMNS = ["dataset", "model", "metric", "a", "b", "b_minus_a", "better"]


def runs(store: Store) -> pd.DataFrame:
    """One row per run, newest first: when, where, its datasets and models, how many metric values."""
    return store.connect().execute("""
        SELECT r.run_id, r.run_name, r.started, r.appended, r.outdir, r.storm_version, r.commit,
               string_agg(DISTINCT m.dataset, ',' ORDER BY m.dataset) AS datasets,
               string_agg(DISTINCT m.model, ',' ORDER BY m.model) AS models,
               count(DISTINCT m.seed) AS seeds, count(m.value) AS values
        FROM runs r LEFT JOIN metrics m USING (run_id)
        GROUP BY ALL ORDER BY r.appended DESC""").df()


def _metrics(store: Store, dataset: str | None, metrics: list[str] | None, run_ids: list[str] | None = None,
             pairs_only: bool = False) -> pd.DataFrame:
    """Committed metric rows, optionally of some datasets, metrics and runs (``pairs_only``: the
    (cell type, perturbation) rows, not the per-cell-type summaries)."""
    clauses, args = [], []
    for column, values in (("dataset", [dataset] if dataset else None), ("metric", metrics), ("run_id", run_ids)):
        if values:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            args += values
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    frame = store.connect().execute(f"SELECT * FROM metrics {where}", args).df()
    return frame[is_pair_row(frame["perturbation"])] if pairs_only and len(frame) else frame


def _design(store: Store, dataset: str | None) -> pd.DataFrame:
    """Every split's held-out pairs (the split key as its seed), to flag metrics the design defeats."""
    where, args = ("WHERE dataset = ?", [dataset]) if dataset else ("", [])
    return store.connect().execute(f"SELECT DISTINCT dataset, split_key AS seed, cell_type, perturbation "
                                   f"FROM metrics {where}", args).df()


def _known(frame: pd.DataFrame, what: str, asked: list[str] | str | None, store: Store) -> None:
    if asked and frame.empty:
        raise InputError(f"the store {store} has no metric values for {what} {asked}")


def leaderboard(store: Store, metrics: list[str], dataset: str | None = None) -> pd.DataFrame:
    """Per dataset and metric, every model over all runs: mean ± sd over splits (a split is the
    unit, as seeds are in a report: each split's mean over its held-out pairs), ranked in the
    metric's direction, with a paired Wilcoxon test against the leader over the pairs both scored
    on the same splits (Benjamini-Hochberg q over the dataset's tests). A metric the design
    defeats (see :func:`storm.report.stats.metric_flags`) is flagged and unranked."""
    frame = _metrics(store, dataset, metrics)
    _known(frame, "metric(s)", metrics, store)
    if frame.empty:
        return pd.DataFrame(columns=LEADERBOARD_COLUMNS)
    # the split is the unit of variance: summarise and compare treat it as they treat a seed
    by_split = frame.assign(seed=frame["split_key"])
    summary = summarise(by_split)
    flags = metric_flags(_design(store, dataset), summary)
    summary = summary.rename(columns={"n_seeds": "n_splits", "n": "n_pairs"})
    runs_per_model = frame.groupby(["dataset", "model"])["run_id"].nunique().rename("n_runs").reset_index()
    summary = summary.merge(runs_per_model, on=["dataset", "model"])
    tests = paired_comparisons(by_split)
    rows = []
    for (ds, metric), board in summary.groupby(["dataset", "metric"], sort=True):
        board = board.sort_values(["rank", "model"])
        leader = board["model"].iloc[0]
        for row in board.itertuples():
            test = tests[(tests["dataset"] == ds) & (tests["metric"] == metric) &
                         (tests[["model_a", "model_b"]].apply(set, axis=1) == {leader, row.model})]
            rows.append({"dataset": ds, "metric": metric, "rank": row.rank, "model": row.model, "mean": row.mean,
                         "sd": row.sd, "n_splits": row.n_splits, "n_runs": row.n_runs, "n_pairs": row.n_pairs,
                         "p_vs_leader": test["p_value"].iloc[0] if len(test) else float("nan"),
                         "q_vs_leader": test["q_value"].iloc[0] if len(test) else float("nan")})
    return with_flags(pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS[:-1]), flags)[LEADERBOARD_COLUMNS]


def compare(store: Store, run_a: str, run_b: str, metrics: list[str] | None = None) -> pd.DataFrame:
    """Two runs side by side: per (dataset, model, metric) both runs scored, each run's mean over
    its seeds' means and the difference b - a (with the metric's better direction)."""
    ids = {}
    known = runs(store)
    for name in (run_a, run_b):
        match = known[(known["run_id"].str.startswith(name)) | (known["run_name"] == name)]
        if len(match) != 1:
            raise InputError(f"the store {store} has {'no' if match.empty else 'several'} run(s) named or with an "
                             f"id starting '{name}'; `storm results runs` lists them")
        ids[name] = match["run_id"].iloc[0]
    frame = _metrics(store, None, metrics, list(ids.values()), pairs_only=True)
    per_seed = frame.groupby(["run_id", "dataset", "model", "metric", "seed"])["value"].mean()
    wide = per_seed.groupby(["run_id", "dataset", "model", "metric"]).mean().unstack("run_id")
    a, b = ids[run_a], ids[run_b]
    if a not in wide or b not in wide:
        return pd.DataFrame(columns=COMPARE_COLUMNS)
    table = wide[[a, b]].dropna().rename(columns={a: "a", b: "b"}).rename_axis(columns=None).reset_index()
    table["b_minus_a"] = table["b"] - table["a"]
    table["better"] = table["metric"].map(better_direction)
    return table[COMPARE_COLUMNS]


def export(store: Store, table: str) -> pd.DataFrame:
    if table not in SCHEMAS:
        raise InputError(f"no table '{table}' in the store; tables: {', '.join(SCHEMAS)}")
    return store.frame(table)
