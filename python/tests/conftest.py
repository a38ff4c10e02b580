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


@pytest.fixture(scope="session")
def prepared_split(tmp_path_factory, small_adata):
    """A prepared dataset with split 'seed0', as the pipeline hands it to training."""
    from storm.prepare import prepare
    from storm.spec import DatasetSpec

    out = tmp_path_factory.mktemp("prepared")
    io.write_h5ad(small_adata, out / "raw.h5ad")
    obs = read_coded_obs(out / "raw.h5ad", ["cell_type", "perturbation"])
    result = make_split(obs, SplitParams("perturbation", ["cell_type"], "control", seed=0))
    cells = pd.DataFrame({"cell_id": obs.cell_ids.to_pylist(), "split": SPLITS[result.cell_split]})
    io.write_csv(cells, out / "split.csv")
    adata = prepare(small_adata.copy(), DatasetSpec(), {"seed0": cells}, n_top_genes=80)
    io.write_h5ad(adata, out / "prepared.h5ad")
    return out / "prepared.h5ad", out / "split.csv"


@pytest.fixture(scope="session")
def split_data(prepared_split):
    from storm.data import load_split_data

    return load_split_data(*prepared_split, "seed0")


@pytest.fixture
def run_cli():
    """Run the storm CLI as a user would, in a subprocess."""
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "storm", *args], capture_output=True, text=True)

    return run
