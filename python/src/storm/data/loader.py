"""A torch IterableDataset of batches from backed h5ad files, in a :class:`Sampling` order.

Use it through :func:`make_loader`: each DataLoader worker (and each DDP rank, given
``rank``/``world_size``) takes its own fetches of the epoch, so none overlap. Call
:meth:`set_epoch` before each epoch; the order depends on (seed, epoch) only. With
``dense=False`` a batch holds the cells as a scipy CSR matrix (a few percent of the dense bytes on
single-cell data) and numpy labels, which is what should cross from worker processes;
:func:`to_tensors` makes the dense tensors on the receiving side.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .backed import BackedCells
from .sampling import Sampling


def shard_fetches(sampling: Sampling, n: int, epoch: int, weights: np.ndarray | None = None, rank: int = 0,
                  world_size: int = 1, equal: bool = False):
    """This process's fetches of an epoch (its DataLoader worker of its DDP rank), each sorted for
    reading in file order, with the fetch's number in the whole epoch: that number keys the
    in-memory shuffle, so batches do not depend on how the epoch is sharded. ``equal`` (training
    over several ranks): each shard takes as many full fetches (the epoch's last few cells wait for
    another epoch's order), since a rank that ran out of batches first would leave the others
    waiting for it forever; without it the shards cover the epoch exactly once."""
    worker = get_worker_info()
    worker_id, n_workers = (worker.id, worker.num_workers) if worker else (0, 1)
    shard, n_shards = rank * n_workers + worker_id, world_size * n_workers
    fetches = sampling.fetches(n, epoch, weights, shard, n_shards)
    if equal:
        fetches = fetches[:sampling.equal_fetches(n, n_shards)]
    for i, fetch in enumerate(fetches):
        yield shard + i * n_shards, np.sort(fetch)


class CellBatches(IterableDataset):
    def __init__(self, cells: BackedCells, sampling: Sampling, weights: np.ndarray | None = None,
                 rank: int = 0, world_size: int = 1, dense: bool = True):
        self.cells, self.sampling, self.weights, self.dense = cells, sampling, weights, dense
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """Batches per epoch, over all workers and ranks together."""
        return self.sampling.n_batches(len(self.cells))

    def __iter__(self):
        for number, fetch in shard_fetches(self.sampling, len(self.cells), self.epoch, self.weights, self.rank,
                                           self.world_size):
            block = self.cells.read(fetch)  # CSR until the batch is formed
            for positions in self.sampling.batches(fetch, self.epoch, number):
                cells = fetch[positions]
                batch = {"index": cells, **{column: codes[cells] for column, codes in self.cells.labels.items()}}
                if self.dense:
                    batch["X"] = block[positions].toarray().astype(np.float32, copy=False)
                    yield to_tensors(batch)
                else:
                    batch["X_csr"] = block[positions]
                    yield batch


def _as_is(batch):
    return batch


def make_loader(dataset: CellBatches, num_workers: int = 0) -> DataLoader:
    """A DataLoader for :class:`CellBatches` that passes each batch through the worker queue as
    one pickled object (with ``dense=False``: CSR and numpy arrays), rather than one shared-memory
    tensor per field, which costs more than the data for batches this size."""
    return DataLoader(dataset, batch_size=None, num_workers=num_workers, collate_fn=_as_is)


def to_tensors(batch: dict) -> dict:
    """A batch as torch tensors, with the dense cells x genes matrix ``X`` (made from ``X_csr``)."""
    out = {key: torch.as_tensor(value) for key, value in batch.items() if key != "X_csr"}
    if "X_csr" in batch:
        out["X"] = torch.from_numpy(batch["X_csr"].toarray().astype(np.float32, copy=False))
    return out
