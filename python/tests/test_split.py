import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storm.errors import InputError
from storm.split import transfer_split


def check_invariants(obs: pd.DataFrame, result) -> None:
    cells = result.cells
    assert len(cells) == len(obs) and cells["split"].notna().all()  # no cell left out
    assert set(cells["split"]) <= {"train", "val", "test"}
    frame = obs.assign(split=cells["split"].to_numpy())
    is_ctrl = frame["perturbation"] == "control"
    for (ct, split), group in frame.groupby(["cell_type", "split"], observed=True):
        if (group["perturbation"] != "control").any():
            assert (group["perturbation"] == "control").any(), f"{ct}/{split} has no controls"
    pairs = result.pairs
    held = pairs[pairs["split"] != "train"]
    for _, row in held.iterrows():
        others = pairs[(pairs["perturbation"] == row["perturbation"]) & (pairs["split"] == "train")]
        assert len(others) >= 1 and row["cell_type"] not in set(others["cell_type"])
    # every perturbed cell's split is its pair's split
    merged = frame[~is_ctrl].merge(pairs, on=["cell_type", "perturbation"], suffixes=("", "_pair"))
    assert (merged["split"] == merged["split_pair"]).all()


def test_invariants_on_synthetic(small_adata):
    result = transfer_split(small_adata.obs, "perturbation", "cell_type", "control", seed=0)
    check_invariants(small_adata.obs, result)
    assert result.summary["pairs_per_split"]["test"] > 0
    assert result.summary["pairs_per_split"]["val"] > 0


def test_seed_determinism(small_adata):
    a = transfer_split(small_adata.obs, "perturbation", "cell_type", "control", seed=0)
    b = transfer_split(small_adata.obs, "perturbation", "cell_type", "control", seed=0)
    c = transfer_split(small_adata.obs, "perturbation", "cell_type", "control", seed=1)
    assert a.cells.equals(b.cells)
    assert not a.cells["split"].equals(c.cells["split"])


def test_single_cell_type_perturbation_stays_in_training(small_adata):
    obs = small_adata.obs.copy()
    obs["perturbation"] = obs["perturbation"].astype(str)
    lone = obs["perturbation"].iloc[-1]
    drop = (obs["perturbation"] == lone) & (obs["cell_type"] != obs["cell_type"].iloc[-1])
    obs = obs[~drop]
    result = transfer_split(obs, "perturbation", "cell_type", "control", seed=0)
    assert set(result.pairs.loc[result.pairs["perturbation"] == lone, "split"]) == {"train"}
    assert lone in result.summary["train_only_perturbations"]


def test_bad_fraction(small_adata):
    with pytest.raises(InputError, match="heldout_fraction"):
        transfer_split(small_adata.obs, "perturbation", "cell_type", "control", seed=0, heldout_fraction=1.5)


@st.composite
def obs_tables(draw):
    n_ct = draw(st.integers(2, 5))
    n_pert = draw(st.integers(1, 8))
    rows = []
    for c in range(n_ct):
        rows += [(f"ct{c}", "control")] * draw(st.integers(3, 12))
        for p in range(n_pert):
            rows += [(f"ct{c}", f"p{p}")] * draw(st.integers(0, 4))
    obs = pd.DataFrame(rows, columns=["cell_type", "perturbation"])
    obs.index = [f"c{i}" for i in range(len(obs))]
    return obs


@settings(max_examples=60, deadline=None)
@given(obs=obs_tables(), seed=st.integers(0, 1000), frac=st.floats(0.1, 0.9))
def test_invariants_property(obs, seed, frac):
    check_invariants(obs, transfer_split(obs, "perturbation", "cell_type", "control", seed, heldout_fraction=frac))
