import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from storm import io
from storm.errors import InputError
from storm.genes import select_genes
from storm.prepare import prepare
from storm.spec import DatasetSpec


def test_counts_are_normalised_and_kept(small_adata):
    adata = prepare(small_adata.copy(), DatasetSpec())
    assert adata.uns["storm"]["input_scale"] == "counts"
    assert (adata.layers["counts"] != small_adata.X).nnz == 0
    totals = np.expm1(adata.X.toarray()).sum(axis=1)
    np.testing.assert_allclose(totals, 1e4, rtol=1e-3)
    assert list(adata.obs["perturbation"].cat.categories) == sorted(set(small_adata.obs["perturbation"].astype(str)))


def test_logged_input_is_kept(small_adata):
    adata = prepare(small_adata.copy(), DatasetSpec())
    again = prepare(adata.copy(), DatasetSpec())
    assert again.uns["storm"]["input_scale"] == "log"
    assert (again.X != adata.X).nnz == 0


def test_normalised_input_is_logged(small_adata):
    adata = small_adata.copy()
    adata.X = adata.X.astype(np.float64) * 1.5 + 0.25 * (adata.X > 0)
    expected = np.log1p(adata.X.toarray())
    prepared = prepare(adata, DatasetSpec())
    assert prepared.uns["storm"]["input_scale"] == "normalised"
    np.testing.assert_allclose(prepared.X.toarray(), expected, rtol=1e-6)


def test_genes_chosen_on_training_cells_only(tmp_path, small_adata):
    adata = prepare(small_adata.copy(), DatasetSpec())
    X = adata.X.toarray()
    # a gene that varies wildly in the non-training cells only must not be chosen
    train = np.zeros(adata.n_obs, dtype=bool)
    train[: adata.n_obs // 2] = True
    X[:, 0] = 0.0
    spikes = np.flatnonzero(~train)[::20]
    X[spikes, 0] = 8.0
    adata.X = sp.csr_matrix(X)
    io.write_h5ad(adata, tmp_path / "prepared.h5ad")
    gene = adata.var_names[0]
    for name, mask in (("spiked", ~train), ("quiet", train)):
        table = pd.DataFrame({"cell_id": adata.obs_names, "split": np.where(mask, "train", "test")})
        io.write_csv(table, tmp_path / f"{name}.csv")
        chosen = select_genes(tmp_path / "prepared.h5ad", tmp_path / f"{name}.csv", 20)["gene"].tolist()
        assert (gene in chosen) == (name == "spiked")


@pytest.mark.parametrize("seed", [0, 1])
def test_normalisation_and_genes_equal_scanpy(tmp_path, monkeypatch, small_adata, seed):
    """storm's own normalisation and Seurat dispersion (read in chunks, no scanpy import in the
    tasks) choose what scanpy chooses."""
    import anndata as ad
    import scanpy as sc

    from storm import rowblocks
    from storm.genes import file_mean_var, mean_var, seurat_dispersion, top_genes

    ours, theirs = small_adata.copy(), small_adata.copy()
    sc.pp.normalize_total(theirs, target_sum=1e4)
    sc.pp.log1p(theirs)
    prepare(ours, DatasetSpec())
    np.testing.assert_allclose(ours.X.toarray(), theirs.X.toarray(), atol=1e-5)
    rows = np.sort(np.random.default_rng(seed).choice(ours.n_obs, ours.n_obs // 2, replace=False))
    for n in (10, 40, 100):
        table = sc.pp.highly_variable_genes(ad.AnnData(ours.X[rows]), n_top_genes=n, flavor="seurat", inplace=False)
        chosen = top_genes(seurat_dispersion(*mean_var(ours.X, rows, chunk=37)), n)
        np.testing.assert_array_equal(chosen, table["highly_variable"].to_numpy())
    # GENES reads the file in blocks of rows and keeps the training ones: the same moments
    monkeypatch.setattr(rowblocks, "BLOCK_VALUES", 700)
    io.write_h5ad(ours, tmp_path / "prepared.h5ad")
    for ours_m, memory_m in zip(file_mean_var(tmp_path / "prepared.h5ad", rows), mean_var(ours.X, rows)):
        np.testing.assert_allclose(ours_m, memory_m, rtol=1e-10)


def test_split_must_cover_cells(tmp_path, small_adata):
    io.write_h5ad(prepare(small_adata.copy(), DatasetSpec()), tmp_path / "prepared.h5ad")
    io.write_csv(pd.DataFrame({"cell_id": small_adata.obs_names[:10], "split": "train"}), tmp_path / "split.csv")
    with pytest.raises(InputError, match="gives no split for"):
        select_genes(tmp_path / "prepared.h5ad", tmp_path / "split.csv", 20)


def test_genes_file_per_split(prepared_split):
    genes = pd.read_csv(prepared_split[2])
    assert len(genes) == 80 and genes["gene"].is_unique


@pytest.mark.parametrize("scale_of", ["counts", "log"])
def test_prepared_by_row_blocks_equals_prepared_in_memory(tmp_path, monkeypatch, small_adata, scale_of):
    """storm prepare reads and writes X a block of rows at a time; the file equals the in-memory
    preparation, keeps the input's layers, embeddings and uns, and takes VALIDATE's scale."""
    from storm import rowblocks
    from storm.prepare import prepare_file

    monkeypatch.setattr(rowblocks, "BLOCK_VALUES", 500)  # many blocks, of different row counts
    adata = small_adata.copy() if scale_of == "counts" else prepare(small_adata.copy(), DatasetSpec())
    adata.obsm["X_emb"] = np.arange(adata.n_obs * 3, dtype=np.float32).reshape(-1, 3)
    adata.layers["velocity"] = sp.csr_matrix(adata.X * 0.5)
    adata.uns["note"] = "kept"
    io.write_h5ad(adata, tmp_path / "in.h5ad")
    expected = prepare(adata.copy(), DatasetSpec())
    assert prepare_file(tmp_path / "in.h5ad", tmp_path / "out.h5ad", DatasetSpec()) == scale_of
    written = io.read_h5ad(tmp_path / "out.h5ad")
    np.testing.assert_allclose(written.X.toarray(), expected.X.toarray(), rtol=1e-6)
    assert sorted(written.layers) == sorted(expected.layers)
    for name in expected.layers:
        assert (written.layers[name] != expected.layers[name]).nnz == 0
    np.testing.assert_array_equal(written.obsm["X_emb"], adata.obsm["X_emb"])
    pd.testing.assert_frame_equal(written.obs, expected.obs)
    assert written.uns["note"] == "kept" and written.uns["storm"]["input_scale"] == scale_of
    # the scale VALIDATE recorded is taken as it is, X is not scanned for it
    monkeypatch.setattr("storm.prepare.scan_values", None)
    assert prepare_file(tmp_path / "in.h5ad", tmp_path / "again.h5ad", DatasetSpec(), scale=scale_of) == scale_of


def test_a_block_write_that_stops_short_leaves_no_file(tmp_path, small_adata):
    from storm.rowblocks import write_h5ad_rows

    with pytest.raises(RuntimeError, match="rows for"):
        with write_h5ad_rows(tmp_path / "short.h5ad", small_adata.obs, small_adata.var) as rows:
            rows.matrix("X", small_adata.n_vars).append(small_adata.X[:10])
    assert list(tmp_path.iterdir()) == []
