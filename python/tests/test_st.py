"""storm's State Transition model: its variants do what they claim, on data where it shows."""

import numpy as np
import pytest
import torch

from storm.models import get_model_class
from storm.models.st_net import Backbone, HyperResidual, sinkhorn
from storm.predict import predict, write_real
from storm.spec import DatasetSpec
from storm.synth import TIME_COURSE_SPEC, TimeCourseConfig, make_time_course
from storm.train import load_model, train
from training_inputs import pearson_delta, prepare_split

TINY = {"accelerator": "cpu", "cell_set_len": 16, "hidden_dim": 64, "logger": "none", "patience": 0}


@pytest.fixture(scope="module")
def time_course(tmp_path_factory):
    """Few stimulated cells per condition (noisy targets), whole courses held out per cell type,
    and every cell's velocity along its cell type's trajectory, which the stimuli push along."""
    out = tmp_path_factory.mktemp("time_course")
    adata = make_time_course(TimeCourseConfig(cells_per_condition=6))
    return prepare_split(adata, out, n_top_genes=200, spec=DatasetSpec(**TIME_COURSE_SPEC), min_cells=5,
                         whole_time_courses=True)


def scored(files, out, config) -> float:
    train(*files, "st", out / "model", seed=0, config={**TINY, **config})
    predict(*files, out / "model", out / "pred" / "pred.h5ad", seed=0)
    write_real(*files, out / "pred" / "real.h5ad")
    return pearson_delta(out / "pred")


def test_velocity_alignment_helps_direction_on_a_time_course(time_course, tmp_path):
    """At the same budget, st pushed toward each control cell's velocity predicts the direction of
    held-out time courses better than st without it (measured: 0.60 against 0.64)."""
    plain = scored(time_course, tmp_path / "plain", {"min_steps": 150})
    aligned = scored(time_course, tmp_path / "velocity", {"min_steps": 150, "velocity.enable": True,
                                                           "velocity.lambda": 1.0, "velocity.warmup_steps": 20})
    assert plain > 0.3 and aligned > plain + 0.02, (plain, aligned)


def test_velocity_needs_a_velocity(prepared_split, run_cli, tmp_path):
    prepared, split, genes = prepared_split
    done = run_cli("train", "--prepared", str(prepared), "--split", str(split), "--genes", str(genes), "--model", "st",
                   "--out-dir", str(tmp_path / "model"), "--set", "velocity.enable=true")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        "error: velocity.enable needs layers['velocity'] (gene space) or obsm['velocity']"), done.stderr
    assert not (tmp_path / "model" / "model.json").exists()


def test_lora_fine_tunes_only_adapters_and_zero_shot_keeps_the_pretrained_model(prepared_split, tmp_path):
    """From a pretrained st, LoRA changes its adapters only (the backbone and encoders stay as
    pretrained); zero_shot trains nothing and predicts as the pretrained model does."""
    base = {**TINY, "min_steps": 20}
    train(*prepared_split, "st", tmp_path / "pretrained", seed=0, config=base)
    pretrained = torch.load(tmp_path / "pretrained" / "weights.pt", weights_only=True)["state_dict"]
    train(*prepared_split, "st", tmp_path / "lora", seed=1,
          config={**base, "init_from": str(tmp_path / "pretrained"), "lora.enable": True, "lora.rank": 4})
    tuned = torch.load(tmp_path / "lora" / "weights.pt", weights_only=True)["state_dict"]
    adapters = [k for k in tuned if "lora_" in k]
    assert adapters and any(not torch.equal(tuned[k], torch.zeros_like(tuned[k])) for k in adapters if "lora_B" in k)
    for key, value in tuned.items():
        if "lora_" not in key:
            plain_key = key.replace(".base_layer.", ".")
            assert torch.equal(value, pretrained[plain_key]), key

    train(*prepared_split, "st", tmp_path / "zero", seed=2,
          config={**base, "init_from": str(tmp_path / "pretrained"), "zero_shot": True})
    assert not (tmp_path / "zero" / "checkpoints").exists()
    zero, _ = load_model(tmp_path / "zero")
    original, _ = load_model(tmp_path / "pretrained")
    controls = np.random.default_rng(0).random((20, original.n_inputs), dtype=np.float32)
    assert np.array_equal(zero.predict(controls, "CT0", "P0"), original.predict(controls, "CT0", "P0"))


def test_zero_shot_needs_a_pretrained_model(split_data):
    with pytest.raises(Exception, match="zero_shot predicts with a pretrained model"):
        get_model_class("st")(split_data.spec, zero_shot=True)


def test_mhc_mixing_is_doubly_stochastic_and_starts_as_a_plain_residual():
    torch.manual_seed(0)
    logits = torch.randn(4, 4) * 3
    m = sinkhorn(logits, 50)
    assert torch.allclose(m.sum(0), torch.ones(4), atol=1e-5) and torch.allclose(m.sum(1), torch.ones(4), atol=1e-5)
    block = HyperResidual(torch.nn.Linear(8, 8), dim=8, streams=4, sinkhorn_iters=20, index=1)
    x = torch.randn(2, 3, 8)
    streams = x.unsqueeze(2).expand(-1, -1, 4, -1)
    plain = x + block.branch(block.norm(x))
    assert torch.allclose(block(streams).mean(dim=2), plain, atol=1e-3)
    # branches read different streams, so the streams' gradients differ and they stop being copies
    backbone = Backbone(8, layers=2, heads=2, intermediate=16, streams=4)
    backbone(x).pow(2).sum().backward()
    post = backbone.blocks[0].post.grad
    assert not torch.allclose(post, post[0].expand_as(post))


def test_storm_velocity_recovers_a_known_velocity(tmp_path, run_cli):
    """Cells along a cycle (each gene oscillates with its own phase; unspliced RNA = the change in
    spliced RNA + its degradation): scVelo through `storm velocity` recovers each gene's velocity
    (measured: correlation 0.95 on average); without spliced/unspliced layers, one error line."""
    import anndata as ad
    import scipy.sparse as sp

    from storm import io

    rng = np.random.default_rng(0)
    progress, phase = rng.random(400)[:, None], rng.random(40) * 2 * np.pi
    spliced = 5 + 4 * np.sin(2 * np.pi * progress + phase)
    change = 4 * np.cos(2 * np.pi * progress + phase)
    unspliced = np.clip(change + rng.uniform(0.5, 1.5, 40) * spliced, 0, None)
    layers = {name: sp.csr_matrix(rng.poisson(4 * values).astype(np.float32))
              for name, values in (("spliced", spliced), ("unspliced", unspliced))}
    io.write_h5ad(ad.AnnData(X=layers["spliced"].copy(), layers=layers), tmp_path / "cells.h5ad")
    done = run_cli("velocity", "--input", str(tmp_path / "cells.h5ad"), "--out", str(tmp_path / "velocity.h5ad"))
    assert done.returncode == 0, done.stderr
    velocity = ad.read_h5ad(tmp_path / "velocity.h5ad").layers["velocity"]
    assert np.mean([np.corrcoef(velocity[:, g], change[:, g])[0, 1] for g in range(40)]) > 0.8

    io.write_h5ad(ad.AnnData(X=layers["spliced"]), tmp_path / "plain.h5ad")
    done = run_cli("velocity", "--input", str(tmp_path / "plain.h5ad"), "--out", str(tmp_path / "none.h5ad"))
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith(
        "error: velocity needs layers spliced, unspliced; missing: spliced, unspliced")
    assert not (tmp_path / "none.h5ad").exists()
