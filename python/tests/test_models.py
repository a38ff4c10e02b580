import numpy as np
import pandas as pd
import pytest
import torch

from approx import assert_close
from storm.errors import StormError, UnknownModelError
from storm.models import available_models, get_model_class
from storm.train import load_model, train


def test_registry():
    assert {"control_mean", "context_mean", "linear_additive"} <= set(available_models())
    with pytest.raises(UnknownModelError, match="unknown model 'nope'; installed models: "):
        get_model_class("nope")


@pytest.mark.parametrize("name", available_models())
def test_every_installed_model_keeps_the_contract(name, split_data, run_cli):
    """Each model found through the entry points, whatever package ships it: a PerturbationModel
    whose class imports without its environment, whose defaults resolve and construct it, that
    says where it runs and what a retry does, `storm models --config` prints, and models.md lists."""
    from pathlib import Path

    from storm.models import PerturbationModel
    from storm.models.environments import CORE

    cls = get_model_class(name)
    assert issubclass(cls, PerturbationModel)
    config = cls.resolve_config({})
    assert isinstance(config, dict)
    assert cls.resume and (cls.environment == CORE or cls.requires), name  # a model elsewhere names its modules
    if cls.environment == CORE:
        assert cls(split_data.spec).config == config
    shown = run_cli("models", "--config", name)
    assert shown.returncode == 0, shown.stderr
    page = (Path(__file__).resolve().parents[2] / "docs" / "models.md").read_text()
    assert f"| `{name}` |" in page, f"docs/models.md does not list {name}"


def test_unknown_config_key(split_data):
    with pytest.raises(StormError, match="unknown config key"):
        get_model_class("linear_additive")(split_data.spec, max_epoch=3)


def test_control_mean_predicts_no_change(split_data):
    model = get_model_class("control_mean")(split_data.spec)
    controls = split_data.X[:5]
    pred = model.predict(controls, "CT0", "anything")
    assert_close(pred, np.broadcast_to(controls.mean(axis=0), controls.shape))


def test_context_mean_matches_hand_computation(split_data, tmp_path):
    model = get_model_class("context_mean")(split_data.spec)
    model.fit(split_data, tmp_path)
    data = split_data
    train = data.mask("train")
    pert = next(p for p in np.unique(data.perturbation[train & ~data.is_control]))
    shifts = []
    for ct in np.unique(data.cell_type[train & (data.perturbation == pert)]):
        pert_mean = data.X[data.mask("train", ct, pert)].mean(axis=0)
        ctrl_mean = data.X[data.mask("train", ct) & data.is_control].mean(axis=0)
        shifts.append(pert_mean - ctrl_mean)
    controls = data.X[:3]
    assert_close(model.predict(controls, "CT1", pert), controls + np.mean(shifts, axis=0), tol=1e-4)
    combo = f"{pert}+{pert}"  # unseen combination: the singles' shifts add up
    assert_close(model.predict(controls, "CT1", combo), controls + 2 * np.mean(shifts, axis=0), tol=1e-4)
    assert_close(model.predict(controls, "CT1", "unseen"), controls)


FAST = {"linear_additive": {"max_epochs": 2}, "latent_additive": {"max_epochs": 2, "dropout": 0.2},
        "decoder_only": {"max_epochs": 2, "dropout": 0.2}, "chemcpa": {"max_epochs": 2},
        "multidcp": {"max_epochs": 2}, "transigen": {"max_epochs": 2},
        "st": {"max_epochs": 2, "cell_set_len": 8, "hidden_dim": 32, "mhc.enable": True},
        "flow_matching": {"max_epochs": 2, "hidden_dim": 64, "ode_steps": 4}}


@pytest.mark.parametrize("name", ["control_mean", "context_mean", "additive", "perturbed_mean", "matching_mean", *FAST])
def test_train_save_load_roundtrip(prepared_split, tmp_path, name):
    config = {**FAST.get(name, {}), **({"accelerator": "cpu"} if name in FAST else {})}
    meta = train(*prepared_split, name, tmp_path / "model", seed=0, config=config)
    assert meta["model"] == name and len(meta["genes"]) == 80
    assert "torch" in meta["versions"]
    model, loaded_meta = load_model(tmp_path / "model")
    assert loaded_meta == meta
    from storm.data import load_split_data

    data = load_split_data(*prepared_split)
    controls = data.X[data.is_control][:4]
    pert = data.perturbation[~data.is_control][0]
    first = model.predict(controls, "CT0", pert)
    assert first.shape == controls.shape and np.isfinite(first).all()


@pytest.mark.parametrize("name", list(FAST))
def test_resumes_from_checkpoint_to_the_same_weights(prepared_split, tmp_path, name):
    """Stopped after 2 epochs and resumed to 4, a model equals one trained 4 epochs straight
    (dropout included: the random state travels in the checkpoint)."""
    def run(out, epochs):
        return train(*prepared_split, name, out, seed=0,
                     config={**FAST[name], "max_epochs": epochs, "accelerator": "cpu"})

    out = tmp_path / "model"
    run(out, 2)
    assert (out / "checkpoints" / "last.ckpt").exists()
    run(out, 4)
    log = pd.read_csv(out / "train_log.csv")
    assert log["epoch"].tolist() == [0, 1, 2, 3]
    straight = tmp_path / "straight"
    run(straight, 4)
    assert_close(pd.read_csv(straight / "train_log.csv")["train_loss"], log["train_loss"])
    resumed = torch.load(out / "weights.pt", weights_only=True)["state_dict"]
    uninterrupted = torch.load(straight / "weights.pt", weights_only=True)["state_dict"]
    for key, value in uninterrupted.items():
        assert torch.equal(resumed[key], value), key


def test_a_run_killed_after_early_stopping_resumes_to_its_end(prepared_split, tmp_path):
    """Killed after early stopping's last checkpoint but before the model was written, the next
    attempt trains no further epoch and ends with the same weights."""
    config = {"max_epochs": 60, "min_steps": 1, "patience": 2, "lr": 0.5, "accelerator": "cpu"}  # lr: soon noisy
    out = tmp_path / "model"
    train(*prepared_split, "linear_additive", out, seed=0, config=config)
    epochs = pd.read_csv(out / "train_log.csv")["epoch"].tolist()
    assert len(epochs) < 60  # it stopped early
    finished = torch.load(out / "weights.pt", weights_only=True)["state_dict"]
    for name in ("weights.pt", "model.json"):
        (out / name).unlink()
    train(*prepared_split, "linear_additive", out, seed=0, config=config)
    assert pd.read_csv(out / "train_log.csv")["epoch"].tolist() == epochs
    resumed = torch.load(out / "weights.pt", weights_only=True)["state_dict"]
    for key, value in finished.items():
        assert torch.equal(resumed[key], value), key


def test_linear_additive_learns_effects(split_data, tmp_path):
    model = get_model_class("linear_additive")(split_data.spec, max_epochs=20, accelerator="cpu")
    model.fit(split_data, tmp_path)
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]
    assert log["val_loss"].iloc[-1] < log["val_loss"].iloc[0]


def test_unfinished_model_folder(tmp_path):
    from storm.errors import InputError

    with pytest.raises(InputError, match="no finished model"):
        load_model(tmp_path)


def test_training_logs_every_step_to_tensorboard_or_offline_wandb(prepared_split, tmp_path):
    """Per step: loss, gradient norm and learning rate in train_steps.csv and the logger's folder
    in the model folder (TensorBoard's events, or an offline W&B run); a logger storm does not
    know is refused before any data is read."""
    config = {"max_epochs": 2, "accelerator": "cpu"}
    logs = {"tensorboard": "tensorboard/events.out.tfevents.*", "wandb": "wandb/offline-run-*/*.wandb"}
    for logger, pattern in logs.items():
        out = tmp_path / logger
        train(*prepared_split, "linear_additive", out, seed=0, config={**config, "logger": logger})
        assert list(out.glob(pattern)), logger
        steps = pd.read_csv(out / "train_steps.csv")
        assert list(steps.columns) == ["step", "epoch", "loss", "grad_norm", "lr"]
        assert steps["step"].tolist() == list(range(1, len(steps) + 1)) and (steps["grad_norm"] > 0).all()
    with pytest.raises(StormError, match="logger must be one of tensorboard, wandb, none"):
        get_model_class("linear_additive").resolve_config({"logger": "mlflow"})


def test_heldout_pairs_are_each_pair_s_cells_and_its_cell_type_s_controls(split_data):
    """One pass groups the split's cells: each pair gets exactly the cells a scan for it finds,
    with its cell type's controls in the split; a cell type without controls there is skipped."""
    import dataclasses

    from storm.predict import heldout_pairs

    for eval_split in ("val", "test"):
        pairs = heldout_pairs(split_data, eval_split)
        expected = sorted({(ct, p) for ct, p, held in zip(split_data.cell_type, split_data.perturbation,
                                                          split_data.mask(eval_split) & ~split_data.is_control)
                           if held})
        assert [(ct, pert) for ct, pert, _, _ in pairs] == expected
        for ct, pert, cells, pool in pairs:
            assert np.array_equal(cells, np.flatnonzero(split_data.mask(eval_split, ct, pert)))
            assert np.array_equal(pool, np.flatnonzero(split_data.mask(eval_split, ct) & split_data.is_control))
    # the controls of one cell type leave the split: its pairs are skipped, the others stay
    first = heldout_pairs(split_data, "test")[0][0]
    split = split_data.split.copy()
    split[split_data.is_control & (split_data.cell_type == first) & (split == "test")] = "train"
    kept = heldout_pairs(dataclasses.replace(split_data, split=split), "test")
    assert kept and first not in {ct for ct, _, _, _ in kept}


def test_heldout_pairs_score_a_seeded_capped_draw_of_cells(split_data):
    """Scoring takes at most max_cells of a pair and max_controls of a cell type, the same draw
    each time (every model meets the same cells), one pool per cell type."""
    from storm.predict import heldout_pairs

    whole = {(ct, pert): (cells, pool) for ct, pert, cells, pool in heldout_pairs(split_data, "test")}
    capped = heldout_pairs(split_data, "test", max_cells=3, max_controls=5)
    again = heldout_pairs(split_data, "test", max_cells=3, max_controls=5)
    assert any(cells.size > 3 for cells, _ in whole.values())
    pools = {}
    for (ct, pert, cells, pool), (_, _, cells2, pool2) in zip(capped, again):
        all_cells, all_pool = whole[(ct, pert)]
        assert cells.size == min(3, all_cells.size) and np.isin(cells, all_cells).all() and np.all(np.diff(cells) > 0)
        assert pool.size == min(5, all_pool.size) and np.isin(pool, all_pool).all()
        assert np.array_equal(cells, cells2) and np.array_equal(pool, pool2)
        assert np.array_equal(pools.setdefault(ct, pool), pool)


def test_training_reads_cells_from_disk_past_the_memory_budget(prepared_split, tmp_path):
    """Past the budget a model that can read cells from disk does (its config records it), one whose
    package needs them in memory stops before reading any, naming the budget; baselines and State
    always read from disk."""
    from storm.errors import InputError
    from storm.train import train

    tiny = 1000  # bytes: any split is over it
    meta = train(*prepared_split, "linear_additive", tmp_path / "la", seed=0, config={"max_epochs": 1},
                 memory_budget=tiny)
    assert meta["config"]["backed"] is True
    roomy = train(*prepared_split, "linear_additive", tmp_path / "la2", seed=0, config={"max_epochs": 1})
    assert roomy["config"]["backed"] is False
    with pytest.raises(InputError, match=r"cellot trains on cells in memory and .* over the budget of 0.0 GB"):
        train(*prepared_split, "cellot", tmp_path / "cellot", seed=0, config={}, memory_budget=tiny)
    assert not (tmp_path / "cellot" / "model.json").exists()
    # State trains from the file storm writes a block at a time, read by row by cell-load
    state = train(*prepared_split, "state", tmp_path / "state", seed=0, config={"max_steps": 5}, memory_budget=tiny)
    assert state["model"] == "state" and (tmp_path / "state" / "model.json").is_file()


#: how far backed training's pearson_delta may be from in-memory training's on the small data when
#: an epoch spans several fetches (their pairs come in another order, so the weights differ)
BACKED_TOLERANCE = 0.05


def test_backed_and_in_memory_training_agree_and_each_is_deterministic(prepared_split, tmp_path):
    """Within one fetch the backed loader shuffles as the in-memory one does (the same weights);
    over several (batches of 16: 256 pairs a fetch) it reads pairs in another order, deterministic
    for its seed, and scores within BACKED_TOLERANCE of training in memory."""
    from storm.predict import predict, write_real
    from training_inputs import pearson_delta

    write_real(*prepared_split, tmp_path / "real.h5ad")
    scores, weights = {}, {}
    runs = {"memory": (False, 128, 2), "backed_one_fetch": (True, 128, 2), "memory_16": (False, 16, 40),
            "backed_16": (True, 16, 40), "backed_16_again": (True, 16, 40)}  # (backed, batch size, epochs)
    for name, (backed, batch, epochs) in runs.items():
        out = tmp_path / name
        train(*prepared_split, "latent_additive", out / "model", seed=0,
              config={"max_epochs": epochs, "backed": backed, "batch_size": batch, "accelerator": "cpu"})
        predict(*prepared_split, out / "model", out / "pred.h5ad")
        (out / "real.h5ad").symlink_to(tmp_path / "real.h5ad")
        scores[name] = pearson_delta(out)
        weights[name] = torch.load(out / "model" / "weights.pt", weights_only=True)["state_dict"]

    def same(a, b):
        return all(torch.equal(weights[a][k], weights[b][k]) for k in weights[a])

    assert same("memory", "backed_one_fetch") and same("backed_16", "backed_16_again")
    assert not same("memory_16", "backed_16")
    assert scores["memory_16"] > 0.3  # both learned the effects, not the floor (control_mean: ~0)
    assert abs(scores["backed_16"] - scores["memory_16"]) < BACKED_TOLERANCE, scores


def test_group_means_match_a_groupby_in_memory_and_backed(prepared_split, split_data, monkeypatch):
    """Summed a chunk at a time into running totals, from memory or from disk: each pair's mean."""
    from storm.data import dataset, load_split_data

    mask = split_data.mask("train")
    cells = np.flatnonzero(mask)
    expected = pd.DataFrame(split_data.X[cells], columns=split_data.genes).groupby(
        [split_data.cell_type[cells], split_data.perturbation[cells]]).mean()
    backed = load_split_data(*prepared_split, backed=True)
    for data in (split_data, backed):
        means = data.group_means(mask)
        assert list(means.index) == list(expected.index) and means.index.names == ["cell_type", "perturbation"]
        np.testing.assert_allclose(means.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(dataset, "GROUP_CHUNK", 7)  # many chunks, pairs split across them
    np.testing.assert_allclose(backed.group_means(mask).to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-6)


def test_flow_matching_pairs_controls_to_targets_by_optimal_transport():
    """Within a condition each control is matched to its nearest-by-transport target; across
    conditions nothing is exchanged, and a lone cell keeps its target."""
    from storm.models.flow_matching import ot_pairs

    source = torch.tensor([[0.0], [10.0], [0.0], [5.0]])
    target = torch.tensor([[10.0], [0.0], [9.0], [5.0]])
    assert ot_pairs(source, target, torch.tensor([0, 0, 1, 2])).tolist() == [1, 0, 2, 3]
    assert ot_pairs(source, target, torch.tensor([0, 1, 2, 3])).tolist() == [0, 1, 2, 3]
