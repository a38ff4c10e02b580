import pytest

from storm import io
from storm.synth import SynthConfig, make_synthetic
from training_inputs import pearson_delta, prepare_split

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


@pytest.fixture(scope="session")
def control_floor(prepared_split, tmp_path_factory):
    """control_mean's pearson_delta on the prepared split: the floor every trained model clears."""
    from storm.predict import predict, write_real
    from storm.train import train

    out = tmp_path_factory.mktemp("control_mean")
    train(*prepared_split, "control_mean", out / "model", seed=0, config={})
    predict(*prepared_split, out / "model", out / "pred.h5ad", seed=0)
    write_real(*prepared_split, out / "real.h5ad")
    return pearson_delta(out)
