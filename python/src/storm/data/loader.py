"""A torch IterableDataset of batches from backed h5ad files, in a :class:`Sampling` order.

Use it with ``DataLoader(dataset, batch_size=None, num_workers=k)``: each worker (and each DDP
rank, given ``rank``/``world_size``) takes its own fetches of the epoch, so none overlap. Call
:meth:`set_epoch` before each epoch; the order depends on (seed, epoch) only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .backed import BackedCells
from .sampling import Sampling


class CellBatches(IterableDataset):
    def __init__(self, cells: BackedCells, sampling: Sampling, weights: np.ndarray | None = None,
                 rank: int = 0, world_size: int = 1):
        self.cells, self.sampling, self.weights = cells, sampling, weights
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """Batches per epoch, over all workers and ranks together."""
        return self.sampling.n_batches(len(self.cells))

    def __iter__(self):
        worker = get_worker_info()
        worker_id, n_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        shard, n_shards = self.rank * n_workers + worker_id, self.world_size * n_workers
        fetches = self.sampling.fetches(len(self.cells), self.epoch, self.weights, shard, n_shards)
        for i, fetch in enumerate(fetches):
            fetch = np.sort(fetch)  # read in file order; batches are shuffled in memory
            block = self.cells.read(fetch)  # CSR until the batch is formed
            # the in-memory shuffle is keyed by the fetch's number in the whole epoch, not the shard's
            for positions in self.sampling.batches(fetch, self.epoch, shard + i * n_shards):
                batch = {"X": torch.from_numpy(block[positions].toarray().astype(np.float32, copy=False)),
                         "index": torch.from_numpy(fetch[positions])}
                for column, codes in self.cells.labels.items():
                    batch[column] = torch.from_numpy(codes[fetch[positions]])
                yield batch
