"""Loader strategies over backed h5ad files: coverage, weights, determinism, sharding, reads."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from storm.data.backed import BackedCells
from storm.data.loader import CellBatches, make_loader
from storm.data.sampling import STRATEGIES, Sampling, balanced_weights
from storm.errors import StormError

UNWEIGHTED = [s for s in STRATEGIES if "weighted" not in s]


@pytest.fixture(scope="module")
def plates(tmp_path_factory):
    """Three h5ad 'plates' with CSR counts, rows clustered by drug, and the same cells in memory."""
    rng = np.random.default_rng(0)
    folder, frames = tmp_path_factory.mktemp("plates"), []
    for plate, n in enumerate((97, 64, 130)):
        X = sp.random(n, 40, density=0.2, format="csr", random_state=plate, dtype=np.float32)
        X.data = np.ceil(X.data * 10)
        drugs = np.sort(rng.choice([f"d{i}" for i in range(5 + plate)], size=n))
        obs = pd.DataFrame({"drug": pd.Categorical(drugs), "line": pd.Categorical(rng.choice(["a", "b"], n))},
                           index=[f"p{plate}_{i}" for i in range(n)])
        adata = ad.AnnData(X=X, obs=obs)
        adata.write_h5ad(folder / f"plate{plate}.h5ad")
        frames.append(adata)
    return sorted(folder.glob("plate*.h5ad")), ad.concat(frames)


def test_reads_any_rows_in_order_across_files(plates):
    paths, whole = plates
    cells = BackedCells(paths, ["drug"])
    rows = np.array([290, 0, 96, 97, 98, 160, 161, 5, 5, 200])
    np.testing.assert_array_equal(cells.read(rows).toarray(), whole.X[rows].toarray())
    assert [cells.categories["drug"][c] for c in cells.labels["drug"][rows]] == whole.obs["drug"].astype(str).iloc[
        rows].tolist()


@pytest.mark.parametrize("strategy", UNWEIGHTED)
@pytest.mark.parametrize("n", [291, 64])
def test_every_cell_once_per_epoch(strategy, n):
    sampling = Sampling(strategy, block_size=16, batch_size=10, fetch_factor=3, buffer_size=50, seed=4)
    for epoch in (0, 1):
        order = sampling.order(n, epoch)
        assert sorted(order.tolist()) == list(range(n))


def test_block_shuffling_keeps_blocks_contiguous_and_moves_them():
    order = Sampling("block_shuffling", block_size=8, seed=1).order(64, 0)
    blocks = order.reshape(-1, 8)
    assert (np.diff(blocks, axis=1) == 1).all() and (blocks[:, 0] % 8 == 0).all()
    assert not np.array_equal(order, np.arange(64))


def test_order_depends_on_seed_and_epoch_only():
    a, b = Sampling("random", seed=3), Sampling("random", seed=3)
    assert np.array_equal(a.order(500, 2), b.order(500, 2))
    assert not np.array_equal(a.order(500, 2), a.order(500, 3))
    assert not np.array_equal(a.order(500, 2), Sampling("random", seed=4).order(500, 2))


def test_weights_follow_the_formula():
    drug = np.array([0, 0, 0, 1, 2, 2])
    line = np.array([0, 0, 1, 0, 0, 0])
    weights = balanced_weights([drug, line], baseline=2)
    # groups (0,0)x2, (0,1)x1, (1,0)x1, (2,0)x2: total 6 over 4 groups
    expected = [6 / (4 * 4), 6 / (4 * 4), 6 / (4 * 3), 6 / (4 * 3), 6 / (4 * 4), 6 / (4 * 4)]
    np.testing.assert_allclose(weights, expected)


@pytest.mark.parametrize("strategy,block", [("true_weighted", 1), ("block_weighted", 16)])
def test_weighted_sampling_draws_groups_by_weight(strategy, block):
    groups = np.repeat([0, 1], [9000, 1000])  # a rare group, clustered on disk
    weights = balanced_weights([groups], baseline=0)  # full balance: half the draws each
    sampling = Sampling(strategy, block_size=block, seed=0)
    drawn = np.concatenate([sampling.order(groups.size, epoch, weights) for epoch in range(3)])
    assert drawn.size == 3 * groups.size
    assert abs((groups[drawn] == 1).mean() - 0.5) < 0.05
    with pytest.raises(StormError, match="needs one weight per cell"):
        sampling.order(groups.size, 0, None)


def test_shards_split_an_epoch_without_overlap():
    sampling = Sampling("block_shuffling", block_size=4, batch_size=5, fetch_factor=2, seed=9)
    shards = [np.concatenate(sampling.fetches(203, 1, shard=s, n_shards=4)) for s in range(4)]
    together = np.concatenate(shards)
    assert sorted(together.tolist()) == list(range(203))


def test_dataloader_workers_and_ranks_cover_the_epoch_once(plates):
    paths, whole = plates
    cells = BackedCells(paths, ["drug", "line"])
    sampling = Sampling("block_shuffling", block_size=4, batch_size=16, fetch_factor=2, seed=5)
    seen = []
    for rank in range(2):
        dataset = CellBatches(cells, sampling, rank=rank, world_size=2)
        dataset.set_epoch(1)
        for batch in make_loader(dataset, num_workers=2):
            index = batch["index"].numpy()
            np.testing.assert_array_equal(batch["X"].numpy(), whole.X[index].toarray())
            assert torch.equal(batch["drug"], torch.from_numpy(cells.labels["drug"][index]))
            seen.append(index)
    assert sorted(np.concatenate(seen).tolist()) == list(range(len(cells)))


def test_bad_settings_are_one_clear_error(plates, tmp_path):
    with pytest.raises(StormError, match="unknown loader strategy 'shuffle'"):
        Sampling("shuffle")
    with pytest.raises(StormError, match="block_size must be at least 1"):
        Sampling(block_size=0)
    dense = tmp_path / "dense.h5ad"
    ad.AnnData(X=np.ones((3, 2), dtype=np.float32)).write_h5ad(dense)
    with pytest.raises(StormError, match="X must be a CSR matrix"):
        BackedCells([dense])


def test_synthetic_plates_are_clustered_csr_counts(tmp_path):
    from storm.loaderbench.synth import PlateConfig, write_plates

    paths = write_plates(PlateConfig(n_plates=2, cells_per_plate=300, n_genes=50), tmp_path)
    cells = BackedCells(paths, ["cell_line", "drug", "moa_fine", "moa_broad"])
    X = cells.read(np.arange(len(cells)))
    assert X.shape == (600, 50) and np.array_equal(X.data, np.round(X.data))
    first = cells.labels["cell_line"][:300]
    assert (np.diff(first) >= 0).all()  # rows clustered by cell line on disk
    fine, broad = cells.labels["moa_fine"], cells.labels["moa_broad"]
    assert all(len(set(broad[fine == f])) == 1 for f in np.unique(fine))  # each fine MoA has one broad


def test_loader_classifier_cli(tmp_path, run_cli):
    from storm.loaderbench.synth import PlateConfig, write_plates

    paths = write_plates(PlateConfig(n_plates=3, cells_per_plate=400, n_genes=60), tmp_path / "plates")
    common = ["loaders", "train", "--train", paths[0], "--train", paths[1], "--test", paths[2],
              "--tasks", "cell_line,drug"]
    bad = run_cli(*common, "--set", "strategy=shuffle", "--out-dir", tmp_path / "bad")
    assert bad.returncode == 2 and bad.stderr.strip().endswith("streaming, streaming_buffer, block_shuffling, "
                                                               "random, block_weighted, true_weighted")
    assert not (tmp_path / "bad").exists()
    for strategy in ("random", "block_weighted"):
        done = run_cli(*common, "--set", f"strategy={strategy}", "--set", "epochs=1", "--out-dir", tmp_path / strategy)
        assert done.returncode == 0, done.stderr
    report = run_cli("loaders", "report", tmp_path / "random", tmp_path / "block_weighted", "--out-dir", tmp_path / "r")
    assert report.returncode == 0, report.stderr
    table = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert sorted(set(table["strategy"])) == ["block_weighted", "random"] and len(table) == 4
    summary = __import__("json").loads((tmp_path / "random" / "summary.json").read_text())
    assert summary["cells_seen"] == 800 and summary["config"]["epochs"] == 1


@pytest.mark.parametrize("n", [1, 64, 640, 1000])
def test_n_batches_counts_what_an_epoch_yields(n):
    sampling = Sampling("block_shuffling", block_size=4, batch_size=64, fetch_factor=10)
    counted = sum(len(sampling.batches(f, 0, i)) for i, f in enumerate(sampling.fetches(n, 0)))
    assert sampling.n_batches(n) == counted


def test_sparse_batches_densify_to_the_same_cells(plates):
    from storm.data.loader import make_loader, to_tensors

    paths, whole = plates
    sampling = Sampling("block_shuffling", block_size=4, batch_size=16, fetch_factor=2, seed=2)
    dense = list(CellBatches(BackedCells(paths, ["drug"]), sampling))
    sparse = list(make_loader(CellBatches(BackedCells(paths, ["drug"]), sampling, dense=False), num_workers=1))
    assert len(sparse) == len(dense)
    for a, b in zip(dense, sparse):
        assert "X" not in b and isinstance(b["index"], np.ndarray)  # numpy and CSR cross the queue
        b = to_tensors(b)
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["drug"], b["drug"])
        np.testing.assert_array_equal(b["X"].numpy(), whole.X[b["index"].numpy()].toarray())
