"""How fast `storm split` is on Tahoe-shaped obs tables (not a test; prints a table).

Usage: python tests/benchmarks/split_scale.py [--sizes 1e6,1e7,1e8] [--cache DIR]

Each table has ~50 cell lines x 380 drugs x 3 doses over 14 plates, 5% DMSO controls, and a
cell_id column, stored as parquet with dictionary-encoded columns (written once into --cache).
For each size it runs, as separate processes, (a) a read of just the columns the split needs and
(b) the full `storm split` CLI (read, split, check, write every output), and prints wall time,
peak RSS and the ratio of the two.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from child import measure

N_LINES, N_DRUGS, DOSES, N_PLATES = 50, 380, ("0.05uM", "0.5uM", "5uM"), 14
CONTROL = "DMSO_TF"
COLUMNS = ["cell_line", "drug", "dose"]


def dictionary(codes: np.ndarray, names: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(names))


def write_table(path: Path, n: int, seed: int = 0) -> None:
    """Write an n-cell Tahoe-shaped obs table in row groups of 10M (bounded memory)."""
    rng = np.random.default_rng(seed)
    drugs = [CONTROL] + [f"drug{i:03d}" for i in range(N_DRUGS)]
    schema = None
    tmp = path.with_suffix(".tmp")
    writer = None
    for start in range(0, n, 10_000_000):
        m = min(10_000_000, n - start)
        drug = np.where(rng.random(m) < 0.05, 0, rng.integers(1, N_DRUGS + 1, m)).astype(np.int16)
        ids = pc.binary_join_element_wise(
            "c", pc.utf8_lpad(pc.cast(pa.array(np.arange(start, start + m)), pa.string()), 9, "0"), "")
        table = pa.table({
            "cell_id": ids,
            "cell_line": dictionary(rng.integers(0, N_LINES, m).astype(np.int16),
                                    [f"line{i:02d}" for i in range(N_LINES)]),
            "drug": dictionary(drug, drugs),
            "dose": dictionary(rng.integers(0, len(DOSES), m).astype(np.int8), list(DOSES)),
            "plate": dictionary(rng.integers(0, N_PLATES, m).astype(np.int8), [f"plate{i}" for i in range(N_PLATES)]),
        })
        schema = schema or table.schema
        writer = writer or pq.ParquetWriter(tmp, schema)
        writer.write_table(table)
    writer.close()
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e6,1e7,1e8")
    parser.add_argument("--cache", default="/tmp/storm-split-bench")
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    read_code = ("import sys; from storm.split import read_coded_obs; "
                 f"read_coded_obs(sys.argv[1], {COLUMNS!r})")
    rows = []
    for size in (int(float(s)) for s in args.sizes.split(",")):
        table = cache / f"tahoe_obs_{size}.parquet"
        if not table.exists():
            print(f"writing {table} ...", file=sys.stderr)
            write_table(table, size)
        read_s, read_gb = measure([sys.executable, "-c", read_code, str(table)])
        out = cache / f"out_{size}"
        split_s, split_gb = measure([
            sys.executable, "-m", "storm", "-q", "split", "--input", str(table), "--out-dir", str(out),
            "--seed", "0", "--perturbation-key", "drug", "--cell-type-key", "cell_line",
            "--covariate-keys", "cell_line,dose", "--control-value", CONTROL, "--batch-key", "plate"])
        rows.append((size, read_s, read_gb, split_s, split_gb, split_s / read_s))
    print(f"{'cells':>12} {'read s':>8} {'read GB':>8} {'split s':>8} {'split GB':>9} {'split/read':>10}")
    for size, read_s, read_gb, split_s, split_gb, ratio in rows:
        print(f"{size:>12,} {read_s:>8.1f} {read_gb:>8.2f} {split_s:>8.1f} {split_gb:>9.2f} {ratio:>10.2f}")


if __name__ == "__main__":
    main()
