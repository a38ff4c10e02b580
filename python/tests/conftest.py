import pandas as pd
import pytest

from storm import io
from storm.split import SplitParams, make_split
from storm.split.core import SPLITS
from storm.split.obs import read_coded_obs
from storm.synth import SynthConfig, make_synthetic

SMALL = SynthConfig(n_genes=120, n_cell_types=3, n_perturbations=8, cells_per_pair=20,
                    controls_per_cell_type=60, program_size=15, seed=3)


@pytest.fixture(scope="session")
def small_adata():
    return make_synthetic(SMALL)


@pytest.fixture
def small_h5ad(tmp_path, small_adata):
    path = tmp_path / "data.h5ad"
    io.write_h5ad(small_adata.copy(), path)
    return path


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


@pytest.fixture(scope="session")
def prepared_split(tmp_path_factory, small_adata):
    """A prepared dataset, one split and its genes, as the pipeline hands them to training."""
    return prepare_split(small_adata, tmp_path_factory.mktemp("prepared"))


@pytest.fixture(scope="session")
def split_data(prepared_split):
    from storm.data import load_split_data

    return load_split_data(*prepared_split)


@pytest.fixture
def run_cli():
    """Run the storm CLI as a user would, in a subprocess."""
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "storm", *args], capture_output=True, text=True)

    return run
