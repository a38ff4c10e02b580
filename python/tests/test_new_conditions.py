"""Predictions for conditions no one measured: the round trip through a held-out pair, the
spread over seeds, flags, and one clear error for a condition a model cannot represent."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from storm.errors import InputError
from storm.new_conditions import predict_conditions
from storm.predict import predict
from storm.spec import CELL_TYPE, PERTURBATION
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
