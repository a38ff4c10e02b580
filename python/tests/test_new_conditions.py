"""Predictions for conditions no one measured: the round trip through a held-out pair, the
spread over seeds, flags, one clear error for a condition a model cannot represent, and CHECK's
reading of a conditions table (what it holds out, what it refuses)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from storm.errors import InputError
from storm.new_conditions import predict_conditions, requested_conditions
from storm.predict import predict
from storm.spec import CELL_TYPE, PERTURBATION, DatasetSpec
from storm.split import SplitParams, make_split
from storm.split.obs import read_split_obs
from storm.train import train

FAST = {"max_epochs": 2, "accelerator": "cpu"}


@pytest.fixture(scope="module")
def benchmark(prepared_split, tmp_path_factory):
    """linear_additive trained on a split (its test pairs held out) over two seeds, and its pred.h5ad."""
    out = tmp_path_factory.mktemp("benchmark")
    for seed in (0, 1):
        train(*prepared_split, "linear_additive", out / f"model{seed}", seed=seed, config=FAST)
    predict(*prepared_split, out / "model0", out / "pred.h5ad", seed=0)
    return out


def request(tmp_path, rows: list[tuple[str, str]]):
    path = tmp_path / "conditions.csv"
    pd.DataFrame(rows, columns=[CELL_TYPE, PERTURBATION]).to_csv(path, index=False)
    return path


def test_a_held_out_pair_requested_anew_gets_the_benchmarks_prediction(prepared_split, benchmark, tmp_path):
    pred = ad.read_h5ad(benchmark / "pred.h5ad")
    held = pred.obs[pred.obs[PERTURBATION] != "control"].groupby([CELL_TYPE, PERTURBATION], observed=True).size()
    (ct, pert), n = held.index[-1], int(held.iloc[-1])
    table = predict_conditions(*prepared_split, [benchmark / "model0"], request(tmp_path, [(ct, pert)]),
                               tmp_path / "new.h5ad", n_cells=n)
    new = ad.read_h5ad(tmp_path / "new.h5ad")
    mine = ((pred.obs[CELL_TYPE] == ct) & (pred.obs[PERTURBATION] == pert)).to_numpy()
    np.testing.assert_array_equal(new.X, pred.X[mine])
    assert table.loc[0, "flags"] == "" and table.loc[0, "top_up"]
    assert pd.read_csv(tmp_path / "new.csv").loc[0, PERTURBATION] == pert


def test_seeds_give_the_mean_change_and_its_spread(prepared_split, benchmark, split_data, tmp_path):
    ct = sorted(set(split_data.cell_type))[0]
    pert = sorted(set(split_data.perturbation[split_data.mask("train") & ~split_data.is_control]))[0]
    models = [benchmark / "model0", benchmark / "model1"]
    predict_conditions(*prepared_split, models, request(tmp_path, [(ct, pert)]), tmp_path / "new.h5ad", n_cells=30)
    new = ad.read_h5ad(tmp_path / "new.h5ad")
    assert new.n_obs == 60 and sorted(set(new.obs["seed"])) == [0, 1]
    assert list(new.uns["conditions"]) == [f"{ct}/{pert}"]
    for i, model in enumerate(models):  # each seed alone
        predict_conditions(*prepared_split, [model], request(tmp_path, [(ct, pert)]), tmp_path / f"{i}.h5ad",
                           n_cells=30)
    changes = np.stack([ad.read_h5ad(tmp_path / f"{i}.h5ad").varm["mean_change"][:, 0] for i in range(2)])
    np.testing.assert_allclose(new.varm["mean_change"][:, 0], changes.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(new.varm["change_sd"][:, 0], changes.std(axis=0), atol=1e-5)
    assert (new.varm["change_sd"] > 0).any()


def test_a_condition_the_model_cannot_represent_is_one_error(prepared_split, benchmark, tmp_path, run_cli):
    ct = "CT0"
    with pytest.raises(InputError, match=f"condition {ct}/ghost: perturbation 'ghost' was never trained"):
        predict_conditions(*prepared_split, [benchmark / "model0"], request(tmp_path, [(ct, "ghost")]),
                           tmp_path / "new.h5ad")
    assert not (tmp_path / "new.h5ad").exists()
    done = run_cli("predict", "--prepared", str(prepared_split[0]), "--split", str(prepared_split[1]),
                   "--genes", str(prepared_split[2]), "--model-dir", str(benchmark / "model0"),
                   "--conditions", str(request(tmp_path, [("nowhere", "ghost")])), "--out", str(tmp_path / "x.h5ad"))
    assert done.returncode == 2 and "error: condition nowhere/ghost: cell type 'nowhere' has no control" in done.stderr
    assert not list(tmp_path.glob("x.*"))


def test_conditions_unlike_training_are_flagged(prepared_split, tmp_path):
    """perturbed_mean predicts anything (it ignores the perturbation): the request goes through,
    flagged."""
    train(*prepared_split, "perturbed_mean", tmp_path / "model", seed=0, config={})
    table = predict_conditions(*prepared_split, [tmp_path / "model"], request(tmp_path, [("CT0", "ghost")]),
                               tmp_path / "new.h5ad", n_cells=5)
    assert table.loc[0, "flags"] == "ghost never trained"


def test_check_holds_out_the_requested_conditions_the_data_measures(small_h5ad, small_adata, tmp_path):
    obs = small_adata.obs
    perturbed = obs[obs[PERTURBATION] != "control"]
    (ct, pert), other = perturbed.groupby([CELL_TYPE, PERTURBATION], observed=True).size().index[0], \
        sorted(set(perturbed[PERTURBATION]))[-1]
    path = tmp_path / "asked.csv"
    pd.DataFrame({"dataset": ["mine", "mine", "theirs"], CELL_TYPE: [ct, ct, ct],
                  PERTURBATION: [pert, f"{pert}+{other}", other]}).to_csv(path, index=False)
    table, holdout = requested_conditions(path, small_h5ad, DatasetSpec(), "mine", molecules=False)
    assert table[PERTURBATION].tolist() == [pert, f"{pert}+{other}"] and "dataset" not in table
    assert holdout.values.tolist() == [["test", ct, pert]]  # the combination was never measured
    # the holdout is a manual holdout: the split trains every other cell
    split = make_split(read_split_obs(small_h5ad, DatasetSpec(), [CELL_TYPE]),
                       SplitParams(spec=DatasetSpec(), strategy="manual", seed=0), manual_holdout=str(holdout_csv(
                           holdout, tmp_path)))
    held = split.pairs[(split.pairs["split"] != "train") & ~split.pairs["is_control"]]
    assert held[[CELL_TYPE, PERTURBATION]].values.tolist() == [[ct, pert]]


def holdout_csv(holdout: pd.DataFrame, tmp_path):
    path = tmp_path / "holdout.csv"
    holdout.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("row, message", [
    (("CT9", "P0"), "cell type 'CT9' is not in the data"),
    (("CT0", "ghost"), "perturbation 'ghost' is never measured outside the requested conditions"),
])
def test_check_stops_on_a_condition_no_model_could_predict(small_h5ad, small_adata, tmp_path, row, message):
    ct, pert = row
    pert = sorted(set(small_adata.obs[PERTURBATION]) - {"control"})[0] if pert == "P0" else pert
    path = request(tmp_path, [(ct, pert)])
    with pytest.raises(InputError, match=message):
        requested_conditions(path, small_h5ad, DatasetSpec(), "dataset", molecules=False)


def test_a_perturbation_measured_only_where_requested_cannot_be_learnt(small_h5ad, small_adata, tmp_path):
    obs = small_adata.obs
    pert = sorted(set(obs[PERTURBATION]) - {"control"})[0]
    rows = [(ct, pert) for ct in sorted(set(obs.loc[obs[PERTURBATION] == pert, CELL_TYPE]))]
    with pytest.raises(InputError, match=f"'{pert}' is never measured outside the requested conditions"):
        requested_conditions(request(tmp_path, rows), small_h5ad, DatasetSpec(), "dataset", molecules=False)
    table, holdout = requested_conditions(request(tmp_path, rows[:-1]), small_h5ad, DatasetSpec(), "dataset",
                                          molecules=False)
    assert len(holdout) == len(rows) - 1


def test_the_none_split_trains_every_cell(small_h5ad):
    split = make_split(read_split_obs(small_h5ad, DatasetSpec(), [CELL_TYPE]),
                       SplitParams(spec=DatasetSpec(), strategy="none", seed=0))
    assert set(split.pairs["split"]) == {"train"}


def test_check_reads_every_shard_of_a_sharded_dataset(small_adata, tmp_path):
    from storm import io

    obs = small_adata.obs
    last = obs["cell_type"].astype(str) == sorted(set(obs["cell_type"].astype(str)))[-1]
    shards = [tmp_path / "a.h5ad", tmp_path / "b.h5ad"]
    io.write_h5ad(small_adata[~last.to_numpy()].copy(), shards[0])
    io.write_h5ad(small_adata[last.to_numpy()].copy(), shards[1])
    ct = sorted(set(obs.loc[last, CELL_TYPE].astype(str)))[0]
    pert = sorted(set(obs.loc[last, PERTURBATION].astype(str)) - {"control"})[0]
    _, holdout = requested_conditions(request(tmp_path, [(ct, pert)]), shards, DatasetSpec(), "dataset",
                                      molecules=False)
    assert holdout.values.tolist() == [["test", ct, pert]]  # measured in the second shard only
