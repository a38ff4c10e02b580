"""Training inputs made as the pipeline makes them, for tests that need their own dataset, and
the score the model tests compare on (a module of its own: `conftest` names two different files
when both test trees run at once)."""

import anndata as ad
import numpy as np
import pandas as pd

from storm import io
from storm.spec import CELL_TYPE, PERTURBATION
from storm.split import SplitParams, make_split
from storm.split.core import SPLITS
from storm.split.obs import read_split_obs


def prepare_split(adata, out, n_top_genes=80, seed=0, spec=None, **split_params):
    """prepared.h5ad, split.csv and genes.csv in ``out``, as the pipeline hands them to training."""
    from storm.genes import select_genes
    from storm.prepare import prepare
    from storm.spec import DatasetSpec

    spec = spec or DatasetSpec()
    io.write_h5ad(adata, out / "raw.h5ad")
    params = SplitParams(spec, seed=seed, **split_params)
    obs = read_split_obs(out / "raw.h5ad", spec, params.covariate_keys)
    result = make_split(obs, params)
    cells = pd.DataFrame({"cell_id": obs.cell_ids.to_pylist(), "split": SPLITS[result.cell_split]})
    io.write_csv(cells, out / "split.csv", checksum=True)
    io.write_h5ad(prepare(adata.copy(), spec), out / "prepared.h5ad")
    io.write_csv(select_genes(out / "prepared.h5ad", out / "split.csv", n_top_genes), out / "genes.csv",
                 checksum=True)
    return out / "prepared.h5ad", out / "split.csv", out / "genes.csv"


def pearson_delta(out_dir, control: str = "control") -> float:
    """Mean over held-out pairs of corr(pred mean - control mean, real mean - control mean)."""
    pred, real = ad.read_h5ad(out_dir / "pred.h5ad"), ad.read_h5ad(out_dir / "real.h5ad")
    scores = []
    for (ct, pert), rows in real.obs.groupby([CELL_TYPE, PERTURBATION], observed=True).indices.items():
        if pert == control:
            continue
        ctrl = real.X[((real.obs[CELL_TYPE] == ct) & (real.obs[PERTURBATION] == control)).to_numpy()].mean(0)
        pred_mean = pred.X[((pred.obs[CELL_TYPE] == ct) & (pred.obs[PERTURBATION] == pert)).to_numpy()].mean(0)
        scores.append(np.corrcoef(pred_mean - ctrl, real.X[rows].mean(0) - ctrl)[0, 1])
    return float(np.mean(scores))


def check_prediction(out_dir, genes) -> None:
    """The prediction contract: pred.h5ad and real.h5ad over the model's genes, with the canonical
    obs columns, the same pairs with as many cells each, and finite values."""
    pred, real = ad.read_h5ad(out_dir / "pred.h5ad"), ad.read_h5ad(out_dir / "real.h5ad")
    assert pred.var_names.tolist() == real.var_names.tolist() == list(genes)
    for adata in (pred, real):
        assert {PERTURBATION, CELL_TYPE} <= set(adata.obs)
    pairs = [PERTURBATION, CELL_TYPE]
    assert pred.obs.value_counts(pairs).sort_index().equals(real.obs.value_counts(pairs).sort_index())
    assert np.isfinite(pred.X).all()
