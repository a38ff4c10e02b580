"""The published models, each trained and predicted by its own package in its own environment
(`storm train` hands the command to it): they keep the prediction contract, beat control_mean and
record their package's version; a missing environment is one clear error naming its install
command; CellOT's maps are gradients of convex networks and resume from their checkpoint."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from storm.models import get_model_class
from storm.models.environments import runs_here
from storm.predict import write_real
from storm.train import train
from training_inputs import check_prediction, pearson_delta

#: model -> (small-budget overrides, the package model.json must name)
ZOO = {
    "scgen": (["max_epochs=40"], "pertpy"),
    "cpa": (["max_epochs=40", "plan_kwargs.n_epochs_adv_warmup=5", "plan_kwargs.n_epochs_pretrain_ae=5"],
            "cpa-tools"),
    "biolord": (["max_epochs=60"], "biolord"),
    "cellflow": (["max_steps=300"], "cellflow-tools"),
    "cellot": (["steps=400"], "torch"),
}


def storm(*args, env=None):
    return subprocess.run([sys.executable, "-m", "storm", *args], capture_output=True, text=True, env=env)


def split_args(prepared_split):
    prepared, split, genes = prepared_split
    return ["--prepared", str(prepared), "--split", str(split), "--genes", str(genes)]


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_trains_in_its_environment_and_beats_control_mean(prepared_split, control_floor, tmp_path, name):
    overrides, package = ZOO[name]
    model, pred = tmp_path / "model", tmp_path / "pred"
    sets = [arg for value in overrides for arg in ("--set", value)]
    done = storm("train", *split_args(prepared_split), "--model", name, "--out-dir", str(model), *sets)
    assert done.returncode == 0, done.stderr[-4000:]
    elsewhere = not runs_here(get_model_class(name))
    assert (f"handing over to {os.path.dirname(sys.prefix)}/.venv-{name}" in done.stderr) == elsewhere
    meta = json.loads((model / "model.json").read_text())
    assert meta["versions"][package]
    done = storm("predict", *split_args(prepared_split), "--model-dir", str(model), "--out", str(pred / "pred.h5ad"))
    assert done.returncode == 0, done.stderr[-4000:]
    write_real(*prepared_split, pred / "real.h5ad")
    check_prediction(pred, meta["genes"])
    assert pearson_delta(pred) > control_floor + 0.1


def test_a_missing_environment_is_named_with_its_install_command(prepared_split, small_h5ad, tmp_path):
    env = {**os.environ, "STORM_ENVS_DIR": str(tmp_path / "no-envs")}
    model = tmp_path / "model"
    done = storm("train", *split_args(prepared_split), "--model", "cpa", "--out-dir", str(model), env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: model 'cpa' runs in environment 'cpa'")
    assert "run `make install-env ENV=cpa`" in done.stderr
    assert not model.exists()
    # the pipeline's CHECK finds it before anything expensive runs
    done = storm("check", "--input", str(small_h5ad), "--models", "control_mean,cpa", "--require-environments", env=env)
    assert done.returncode == 2 and "make install-env ENV=cpa" in done.stderr
    listed = json.loads(storm("models", "--json", env=env).stdout)
    assert listed["cpa"]["installed"] == "missing: make install-env ENV=cpa"
    assert listed["control_mean"]["installed"] == "here" and listed["cpa"]["environment"] == "cpa"
    assert json.loads(storm("models", "--json").stdout)["cpa"]["installed"].startswith("installed (")


def test_cellot_maps_are_gradients_of_convex_networks():
    """With f's hidden weights clipped non-negative, its gradient is monotone: <∇f(a) - ∇f(b), a - b> >= 0."""
    from storm.models.cellot import BatchedICNN

    torch.manual_seed(0)
    net = BatchedICNN(n_maps=3, dim=5, hidden=[16, 16], leak=0.2)
    with torch.no_grad():
        for W in net.W:
            W.sub_(0.5)  # some negative weights, which clip() removes
    net.clip()
    a, b = torch.randn(3, 200, 5), torch.randn(3, 200, 5)
    monotone = ((net.transport(a) - net.transport(b)) * (a - b)).sum(-1)
    assert (monotone >= -1e-5).all()


def test_cellot_resumes_from_its_last_checkpoint(prepared_split, tmp_path, caplog):
    config = {"steps": 20, "checkpoint_every": 10, "inner_steps": 2, "accelerator": "cpu"}
    out = tmp_path / "model"
    train(*prepared_split, "cellot", out, seed=0, config=config)
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["step"] == 20
    with caplog.at_level(logging.INFO, logger="storm"):
        train(*prepared_split, "cellot", out, seed=0, config={**config, "steps": 30})
    assert "at step 20" in caplog.text
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["step"] == 30
    assert np.isfinite(torch.load(out / "cellot" / "maps.pt", weights_only=False)["components"]).all()
