"""The order cells are read in, per epoch: streaming, buffered shuffling, block shuffling,
random, and weighted sampling with replacement (by blocks or by cells).

Every order is drawn from (seed, epoch) alone, so a resumed run reads what an unbroken one would,
and is cut into *fetches* (``fetch_size`` cells read together) that DataLoader workers and DDP
ranks take round-robin, so no two of them read the same fetch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import StormError

STRATEGIES = ("streaming", "streaming_buffer", "block_shuffling", "random", "block_weighted", "true_weighted")
DEFAULT_BASELINE = 1000


def balanced_weights(groups: list[np.ndarray], baseline: float = DEFAULT_BASELINE) -> np.ndarray:
    """Per-cell weights that balance the combinations of ``groups`` (integer codes per cell):
    ``total / (n_groups * (count + baseline))``. The baseline keeps rare groups from being drawn
    so often they are memorised."""
    if not groups:
        raise StormError("weights need at least one obs column to balance")
    codes = np.unique(np.stack([np.asarray(g) for g in groups], axis=1), axis=0, return_inverse=True)[1].ravel()
    counts = np.bincount(codes)
    return (codes.size / (counts.size * (counts + baseline)))[codes]


@dataclass(frozen=True)
class Sampling:
    strategy: str = "block_shuffling"
    block_size: int = 16
    batch_size: int = 64
    fetch_factor: int = 16  # batches read together (sorted on disk, shuffled in memory)
    buffer_size: int = 4096  # streaming_buffer: cells shuffled together
    seed: int = 0

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise StormError(f"unknown loader strategy '{self.strategy}'; strategies: {', '.join(STRATEGIES)}")
        for name in ("block_size", "batch_size", "fetch_factor", "buffer_size"):
            if getattr(self, name) < 1:
                raise StormError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def fetch_size(self) -> int:
        return self.batch_size * self.fetch_factor

    def order(self, n: int, epoch: int, weights: np.ndarray | None = None) -> np.ndarray:
        """Cell indices of one epoch in reading order (``n`` of them; weighted: with replacement)."""
        rng = np.random.default_rng([self.seed, epoch])
        if self.strategy == "streaming":
            return np.arange(n)
        if self.strategy == "streaming_buffer":
            order = np.arange(n)
            for start in range(0, n, self.buffer_size):
                rng.shuffle(order[start:start + self.buffer_size])
            return order
        block = 1 if self.strategy in ("random", "true_weighted") else self.block_size
        starts = np.arange(0, n, block)
        if self.strategy in ("block_weighted", "true_weighted"):
            if weights is None or len(weights) != n:
                raise StormError(f"strategy {self.strategy} needs one weight per cell")
            mass = np.add.reduceat(np.asarray(weights, dtype=float), starts)
            picked = rng.choice(starts.size, size=-(-n // block), p=mass / mass.sum())
        else:
            picked = rng.permutation(starts.size)
        order = (starts[picked][:, None] + np.arange(block)).ravel()
        return order[order < n][:n]

    def fetches(self, n: int, epoch: int, weights: np.ndarray | None = None, shard: int = 0,
                n_shards: int = 1) -> list[np.ndarray]:
        """This shard's fetches of the epoch: every ``n_shards``-th group of ``fetch_size`` cells."""
        order = self.order(n, epoch, weights)
        groups = [order[i:i + self.fetch_size] for i in range(0, order.size, self.fetch_size)]
        return groups[shard::n_shards]

    def for_shards(self, n: int, n_shards: int) -> "Sampling":
        """This sampling with fetches small enough that each of ``n_shards`` (DDP ranks x loader
        workers) gets at least one full fetch of an epoch of ``n`` cells."""
        if n < self.batch_size * n_shards:
            raise StormError(f"{n} training cells are too few for {n_shards} devices and workers with batches of "
                             f"{self.batch_size}: each needs a batch; train on fewer devices")
        return replace(self, fetch_factor=max(1, min(self.fetch_factor, n // (self.batch_size * n_shards))))

    def equal_fetches(self, n: int, n_shards: int) -> int:
        """Full fetches each of ``n_shards`` takes of an epoch of ``n`` cells when all take as many."""
        return n // self.fetch_size // n_shards

    def n_batches(self, n: int, equal_shards: int = 0) -> int:
        """Batches in an epoch of ``n`` cells, over all shards (each fetch ends with a short one);
        with ``equal_shards``, those of each of that many shards taking as many full fetches."""
        if equal_shards:
            return self.equal_fetches(n, equal_shards) * self.fetch_factor
        full, rest = divmod(n, self.fetch_size)
        return full * self.fetch_factor + -(-rest // self.batch_size)

    def batches(self, fetched: np.ndarray, epoch: int, fetch_number: int) -> list[np.ndarray]:
        """Positions within one fetch, shuffled in memory (not for streaming), cut into batches."""
        positions = np.arange(fetched.size)
        if self.strategy not in ("streaming", "streaming_buffer"):
            np.random.default_rng([self.seed, epoch, fetch_number]).shuffle(positions)
        return [positions[i:i + self.batch_size] for i in range(0, positions.size, self.batch_size)]
