"""One model over several devices of a node (DDP): each rank reads its own cells of an epoch, as
many batches as every other rank, and a run on two CPU processes (gloo) completes, checkpoints
and resumes, rank 0 alone writing its files."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from storm.data.loader import shard_fetches
from storm.data.sampling import Sampling
from storm.models import get_model_class
from storm.models.conditions import conditions_for, control_pairs
from storm.models.neural import PairBatches


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_read_disjoint_cells_and_as_many_batches(split_data, world_size):
    cls = get_model_class("linear_additive")
    model = cls(split_data.spec, seed=0, **cls.resolve_config({"backed": True}))
    model.conditions = conditions_for(split_data, "auto")
    targets, controls = control_pairs(split_data, "train", np.random.default_rng(0))
    sampling = Sampling("block_shuffling", 4, 8, fetch_factor=2, seed=0)
    seen, lengths = [], []
    for rank in range(world_size):
        dataset = PairBatches(model, split_data, targets, controls, sampling, rank, world_size)
        batches = list(dataset)
        assert len(batches) == len(dataset) > 0  # the length Lightning is told is what it gets
        lengths.append(len(batches))
        seen.append(np.concatenate([fetch for _, fetch in shard_fetches(
            dataset.sampling, targets.size, 0, rank=rank, world_size=world_size, equal=True)]))
    assert len(set(lengths)) == 1  # a rank that ran out first would leave the others waiting
    everything = np.concatenate(seen)
    assert np.unique(everything).size == everything.size  # no pair read by two ranks
    assert everything.size > 0.8 * targets.size  # only the last few fetches wait for another epoch


def _train(prepared_split, out, checkpoints):
    prepared, split, genes = prepared_split
    return subprocess.run([sys.executable, "-m", "storm", "train", "--prepared", str(prepared), "--split", str(split),
                           "--genes", str(genes), "--model", "linear_additive", "--out-dir", str(out),
                           "--checkpoint-dir", str(checkpoints), "--set", "devices=2", "--set", "accelerator=cpu",
                           "--set", "backed=true", "--set", "batch_size=16", "--set", "patience=0",
                           "--set", "max_epochs=2", "--set", "min_steps=100000"],
                          capture_output=True, text=True, timeout=900)


def test_two_processes_train_checkpoint_and_resume(prepared_split, split_data, tmp_path):
    first = _train(prepared_split, tmp_path / "first", tmp_path / "checkpoints")
    assert first.returncode == 0, first.stderr[-3000:]
    # each of the two ranks took half an epoch's batches: the steps of an epoch are one rank's
    n_pairs = control_pairs(split_data, "train", np.random.default_rng(0))[0].size
    steps = pd.read_csv(tmp_path / "first" / "train_steps.csv")
    per_rank = Sampling("block_shuffling", 16, 16).for_shards(n_pairs, 2).n_batches(n_pairs, 2)
    assert (steps.groupby("epoch").size() == per_rank).all() and per_rank > 0
    assert pd.read_csv(tmp_path / "first" / "train_log.csv")["epoch"].tolist() == [0, 1]
    assert list((tmp_path / "checkpoints").rglob("last.ckpt"))
    assert (tmp_path / "first" / "model.json").is_file() and (tmp_path / "first" / "weights.pt").is_file()
    # the same run again resumes from its last checkpoint, on two processes again, to the same model
    again = _train(prepared_split, tmp_path / "again", tmp_path / "checkpoints")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stderr
    weights = [torch.load(tmp_path / run / "weights.pt", weights_only=True)["state_dict"] for run in ("first", "again")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_model_that_trains_on_one_device_says_so():
    from storm.errors import StormError

    with pytest.raises(StormError, match="devices must be 1 for this model, got 2"):
        get_model_class("st").resolve_config({"devices": 2})


def test_an_old_nvidia_driver_stops_training_naming_both_versions(tmp_path, monkeypatch):
    from storm import gpus
    from storm.errors import StormError

    monkeypatch.setattr(gpus, "DRIVER_FILE", tmp_path / "version")
    gpus.check_driver("13.0")  # no driver loaded: not a GPU host, nothing to check
    (tmp_path / "version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 2023\n")
    assert gpus.host_driver() == (535, 104, 5)
    gpus.check_driver("12.4")
    with pytest.raises(StormError, match=r"driver is 535\.104\.5; torch's CUDA 13\.0 needs 580\.65\.6 or newer"):
        gpus.check_driver("13.0")
    (tmp_path / "version").write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release\n")
    gpus.check_driver("13.0")
