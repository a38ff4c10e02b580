import numpy as np
import pandas as pd

from storm.synth import SynthConfig, make_synthetic


def test_shape_and_annotations(small_adata):
    cfg = small_adata.uns["synth"]
    expected = cfg["n_cell_types"] * (cfg["controls_per_cell_type"] + cfg["n_perturbations"] * cfg["cells_per_pair"])
    assert small_adata.shape == (expected, cfg["n_genes"])
    for col in ("perturbation", "cell_type", "batch"):
        assert isinstance(small_adata.obs[col].dtype, pd.CategoricalDtype)
    assert "control" in small_adata.obs["perturbation"].cat.categories
    controls = small_adata.obs[small_adata.obs["perturbation"] == "control"]
    assert set(controls["cell_type"]) == set(small_adata.obs["cell_type"])
    assert small_adata.obs["batch"].nunique() == cfg["n_batches"]


def test_counts_are_nonnegative_integers(small_adata):
    values = small_adata.X.data
    assert values.min() >= 0
    assert np.all(values == np.round(values))


def test_seed_reproducible_and_distinct():
    cfg = SynthConfig(n_genes=60, n_perturbations=4, n_cell_types=2, cells_per_pair=5, controls_per_cell_type=10)
    a, b = make_synthetic(cfg), make_synthetic(cfg)
    c = make_synthetic(SynthConfig(**{**cfg.__dict__, "seed": 1}))
    assert (a.X != b.X).nnz == 0
    assert (a.X != c.X).nnz > 0


def test_knocked_down_target_and_cell_type_baselines(small_adata):
    X = small_adata.X.toarray()
    obs = small_adata.obs
    ctrl = (obs["perturbation"] == "control").to_numpy()
    target = obs["perturbation"].cat.categories[1]  # perturbations are named after their target gene
    gene = list(small_adata.var_names).index(target)
    pert = (obs["perturbation"] == target).to_numpy()
    assert X[pert, gene].mean() < 0.5 * X[ctrl, gene].mean()
    means = [X[ctrl & (obs["cell_type"] == ct).to_numpy()].mean(axis=0) for ct in obs["cell_type"].cat.categories]
    assert np.abs(np.log1p(means[0]) - np.log1p(means[1])).max() > 0.5


def test_combos_named_from_singles():
    adata = make_synthetic(SynthConfig(n_genes=80, n_perturbations=6, n_combos=3, cells_per_pair=5,
                                       controls_per_cell_type=10))
    perts = set(adata.obs["perturbation"].astype(str))
    combos = [p for p in perts if "+" in p]
    assert len(combos) == 3
    for combo in combos:
        assert all(single in perts for single in combo.split("+"))


def test_written_in_blocks_the_same_data_whatever_the_block(tmp_path, monkeypatch):
    """storm synth writes a block of cells at a time; the data do not depend on the block size,
    and the file holds int64 row pointers (past int32 at a Tahoe plate's size)."""
    import anndata as ad
    import h5py

    from storm import synth

    monkeypatch.setattr(synth, "CELLS_PER_DRAW", 7)
    cfg = SynthConfig(n_genes=60, n_perturbations=4, n_cell_types=2, cells_per_pair=9, controls_per_cell_type=11)
    whole = make_synthetic(cfg)
    assert synth.synthetic_screen(cfg).n_draws > 5
    for draws in (1, 3, 1000):
        out = tmp_path / f"by{draws}.h5ad"
        synth.write_synthetic(cfg, out, draws_per_block=draws)
        written = ad.read_h5ad(out)
        assert (written.X != whole.X).nnz == 0
        pd.testing.assert_frame_equal(written.obs, whole.obs)
        with h5py.File(out) as f:
            assert f["X/indptr"].dtype == np.int64
