import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from storm.errors import InputError
from storm.prepare import detect_scale, prepare, select_genes
from storm.spec import DatasetSpec


def test_counts_are_normalised_and_kept(small_adata):
    adata = prepare(small_adata.copy(), DatasetSpec(), {}, n_top_genes=50)
    assert adata.uns["storm"]["input_scale"] == "counts"
    assert (adata.layers["counts"] != small_adata.X).nnz == 0
    totals = np.expm1(adata.X.toarray()).sum(axis=1)
    np.testing.assert_allclose(totals, 1e4, rtol=1e-3)
    assert list(adata.obs["perturbation"].cat.categories) == sorted(set(small_adata.obs["perturbation"].astype(str)))


def test_logged_input_is_kept(small_adata):
    adata = prepare(small_adata.copy(), DatasetSpec(), {}, n_top_genes=50)
    again = prepare(adata.copy(), DatasetSpec(), {}, n_top_genes=50)
    assert again.uns["storm"]["input_scale"] == "log"
    assert (again.X != adata.X).nnz == 0


def test_detect_scale():
    assert detect_scale(sp.csr_matrix(np.array([[0, 3], [5, 0]], dtype=float))) == "counts"
    assert detect_scale(np.array([[0.5, 2.3]])) == "log"
    assert detect_scale(np.array([[120.5, 2.3]])) == "normalised"


def test_genes_chosen_on_training_cells_only(small_adata):
    adata = prepare(small_adata.copy(), DatasetSpec(), {}, n_top_genes=200)
    X = adata.X.toarray()
    # a gene that varies wildly in the non-training cells only must not be chosen
    train = np.zeros(adata.n_obs, dtype=bool)
    train[: adata.n_obs // 2] = True
    X[:, 0] = 0.0
    spikes = np.flatnonzero(~train)[::20]
    X[spikes, 0] = 8.0
    adata.X = sp.csr_matrix(X)
    assert select_genes(adata, ~train, 20)[0]
    assert not select_genes(adata, train, 20)[0]


def test_split_must_cover_cells(small_adata):
    partial = pd.DataFrame({"cell_id": small_adata.obs_names[:10], "split": "train"})
    with pytest.raises(InputError, match="does not cover"):
        prepare(small_adata.copy(), DatasetSpec(), {"seed0": partial})


def test_hvg_flags_per_split(prepared_split):
    import anndata as ad

    adata = ad.read_h5ad(prepared_split[0])
    assert adata.var["hvg_seed0"].sum() == 80
    assert adata.uns["storm"]["splits"] == ["seed0"]
