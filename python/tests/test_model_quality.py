"""Every model trains on the small synthetic data, keeps the prediction contract and beats
control_mean on pearson_delta; State resumes and fine-tunes with LoRA; embeddings feed models."""

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from storm import io
from storm.predict import predict, write_real
from storm.spec import CELL_TYPE, PERTURBATION
from storm.train import train
from training_inputs import check_prediction, pearson_delta

CPU = {"accelerator": "cpu"}
TRAINED = {"linear_additive": {"max_epochs": 20, **CPU}, "latent_additive": {"min_steps": 300, "patience": 5, **CPU},
           "decoder_only": {"min_steps": 300, "patience": 5, **CPU}, "state": {},
           "flow_matching": {"min_steps": 300, "patience": 5, "hidden_dim": 128, "ode_steps": 8, **CPU}}


def train_and_predict(prepared_split, out, name, config, prepared=None):
    files = (prepared or prepared_split[0], *prepared_split[1:])
    meta = train(*files, name, out / "model", seed=0, config=config)
    predict(*files, out / "model", out / "pred" / "pred.h5ad", seed=0)
    write_real(*files, out / "pred" / "real.h5ad")
    return meta


@pytest.mark.parametrize("name", list(TRAINED))
def test_model_beats_control_mean_and_keeps_the_contract(prepared_split, control_floor, tmp_path, name):
    meta = train_and_predict(prepared_split, tmp_path, name, TRAINED[name])
    check_prediction(tmp_path / "pred", meta["genes"])
    assert pearson_delta(tmp_path / "pred") > control_floor + 0.15


def test_state_resumes_from_its_last_checkpoint(prepared_split, tmp_path, caplog):
    out = tmp_path / "model"
    config = {"max_steps": 40, "ckpt_every_n_steps": 20, "val_freq": 20}
    train(*prepared_split, "state", out, seed=0, config=config)
    last = out / "checkpoints" / "state" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 40
    with caplog.at_level(logging.INFO, logger="storm"):
        train(*prepared_split, "state", out, seed=0, config={**config, "max_steps": 80})
    assert f"resuming from {last}" in caplog.text
    assert torch.load(out / "state" / "model.ckpt", weights_only=False)["global_step"] == 80


def _bare(key: str) -> str:
    return key.replace("base_model.model.", "").replace(".base_layer.", ".")


def test_state_lora_fine_tune_trains_only_the_adapters(prepared_split, tmp_path):
    base = tmp_path / "base"
    train(*prepared_split, "state", base, seed=0, config={"max_steps": 30})
    rank = 4
    tuned = tmp_path / "tuned"
    train(*prepared_split, "state", tuned, seed=1,
          config={"max_steps": 20, "init_from": str(base), "lora.enable": True, "lora.rank": rank})
    before = torch.load(base / "state" / "model.ckpt", weights_only=False)["state_dict"]
    after = torch.load(tuned / "state" / "model.ckpt", weights_only=False)["state_dict"]
    adapters = {k: v for k, v in after.items() if "lora_" in k}
    # rank x (in + out) per adapted projection: q, k, v, o of the tiny size's one 32-wide layer
    assert sum(v.numel() for v in adapters.values()) == 4 * rank * (32 + 32)
    assert all(v.abs().sum() > 0 for k, v in adapters.items() if "lora_B" in k)  # B starts at zero
    changed = {_bare(k) for k, v in after.items() if "lora_" not in k and not torch.equal(v, before[_bare(k)])}
    # State rebuilds the perturbation encoder when fine-tuning in HVG mode; all else is the base's
    assert changed == {"pert_encoder.0.weight", "pert_encoder.0.bias"}


@pytest.fixture(scope="module")
def prepared_with_pca(prepared_split, tmp_path_factory):
    from sklearn.decomposition import PCA

    adata = io.read_h5ad(prepared_split[0])
    adata.obsm["X_pca"] = PCA(12, random_state=0).fit_transform(adata.X.toarray()).astype(np.float32)
    path = tmp_path_factory.mktemp("pca") / "prepared.h5ad"
    io.write_h5ad(adata, path)
    return path


@pytest.mark.parametrize("name,config", [("latent_additive", {"max_epochs": 3, **CPU}), ("state", {"max_steps": 20})])
def test_models_read_an_embedding_and_predict_genes(prepared_split, prepared_with_pca, tmp_path, name, config):
    meta = train_and_predict(prepared_split, tmp_path, name, {**config, "embed_key": "X_pca"}, prepared_with_pca)
    pred = ad.read_h5ad(tmp_path / "pred" / "pred.h5ad")
    assert pred.var_names.tolist() == meta["genes"] and np.isfinite(pred.X).all()


def test_missing_embedding_is_one_clear_error(prepared_split, tmp_path):
    from storm.errors import InputError

    with pytest.raises(InputError, match=r"embedding 'X_scvi' \(embed_key\) is not in obsm"):
        train(*prepared_split, "latent_additive", tmp_path, seed=0, config={"embed_key": "X_scvi"})


@pytest.mark.parametrize("workers", [0, 2])
def test_backed_training_reads_cells_from_disk(prepared_split, tmp_path, workers):
    """With backed=true the cells stay in prepared.h5ad; training learns, predictions read the
    same real cells as in memory, and a second run resumes to the same weights."""
    config = {"backed": True, "max_epochs": 4, "num_workers": workers, "block_size": 4, **CPU}
    train_and_predict(prepared_split, tmp_path / "backed", "linear_additive", config)
    log = pd.read_csv(tmp_path / "backed" / "model" / "train_log.csv")
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]
    train_and_predict(prepared_split, tmp_path / "memory", "linear_additive", {"max_epochs": 1, **CPU})
    # the control cells in pred.h5ad are real cells: read from disk by row, they equal those in memory
    backed, memory = (ad.read_h5ad(tmp_path / run / "pred" / "pred.h5ad") for run in ("backed", "memory"))
    controls = (backed.obs[PERTURBATION] == "control").to_numpy()
    assert controls.any() and controls.tolist() == (memory.obs[PERTURBATION] == "control").tolist()
    np.testing.assert_array_equal(backed.X[controls], memory.X[controls])
    # the order is drawn from (seed, epoch): stopped at 2 epochs and resumed to 4, the same weights
    train(*prepared_split, "linear_additive", tmp_path / "resumed", seed=0, config={**config, "max_epochs": 2})
    train(*prepared_split, "linear_additive", tmp_path / "resumed", seed=0, config=config)
    straight = torch.load(tmp_path / "backed" / "model" / "weights.pt", weights_only=True)["state_dict"]
    resumed = torch.load(tmp_path / "resumed" / "weights.pt", weights_only=True)["state_dict"]
    for key, value in straight.items():
        assert torch.equal(resumed[key], value), key


def test_backed_loader_must_read_every_pair(prepared_split, tmp_path):
    from storm.errors import StormError

    with pytest.raises(StormError, match="loader must be one of"):
        train(*prepared_split, "latent_additive", tmp_path, seed=0, config={"loader": "true_weighted"})


def test_linear_additive_trained_by_default_matches_context_mean(tmp_path):
    """With one effect per perturbation and as many cells in every pair, linear_additive's optimum
    is context_mean's closed form (the mean shift over training cell types). Its default budget
    must get there: a fixed handful of epochs left it far short on small real data."""
    from storm.synth import SynthConfig, make_synthetic
    from training_inputs import prepare_split

    adata = make_synthetic(SynthConfig(n_genes=100, n_cell_types=4, n_perturbations=6, cells_per_pair=60,
                                       controls_per_cell_type=240, seed=5))
    files = prepare_split(adata, tmp_path, n_top_genes=60)
    shifts = {}
    for name in ("context_mean", "linear_additive"):
        out = tmp_path / name
        train_and_predict(files, out, name, CPU if name == "linear_additive" else {})
        pred = ad.read_h5ad(out / "pred" / "pred.h5ad")
        real = ad.read_h5ad(out / "pred" / "real.h5ad")
        groups = pred.obs.groupby([CELL_TYPE, PERTURBATION], observed=True).indices
        control = {ct: real.X[(real.obs[CELL_TYPE] == ct).to_numpy() & (real.obs[PERTURBATION] == "control").to_numpy()]
                   .mean(0) for ct, _ in groups}
        shifts[name] = np.concatenate([pred.X[rows].mean(0) - control[ct] for (ct, _), rows in sorted(groups.items())])
    assert shifts["context_mean"].size > 0
    assert np.corrcoef(shifts["context_mean"], shifts["linear_additive"])[0, 1] > 0.98
    scale = np.abs(shifts["context_mean"]).mean()
    assert np.abs(shifts["linear_additive"] - shifts["context_mean"]).mean() < 0.15 * scale


def test_training_stops_when_validation_stops_improving(prepared_split, tmp_path):
    """Early stopping on the validation pairs: it ends ``patience`` epochs after the best one,
    long before the ceiling, and keeps the best epoch's weights."""
    config = {**CPU, "patience": 3, "min_steps": 0, "max_epochs": 500, "lr": 0.05}
    train(*prepared_split, "latent_additive", tmp_path / "model", seed=0, config=config)
    log = pd.read_csv(tmp_path / "model" / "train_log.csv")
    assert len(log) < 500
    best = int(log["val_loss"].idxmin())
    assert len(log) == best + 1 + config["patience"]
    weights = torch.load(tmp_path / "model" / "weights.pt", weights_only=True)["state_dict"]
    best_ckpt = torch.load(next((tmp_path / "model" / "checkpoints").glob("last.ckpt")), weights_only=False)
    kept = best_ckpt["callbacks"]["BestWeights"]["weights"]
    assert all(torch.equal(weights[k], kept["net." + k]) for k in weights)
