"""The splitter: every strategy, every invariant (property-based), every export, bad inputs."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from storm.errors import InputError, SpecError, StormError
from storm.spec import DatasetSpec
from storm.split import SplitInvariantError, SplitParams, make_split, read_coded_obs, write_split
from storm.split.core import SPLITS
from storm.split.obs import CodedObs, code_strings

SPEC = DatasetSpec()

KEYS = ["cell_type", "perturbation"]


def coded_from_frame(frame: pd.DataFrame, columns: list[str]) -> CodedObs:
    """The coded obs of an in-memory table (index = cell ids), as storm reads them from a file."""
    cell_ids = pa.array(frame.index.astype(str).to_numpy(dtype=object), type=pa.string())
    return CodedObs(cell_ids, {c: code_strings(frame[c].to_numpy(), c) for c in dict.fromkeys(columns)})


def split_of(obs: pd.DataFrame, **kwargs):
    manual, split_file = kwargs.pop("manual", None), kwargs.pop("split_file", None)
    params = SplitParams(DatasetSpec(), **{"min_cells": 1, **kwargs})
    return make_split(coded_from_frame(obs, KEYS), params, manual_holdout=manual, split_file=split_file)


def labels(result) -> np.ndarray:
    return SPLITS[result.cell_split]


def check_rules(obs: pd.DataFrame, result, min_cells=1, min_train=1, rule="seen", delimiter="+"):
    """An independent check of the rules every split must obey."""
    split = labels(result)
    assert len(split) == len(obs) and set(split) <= {"train", "val", "test"}  # no cell left out
    frame = obs.assign(split=split)
    ctrl = frame["perturbation"] == "control"
    pert = frame[~ctrl]
    have_ctrl = set(zip(frame.loc[ctrl, "cell_type"], frame.loc[ctrl, "split"]))
    have_pert = set(zip(pert["cell_type"], pert["split"]))
    for key in have_pert:
        assert key in have_ctrl, f"{key} has perturbed cells but no controls"
    for ct, s in have_ctrl - have_pert:  # held-out controls only where held-out cells need them
        assert s == "train" or not (pert["cell_type"] == ct).any(), f"{ct} has {s} controls that nothing uses"
    pair_splits = pert.groupby(KEYS, observed=True)["split"].agg(set)
    assert all(len(s) == 1 for s in pair_splits)  # a pair is never cut in two
    pair_split = pair_splits.map(lambda s: next(iter(s)))
    sizes = pert.groupby(KEYS, observed=True).size()
    assert (pair_split[sizes < min_cells] == "train").all()
    train = set(pair_split[pair_split == "train"].index)
    for (ct, p), s in pair_split.items():
        if s == "train":
            continue
        if rule == "seen":
            others = {c for c, q in train if q == p and c != ct}
            assert len(others) >= min_train, (ct, p)
        elif rule == "singles":
            assert all((ct, single) in train for single in p.split(delimiter)), (ct, p)
        elif rule == "in_combo":
            assert any(q for c, q in train if c == ct and p in q.split(delimiter) and delimiter in q), (ct, p)
    # pairs.csv agrees with the cells
    table = result.pairs[~result.pairs["is_control"]].set_index(KEYS)["split"]
    assert table.sort_index().equals(pair_split.sort_index().rename("split"))


def make_obs(n_ct=4, n_pert=12, cells=12, controls=30, combos=(), seed=0) -> pd.DataFrame:
    rows = []
    for c in range(n_ct):
        rows += [(f"CT{c}", "control")] * controls
        for p in range(n_pert):
            rows += [(f"CT{c}", f"P{p}")] * cells
        for a, b in combos:
            rows += [(f"CT{c}", f"P{a}+P{b}")] * cells
    obs = pd.DataFrame(rows, columns=KEYS)
    obs.index = [f"cell{i}" for i in range(len(obs))]
    return obs


def test_transfer_rules_and_caps():
    obs = make_obs()
    result = split_of(obs, max_heldout_fraction_per_covariate=0.25, max_heldout_covariates=2)
    check_rules(obs, result)
    pairs = result.pairs[~result.pairs["is_control"]]
    held = pairs[pairs["split"] != "train"]
    assert held.groupby("cell_type").size().max() <= 0.25 * 12
    assert held.groupby("perturbation").size().max() <= 2
    assert set(held["split"]) == {"val", "test"}


def test_whole_time_courses_hold_out_every_time_point_together():
    """A compound held out in a cell type is held out there at all its time points, in one split,
    and still trains at each time point elsewhere; without times the option is refused."""
    rows = []
    for c in range(4):
        rows += [(f"CT{c}", "control")] * 30
        rows += [(f"CT{c}", f"P{p}|time={t}") for p in range(10) for t in (10, 14, 19) for _ in range(5)]
    obs = pd.DataFrame(rows, columns=KEYS, index=[f"cell{i}" for i in range(len(rows))])
    result = split_of(obs, whole_time_courses=True, max_heldout_fraction_per_covariate=0.3)
    check_rules(obs, result)
    pairs = result.pairs[~result.pairs["is_control"]].assign(
        compound=lambda t: t["perturbation"].astype(str).str.split("|").str[0])
    per_course = pairs.groupby(["cell_type", "compound"])["split"].agg(lambda s: tuple(sorted(set(s))))
    assert (per_course.map(len) == 1).all()  # never cut across time points or splits
    held = per_course[per_course.map(lambda s: s[0] != "train")]
    assert len(held) >= 4 and (pairs.groupby(["cell_type", "compound"]).size()[held.index] == 3).all()
    with pytest.raises(InputError, match="whole_time_courses needs conditions with a time"):
        split_of(make_obs(), whole_time_courses=True)


def test_seed_determinism():
    obs = make_obs()
    a, b, c = split_of(obs, seed=0), split_of(obs, seed=0), split_of(obs, seed=1)
    assert np.array_equal(a.cell_split, b.cell_split)
    assert not np.array_equal(a.cell_split, c.cell_split)


def test_small_pairs_stay_in_training_with_reason():
    obs = make_obs()
    drop = (obs["cell_type"] == "CT0") & (obs["perturbation"] == "P0")
    obs = obs[~drop | (obs.groupby(KEYS).cumcount() < 3)]
    result = split_of(obs, min_cells=5)
    check_rules(obs, result, min_cells=5)
    reasons = result.summary["train_only"]
    assert reasons["fewer than 5 cells"]["examples"] == ["CT0/P0"]


def test_cell_types_without_enough_controls():
    obs = make_obs()
    no_ctrl = obs[~((obs["cell_type"] == "CT2") & (obs["perturbation"] == "control"))]
    with pytest.raises(InputError, match="cell type\\(s\\) CT2 have no control cells"):
        split_of(no_ctrl)
    few = obs[~((obs["cell_type"] == "CT2") & (obs["perturbation"] == "control")) | (obs.groupby(KEYS).cumcount() < 2)]
    result = split_of(few)
    check_rules(few, result)
    assert result.summary["train_only"]["its cell type has fewer than 3 control cells"]["pairs"] == 12


def test_training_only_cell_type_keeps_its_controls_in_training():
    """A cell type with nothing held out (its pairs too small) is training-only, controls included."""
    obs = make_obs()
    small = (obs["cell_type"] == "CT3") & (obs["perturbation"] != "control")
    obs = obs[~small | (obs.groupby(KEYS).cumcount() < 3)]
    result = split_of(obs, min_cells=5)
    check_rules(obs, result, min_cells=5)
    ct3 = labels(result)[(obs["cell_type"] == "CT3").to_numpy()]
    assert set(ct3) == {"train"}
    ct0_controls = ((obs["cell_type"] == "CT0") & (obs["perturbation"] == "control")).to_numpy()
    assert {"val", "test"} <= set(labels(result)[ct0_controls])


def test_perturbation_in_one_cell_type_trains_only():
    obs = pd.concat([make_obs(), pd.DataFrame({"cell_type": ["CT1"] * 12, "perturbation": ["LONE"] * 12},
                                              index=[f"lone{i}" for i in range(12)])])
    result = split_of(obs)
    check_rules(obs, result)
    assert "CT1/LONE" in next(v["examples"] for k, v in result.summary["train_only"].items() if "measured in 1" in k)


def test_empty_table_and_missing_controls():
    with pytest.raises(InputError, match="no cells"):
        split_of(make_obs().iloc[:0])
    obs = make_obs()
    with pytest.raises(InputError, match="control value 'control' not found"):
        split_of(obs[obs["perturbation"] != "control"])


def test_awkward_names(tmp_path):
    obs = make_obs()
    rename = {"P0": "GENE A/B", "P1": "x+y", "P2": "drug 10 µM"}
    obs["perturbation"] = obs["perturbation"].replace(rename)
    obs["cell_type"] = obs["cell_type"].replace({"CT0": "T cell / CD4", "CT1": "cell.line 1"})
    result = split_of(obs)
    check_rules(obs, result)
    coded = coded_from_frame(obs, KEYS)
    write_split(result, coded.cell_ids, tmp_path, ["cell_type"], SPEC, "my.data", "/data/x.h5ad", exports=["state"])
    back = pd.read_parquet(tmp_path / "split.parquet")
    assert back["split"].tolist() == labels(result).tolist()
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    assert set(rename.values()) <= set(pairs["perturbation"])
    from cell_load.config import ExperimentConfig

    config = ExperimentConfig.from_toml(str(tmp_path / "state.toml"))
    config.validate()
    fewshot = config.get_fewshot_celltypes("my_data")
    held = result.pairs[(result.pairs["split"] == "test") & ~result.pairs["is_control"]]
    for ct, group in held.groupby("cell_type"):
        assert sorted(fewshot[ct]["test"]) == sorted(group["perturbation"])


def test_exports(tmp_path):
    """Only what is asked for: split.parquet always; State's TOML (cell-load loads it) and a
    `state tx train` command on it; PerturBench's headerless CSV (the same rows) and an experiment
    config naming the dataset, its columns and that CSV."""
    import shlex

    obs = make_obs()
    result = split_of(obs, strategy="zeroshot", zeroshot_covariates=["CT3"])
    coded = coded_from_frame(obs, KEYS)
    write_split(result, coded.cell_ids, tmp_path / "lean", ["cell_type"], SPEC, "ds", "/data/ds.h5ad")
    lean = sorted(p.name for p in (tmp_path / "lean").iterdir())
    assert lean == ["pairs.csv", "split.parquet", "split.parquet.sha256", "split.png", "summary.json"]
    write_split(result, coded.cell_ids, tmp_path, ["cell_type"], SPEC, "ds", "/data/ds.h5ad", seed=3,
                exports=["state", "perturbench"])
    table = pd.read_parquet(tmp_path / "split.parquet")
    rows = [f"{c},{s}" for c, s in zip(table["cell_id"], table["split"].astype(str))]
    assert (tmp_path / "perturbench_split.csv").read_text().splitlines() == rows
    assert (tmp_path / "split.png").read_bytes().startswith(b"\x89PNG")
    from cell_load.config import ExperimentConfig

    config = ExperimentConfig.from_toml(str(tmp_path / "state.toml"))
    assert config.get_zeroshot_celltypes("ds") == {"CT3": "test"}
    assert config.datasets == {"ds": "/data/ds.h5ad"}
    command = [line for line in (tmp_path / "state_tx_train.sh").read_text().splitlines() if not line.startswith("#")]
    args = shlex.split(command[0])
    settings = dict(a.split("=", 1) for a in args[3:])
    assert args[:3] == ["state", "tx", "train"] and settings["name"] == "ds_" + result.name
    assert Path(settings["data.kwargs.toml_config_path"]) == (tmp_path / "state.toml").resolve()
    assert (settings["data.kwargs.pert_col"], settings["data.kwargs.cell_type_key"],
            settings["data.kwargs.control_pert"]) == ("perturbation", "cell_type", "control")
    experiment = yaml.safe_load((tmp_path / "perturbench_experiment.yaml").read_text())
    assert {"override /data/splitter": "saved_split"} in experiment["defaults"] and experiment["seed"] == 3
    data = experiment["data"]
    assert Path(data["splitter"]["split_path"]) == (tmp_path / "perturbench_split.csv").resolve()
    assert (data["datapath"], data["perturbation_key"], data["perturbation_control_value"],
            data["covariate_keys"]) == ("/data/ds.h5ad", "perturbation", "control", ["cell_type"])


def test_zeroshot_holds_out_cell_type_with_controls():
    obs = make_obs()
    result = split_of(obs, strategy="zeroshot", zeroshot_covariates=["CT1"])
    check_rules(obs, result)
    split = pd.Series(labels(result), index=obs.index)
    assert set(split[obs["cell_type"] == "CT1"]) == {"test"}
    others = (obs["cell_type"] != "CT1") & (obs["perturbation"] != "control")
    assert set(split[others]) == {"train"}
    drawn = split_of(obs, strategy="zeroshot", n_zeroshot=2, seed=3)
    assert len(drawn.summary["zeroshot_cell_types"]) == 2
    with pytest.raises(InputError, match="cell type\\(s\\) CT9 not in the data"):
        split_of(obs, strategy="zeroshot", zeroshot_covariates=["CT9"])


def test_zeroshot_unseen_perturbation_is_an_error():
    obs = pd.concat([make_obs(), pd.DataFrame({"cell_type": ["CT0"] * 12, "perturbation": ["ONLY0"] * 12},
                                              index=[f"o{i}" for i in range(12)])])
    with pytest.raises(SplitInvariantError, match="CT0/ONLY0 is in training in 0 other covariate"):
        split_of(obs, strategy="zeroshot", zeroshot_covariates=["CT0"])
    check_rules(obs, split_of(obs, strategy="zeroshot", zeroshot_covariates=["CT0"], min_train_covariates=0),
                min_train=0)


@pytest.mark.parametrize("strategy, rule", [("combo", "singles"), ("combo_inverse", "in_combo")])
def test_combo_strategies(strategy, rule):
    obs = make_obs(n_pert=6, combos=[(0, 1), (2, 3), (4, 5), (0, 5)])
    result = split_of(obs, strategy=strategy, heldout_fraction=0.5)
    check_rules(obs, result, rule=rule)
    held = result.pairs[(result.pairs["split"] != "train") & ~result.pairs["is_control"]]
    assert len(held) > 0
    assert held["perturbation"].str.contains("+", regex=False).all() == (strategy == "combo")
    with pytest.raises(InputError, match="found no"):
        split_of(make_obs(), strategy=strategy)


def test_manual_yaml_and_csv(tmp_path):
    obs = make_obs()
    yaml_file = tmp_path / "holdout.yaml"
    yaml_file.write_text("test:\n  pairs: [[CT0, P1], [CT2, P3]]\nval:\n  pairs: [[CT1, P1]]\n")
    result = split_of(obs, strategy="manual", manual=yaml_file)
    check_rules(obs, result)
    held = result.pairs[(result.pairs["split"] != "train") & ~result.pairs["is_control"]]
    assert set(zip(held["cell_type"], held["perturbation"], held["split"])) == {
        ("CT0", "P1", "test"), ("CT2", "P3", "test"), ("CT1", "P1", "val")}
    assert result.name == "seed0_manual"
    csv_file = tmp_path / "holdout.csv"
    csv_file.write_text("split,cell_type,perturbation\ntest,CT3,\n")
    whole = split_of(obs, strategy="manual", manual=csv_file)
    check_rules(obs, whole)
    assert set(labels(whole)[(obs["cell_type"] == "CT3").to_numpy()]) == {"test"}


def test_manual_bad_inputs(tmp_path):
    obs = make_obs()
    unknown = tmp_path / "u.yaml"
    unknown.write_text("test:\n  pairs: [[CT0, NOPE]]\n")
    with pytest.raises(InputError, match="CT0/NOPE, which is not in the data"):
        split_of(obs, strategy="manual", manual=unknown)
    everywhere = tmp_path / "e.yaml"
    everywhere.write_text("test:\n  perturbations: [P4]\n")
    with pytest.raises(SplitInvariantError, match="in training in 0 other covariate"):
        split_of(obs, strategy="manual", manual=everywhere)
    check_rules(obs, split_of(obs, strategy="manual", manual=everywhere, min_train_covariates=0), min_train=0)
    bad = tmp_path / "b.yaml"
    bad.write_text("train:\n  pairs: [[CT0, P1]]\n")
    with pytest.raises(InputError, match="split must be val or test"):
        split_of(obs, strategy="manual", manual=bad)


def test_file_strategy_roundtrip(tmp_path):
    obs = make_obs()
    original = split_of(obs, seed=4)
    coded = coded_from_frame(obs, KEYS)
    write_split(original, coded.cell_ids, tmp_path, ["cell_type"], SPEC, "ds", "ds.h5ad", exports=["perturbench"])
    for name in ("split.parquet", "perturbench_split.csv"):
        again = split_of(obs, strategy="file", split_file=tmp_path / name)
        assert np.array_equal(again.cell_split, original.cell_split)
    shuffled = pd.read_parquet(tmp_path / "split.parquet").sample(frac=1, random_state=0)
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    assert np.array_equal(split_of(obs, strategy="file", split_file=tmp_path / "shuffled.csv").cell_split,
                          original.cell_split)
    shuffled.iloc[1:].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(InputError, match="gives no split for 1 cell"):
        split_of(obs, strategy="file", split_file=tmp_path / "short.csv")


def test_obs_sources_agree(tmp_path, small_adata):
    from storm import io

    io.write_h5ad(small_adata, tmp_path / "d.h5ad")
    frame = small_adata.obs.rename_axis("cell_id").reset_index()
    frame.to_parquet(tmp_path / "d.parquet")
    frame.to_csv(tmp_path / "d.csv", index=False)
    sources = [read_coded_obs(tmp_path / f"d.{ext}", KEYS) for ext in ("h5ad", "parquet", "csv")]
    for other in sources[1:]:
        assert other.cell_ids.to_pylist() == sources[0].cell_ids.to_pylist()
        for key in KEYS:
            assert np.array_equal(other.columns[key].codes, sources[0].columns[key].codes)
            assert list(other.columns[key].categories) == list(sources[0].columns[key].categories)
    with pytest.raises(SpecError, match="column\\(s\\) dose not found"):
        read_coded_obs(tmp_path / "d.parquet", ["dose"])
    with pytest.raises(SpecError, match="obs column 'dose' not found"):
        read_coded_obs(tmp_path / "d.h5ad", ["dose"])


def test_multiple_covariates():
    obs = make_obs()
    obs["dose"] = np.where(np.arange(len(obs)) % 2 == 0, "low", "high")
    params = SplitParams(DatasetSpec(), ["cell_type", "dose"], min_cells=1)
    result = make_split(coded_from_frame(obs, ["cell_type", "dose", "perturbation"]), params)
    pert = result.pairs[~result.pairs["is_control"]]
    assert {"cell_type", "dose"} <= set(pert.columns)
    assert len(pert) == 4 * 2 * 12


@st.composite
def obs_tables(draw):
    n_ct = draw(st.integers(2, 5))
    n_pert = draw(st.integers(1, 8))
    rows = []
    for c in range(n_ct):
        rows += [(f"ct{c}", "control")] * draw(st.integers(0, 12))
        for p in range(n_pert):
            rows += [(f"ct{c}", f"p{p}")] * draw(st.integers(0, 6))
        if draw(st.booleans()):
            rows += [(f"ct{c}", "p0+p1")] * draw(st.integers(1, 6))
    obs = pd.DataFrame(rows, columns=KEYS)
    obs.index = [f"c{i}" for i in range(len(obs))]
    return obs


@settings(max_examples=80, deadline=None)
@given(obs=obs_tables(), seed=st.integers(0, 1000), frac=st.floats(0.05, 1.0),
       strategy=st.sampled_from(["transfer", "combo", "combo_inverse", "zeroshot"]),
       min_cells=st.integers(1, 4))
def test_invariants_hold_or_the_split_fails_clearly(obs, seed, frac, strategy, min_cells):
    ctrl = obs["perturbation"] == "control"
    splittable = ctrl.any() and set(obs.loc[~ctrl, "cell_type"]) <= set(obs.loc[ctrl, "cell_type"])
    try:
        result = split_of(obs, seed=seed, strategy=strategy, min_cells=min_cells,
                          max_heldout_fraction_per_covariate=frac, heldout_fraction=frac)
    except StormError as exc:
        # the only failures allowed: data without controls where they are needed (said so), or a
        # rule the data makes impossible for the strategy
        allowed = {"transfer": (), "combo": ("found no",), "combo_inverse": ("found no",),
                   "zeroshot": ("other covariate", "fewer held-out cell types")}[strategy]
        unsplittable = ("control value 'control' not found", "have no control cells", "has no cells")
        assert any(text in str(exc) for text in (allowed if splittable else unsplittable)), exc
        return
    rule = {"combo": "singles", "combo_inverse": "in_combo"}.get(strategy, "seen")
    check_rules(obs, result, min_cells=1 if strategy == "zeroshot" else min_cells, rule=rule)
    again = split_of(obs, seed=seed, strategy=strategy, min_cells=min_cells,
                     max_heldout_fraction_per_covariate=frac, heldout_fraction=frac)
    assert np.array_equal(again.cell_split, result.cell_split)


def test_cell_ids_that_need_quotes_round_trip(tmp_path):
    obs = make_obs(n_ct=2, n_pert=3)
    obs.index = [f'cell,{i}"x' if i % 7 == 0 else f"cell{i}" for i in range(len(obs))]
    result = split_of(obs)
    write_split(result, coded_from_frame(obs, KEYS).cell_ids, tmp_path, ["cell_type"], SPEC, "ds", "ds.h5ad",
                exports=["perturbench"])
    back = pd.read_parquet(tmp_path / "split.parquet")
    assert back["cell_id"].tolist() == list(obs.index)
    for name in ("split.parquet", "perturbench_split.csv"):
        again = split_of(obs, strategy="file", split_file=tmp_path / name)
        assert np.array_equal(again.cell_split, result.cell_split)
