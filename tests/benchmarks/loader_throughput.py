"""Loader throughput on a Tahoe-shaped h5ad: storm's loader vs scdataset 0.3.0 vs anndata's
AnnLoader (not a test; prints tables).

Usage: python tests/benchmarks/loader_throughput.py [--cells 200000] [--genes 62710] [--nnz 1500]
           [--blocks 1,4,16,64,256] [--workers 0,1,2] [--variants plain,gzip] [--seconds 6]
           [--to dense|csr] [--cold] [--cache DIR]

The file (written once into --cache, with anndata's defaults; gzip: compression='gzip') holds
integer counts in CSR, rows clustered by (cell line, drug) like a sequenced plate. Every
configuration runs in its own process: after a warm-up of two fetches it reads for --seconds and
reports steady-state cells/s and peak memory of the main process and of one worker. "cold" drops
the page cache first (root only); "warm" reads the whole file once first. --to dense (default)
counts batches as dense torch tensors made in the main process (what a model takes; the same
work for every loader), --to csr the CSR batches the loaders hand over (the loader alone). scdataset runs the same
strategy (BlockShuffling with the same block size, batch size and fetch factor) over the backed
AnnData, fetching with anndata's backed CSR indexing; AnnLoader shuffles cell by cell.
Per-batch label entropy (drug) relative to i.i.d. batches shows what each block size costs in
randomness. Targets: storm >= 1.5x scdataset at block size 16; block shuffling >= 70% of
streaming speed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BATCH, FETCH_FACTOR = 64, 16


def write_file(path: Path, cells: int, genes: int, nnz: int, gzip: bool) -> None:
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    lines = np.sort(rng.integers(0, 50, cells))
    drugs = rng.integers(0, 380, cells)
    order = np.lexsort((drugs, lines))
    indptr = np.arange(cells + 1, dtype=np.int64) * nnz
    indices = np.empty(cells * nnz, dtype=np.int32)
    for start in range(0, cells, 10000):  # sorted column indices per row, in blocks to bound memory
        stop = min(start + 10000, cells)
        cols = np.sort(rng.choice(genes, size=(stop - start, nnz * 2))[:, :nnz], axis=1)
        indices[start * nnz:stop * nnz] = cols.ravel()
    data = rng.poisson(1.0, cells * nnz).astype(np.float32) + 1
    X = sp.csr_matrix((data, indices, indptr), shape=(cells, genes))
    obs = pd.DataFrame({"cell_line": pd.Categorical(lines[order].astype(str)),
                        "drug": pd.Categorical(drugs[order].astype(str))},
                       index=pd.Index([f"c{i}" for i in range(cells)], dtype=object))
    ad.AnnData(X=X, obs=obs).write_h5ad(path, compression="gzip" if gzip else None)


def one(spec: dict) -> dict:
    """Run one configuration in this process; return cells/s and memory."""
    import torch
    from torch.utils.data import DataLoader

    path, loader, block, workers = spec["path"], spec["loader"], spec["block"], spec["workers"]
    if loader == "storm":
        from storm.data.backed import BackedCells
        from storm.data.loader import CellBatches, make_loader, to_tensors
        from storm.data.sampling import Sampling

        strategy = "streaming" if block == 0 else ("random" if block == 1 else "block_shuffling")
        dataset = CellBatches(BackedCells([path], ["drug"]), Sampling(strategy, max(block, 1), BATCH, FETCH_FACTOR),
                              dense=False)
        batches = (to_tensors(b)["X"] if spec["to"] == "dense" else b["X_csr"] for b in make_loader(dataset, workers))
    elif loader == "scdataset":
        import anndata as ad
        from scdataset import scDataset
        from scdataset.strategy import BlockShuffling, Streaming

        adata = ad.read_h5ad(path, backed="r")
        strategy = Streaming() if block == 0 else BlockShuffling(block_size=block)
        dataset = scDataset(adata, strategy, batch_size=BATCH, fetch_factor=FETCH_FACTOR,
                            fetch_callback=lambda data, idx: data.X[np.sort(idx)])
        # CSR crosses from the workers, the dense batch is made here, as for storm
        batches = (torch.from_numpy(X.toarray()) if spec["to"] == "dense" else X
                   for X in DataLoader(dataset, batch_size=None, num_workers=workers))
    else:
        import anndata as ad
        from anndata.experimental import AnnLoader

        if workers:
            raise SystemExit("AnnLoader cannot hand backed batches to worker processes")
        # a batch is a lazy view: .X reads it
        batches = (view.X if torch.is_tensor(view.X) or spec["to"] == "csr" else torch.from_numpy(view.X.toarray())
                   for view in AnnLoader(ad.read_h5ad(path, backed="r"), batch_size=BATCH, shuffle=True))
    warmup, seen, started = 2 * BATCH * FETCH_FACTOR, 0, None
    for batch in batches:  # a dense torch tensor ready for a model, or (--to csr) the loader's CSR
        seen += batch.shape[0]
        if started is None and seen >= warmup:
            started, seen = time.perf_counter(), 0
        elif started is not None and time.perf_counter() - started > spec["seconds"]:
            break
    rate = seen / (time.perf_counter() - started) if started else float("nan")
    # VmHWM: this process's own peak (ru_maxrss would carry the parent's from before exec)
    status = Path("/proc/self/status").read_text()
    peak_kb = int(status.split("VmHWM:")[1].split()[0])
    return {"cells_per_s": rate, "main_gb": peak_kb / 1024**2,
            "worker_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2}


def measure(spec: dict, cold: bool) -> dict:
    if cold:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    else:
        with open(spec["path"], "rb") as fh:  # the whole file into the page cache
            while fh.read(1 << 26):
                pass
    done = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True)
    if done.returncode != 0:
        return {"cells_per_s": float("nan"), "main_gb": float("nan"), "worker_gb": float("nan"),
                "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def entropy_ratio(path: Path, block: int, batches: int = 300) -> float:
    """Mean per-batch entropy of drug labels over that of i.i.d. batches, in storm's order."""
    from storm.data.backed import BackedCells
    from storm.data.sampling import Sampling

    labels = BackedCells([path], ["drug"]).labels["drug"]
    strategy = "streaming" if block == 0 else ("random" if block == 1 else "block_shuffling")
    sampling = Sampling(strategy, max(block, 1), BATCH, FETCH_FACTOR)
    fetches = sampling.fetches(labels.size, 0)

    def entropy(values):
        p = np.bincount(values) / values.size
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    shuffled = [entropy(labels[np.sort(f)[pos]]) for i, f in enumerate(fetches[:batches // FETCH_FACTOR + 1])
                for pos in sampling.batches(f, 0, i)]
    iid = [entropy(labels[np.random.default_rng(i).integers(0, labels.size, BATCH)]) for i in range(batches)]
    return float(np.mean(shuffled) / np.mean(iid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--genes", type=int, default=62_710)
    parser.add_argument("--nnz", type=int, default=1500)
    parser.add_argument("--blocks", default="1,4,16,64,256")
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--variants", default="plain,gzip")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--cold", action="store_true", help="also measure with the page cache dropped (root)")
    parser.add_argument("--to", choices=["dense", "csr"], default="dense", help="what a counted batch is")
    parser.add_argument("--cache", type=Path, default=Path("bench-loaders"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    blocks = [int(b) for b in args.blocks.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    print("| file | cache | loader | block | workers | cells/s | vs scdataset | vs streaming | main GB | worker GB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant in args.variants.split(","):
        path = args.cache / f"tahoe_{args.cells}x{args.genes}_nnz{args.nnz}_{variant}.h5ad"
        if not path.exists():
            started = time.perf_counter()
            write_file(path, args.cells, args.genes, args.nnz, variant == "gzip")
            print(f"<!-- wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f}s -->")
        for cache in (["cold", "warm"] if args.cold else ["warm"]):
            for w in workers:
                base = {"path": str(path), "workers": w, "seconds": args.seconds, "to": args.to}
                streaming = measure({**base, "loader": "storm", "block": 0}, cache == "cold")["cells_per_s"]
                print(f"| {variant} | {cache} | storm streaming | - | {w} | {streaming:,.0f} | | 1.00 | | |")
                for block in blocks:
                    sc = measure({**base, "loader": "scdataset", "block": block}, cache == "cold")
                    st = measure({**base, "loader": "storm", "block": block}, cache == "cold")
                    for name, r in (("storm", st), ("scdataset", sc)):
                        ratio = st["cells_per_s"] / sc["cells_per_s"] if name == "storm" else 1.0
                        print(f"| {variant} | {cache} | {name} | {block} | {w} | {r['cells_per_s']:,.0f} | "
                              f"{ratio:.2f} | {r['cells_per_s'] / streaming:.2f} | {r['main_gb']:.2f} | "
                              f"{r['worker_gb']:.2f} |" + (f" {r['error']}" if "error" in r else ""))
                ann = measure({**base, "loader": "annloader", "block": 1}, cache == "cold")
                print(f"| {variant} | {cache} | AnnLoader | 1 | {w} | {ann['cells_per_s']:,.0f} | | "
                      f"{ann['cells_per_s'] / streaming:.2f} | {ann['main_gb']:.2f} | {ann['worker_gb']:.2f} |"
                      + (f" {ann['error']}" if "error" in ann else ""), flush=True)
    path = args.cache / f"tahoe_{args.cells}x{args.genes}_nnz{args.nnz}_{args.variants.split(',')[0]}.h5ad"
    print("\n| block | per-batch drug entropy / i.i.d. |\n|---|---|")
    for block in [0, *blocks]:
        print(f"| {'streaming' if block == 0 else block} | {entropy_ratio(path, block):.2f} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
