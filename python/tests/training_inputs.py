"""Training inputs made as the pipeline makes them, for tests that need their own dataset (a
module of its own: `conftest` names two different files when both test trees run at once)."""

import pandas as pd

from storm import io
from storm.split import SplitParams, make_split
from storm.split.core import SPLITS
from storm.split.obs import read_coded_obs


def prepare_split(adata, out, n_top_genes=80, seed=0):
    """prepared.h5ad, split.csv and genes.csv in ``out``, as the pipeline hands them to training."""
    from storm.genes import select_genes
    from storm.prepare import prepare
    from storm.spec import DatasetSpec

    io.write_h5ad(adata, out / "raw.h5ad")
    obs = read_coded_obs(out / "raw.h5ad", ["cell_type", "perturbation"])
    result = make_split(obs, SplitParams(DatasetSpec(), seed=seed))
    cells = pd.DataFrame({"cell_id": obs.cell_ids.to_pylist(), "split": SPLITS[result.cell_split]})
    io.write_csv(cells, out / "split.csv", checksum=True)
    io.write_h5ad(prepare(adata.copy(), DatasetSpec()), out / "prepared.h5ad")
    io.write_csv(select_genes(out / "prepared.h5ad", out / "split.csv", n_top_genes), out / "genes.csv",
                 checksum=True)
    return out / "prepared.h5ad", out / "split.csv", out / "genes.csv"
