"""The results store: runs appended side by side, replaced whole on a re-append, invisible until
committed, safe under concurrent appends; and `storm results` over it."""

import multiprocessing
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from storm.report import Provenance
from storm.results import Store, run_tables
from storm.results.queries import compare, leaderboard, runs

PAIRS = [(ct, f"P{i}") for ct in ("A", "B") for i in range(8)]


def metrics_file(path, models: dict[str, float], seeds=(0, 1), noise=0.05, rng_seed=0):
    """Long-form metrics of ``models`` (name -> its true pearson_delta) on the same held-out pairs."""
    rng = np.random.default_rng(rng_seed)
    rows = [{"dataset": "d", "seed": seed, "model": model, "cell_type": ct, "perturbation": pert,
             "metric": "pearson_delta", "value": level + rng.normal(0, noise)}
            for model, level in models.items() for seed in seeds for ct, pert in PAIRS]
    rows += [{**row, "perturbation": "(all)", "metric": "genewise_pearson"} for row in rows[:1]]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def append(store, path, session, name):
    run_id, tables = run_tables([path], [], Provenance(run={"session": session, "run_name": name}))
    return store.append(run_id, tables)


def test_a_leaderboard_ranks_models_over_runs(tmp_path):
    """Two runs share model b and their splits: b counts both runs; a, b and c are ranked on one
    board, each tested against the leader on the pairs both scored on the same splits."""
    store = Store(tmp_path / "store")
    append(store, metrics_file(tmp_path / "1.csv", {"a": 0.2, "b": 0.5}), "s1", "first")
    append(store, metrics_file(tmp_path / "2.csv", {"b": 0.5, "c": 0.8}, rng_seed=1), "s2", "second")
    assert list(runs(store)["run_name"]) == ["second", "first"]
    board = leaderboard(store, ["pearson_delta"]).set_index("model")
    assert list(board.sort_values("rank").index) == ["c", "b", "a"]
    assert board.loc["b", "n_runs"] == 2 and board.loc["a", "n_runs"] == 1
    assert board.loc["b", "n_splits"] == 2  # the same two splits in both runs, not four
    assert board.loc["b", "n_pairs"] == 2 * 2 * len(PAIRS)
    assert board.loc["b", "mean"] == pytest.approx(0.5, abs=0.02)
    assert np.isnan(board.loc["c", "p_vs_leader"]) and board.loc["a", "p_vs_leader"] < 1e-3
    side = compare(store, "first", "second")
    assert list(side["model"]) == ["b"] and abs(side["b_minus_a"].iloc[0]) < 0.05


def test_a_re_append_replaces_its_run_and_an_uncommitted_write_is_invisible(tmp_path):
    store = Store(tmp_path / "store")
    first = append(store, metrics_file(tmp_path / "1.csv", {"a": 0.2}), "s1", "run")
    second = append(store, metrics_file(tmp_path / "2.csv", {"a": 0.9, "b": 0.1}), "s1", "run")  # -resume
    values = store.frame("metrics")
    assert set(values["model"]) == {"a", "b"} and values.loc[values["model"] == "a", "value"].mean() > 0.8
    assert not list((tmp_path / "store" / "metrics").glob(f"*{first}*"))  # the older write removed
    # a write killed before its commit: its rows are on disk and in no view
    orphan = tmp_path / "store" / "metrics" / "s1.deadbeef.parquet"
    pd.read_parquet(tmp_path / "store" / "metrics" / f"s1.{second}.parquet").assign(
        write_id="deadbeef", value=-1.0).to_parquet(orphan)
    assert (store.frame("metrics")["value"] > -1).all()


def _append_one(args):
    root, index = args
    path = metrics_file(f"{root}/{index}.csv", {f"m{index}": 0.1 * index})
    append(Store(f"{root}/store"), path, f"session{index}", f"run{index}")


def test_concurrent_appends_all_land(tmp_path):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_append_one, [(str(tmp_path), i) for i in range(8)])
    store = Store(tmp_path / "store")
    assert len(runs(store)) == 8
    assert store.frame("metrics").groupby("run_id").size().nunique() == 1  # every run whole


def test_cli_queries_and_exports(tmp_path):
    store = Store(tmp_path / "store")
    append(store, metrics_file(tmp_path / "1.csv", {"a": 0.2, "b": 0.5}), "s1", "first")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "storm", "results", *args, "--store", str(tmp_path / "store")],
                              capture_output=True, text=True)

    board = cli("leaderboard", "--metric", "pearson_delta", "--csv")
    assert board.returncode == 0, board.stderr
    assert pd.read_csv(pd.io.common.StringIO(board.stdout))["model"].tolist() == ["b", "a"]
    exported = cli("export", "metrics", "--out", str(tmp_path / "all.csv"))
    assert exported.returncode == 0 and len(pd.read_csv(tmp_path / "all.csv")) == len(store.frame("metrics"))
    added = subprocess.run([sys.executable, "-m", "storm", "results", "add", str(tmp_path / "1.csv"), "--store",
                            str(tmp_path / "store"), "--run-name", "by-hand"], capture_output=True, text=True)
    assert added.returncode == 0 and "by-hand" in cli("runs").stdout
    for args, message in [(("leaderboard", "--metric", "nope"), "no metric values for metric(s)"),
                          (("compare", "first", "missing"), "no run(s) named"),
                          (("export", "nope"), "no table 'nope'")]:
        done = cli(*args)
        assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: "), done.stderr
        assert message in done.stderr
    missing = subprocess.run([sys.executable, "-m", "storm", "results", "runs", "--store", str(tmp_path / "none")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no results store at" in missing.stderr
