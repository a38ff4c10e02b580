"""Peak memory and wall time of every pipeline step as a screen grows (not a test; prints tables).

Usage: python tests/benchmarks/pipeline_scale.py [--sizes 1e5,5e5,2e6] [--pairs 500,5000@5e5]
                                                  [--work DIR] [--keep]

For each size, one at a time: `storm synth` writes a screen of that many cells (10 cell types,
2,000 genes, ~800 stored values a cell, 10% controls; --pairs sets the perturbations so that
there are that many (cell type, perturbation) pairs, 500 by default), then the whole pipeline
runs on it (`--models control_mean,context_mean,linear_additive,latent_additive`, one seed, 1,000
genes kept per split, the
two trained models `backed` and trained for a fixed 300 steps: training time is the loader's and
the model's, not the data's size), and the trace gives each step's wall time, peak RSS and
memory request (peak RSS to the kilobyte from each task's `.command.trace`: the trace file
rounds it to 0.1 GB). The data and the run are deleted before the next size (2M cells is ~45 GB on disk
with its prepared copy). Printed: the table per step and size, the ratio of the two largest
sizes, the fitted bytes per cell (the slope of peak RSS between them) and whether every task
stayed inside its request.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from child import measure
from storm.report.cost import step_of
from storm.report.trace import gigabytes, newest_trace, read_trace

ROOT = Path(__file__).resolve().parents[2]
N_CELL_TYPES, N_GENES, N_TOP_GENES, CONTROL_SHARE = 10, 2000, 1000, 0.1
LIBRARY_SIZE = 2000  # counts a cell: ~800 stored values of 2,000 genes (2M cells: ~38 GB with the prepared copy)
MODELS = "control_mean,context_mean,linear_additive,latent_additive"
TRAINED = ("linear_additive", "latent_additive")
MODEL_SET = " ".join(f"{m}.{k}" for m in TRAINED for k in ("backed=true", "patience=0", "min_steps=300"))


def synth(path: Path, n_cells: int, n_pairs: int, library_size: float) -> float:
    n_perts = max(2, n_pairs // N_CELL_TYPES)
    per_pair = max(1, round(n_cells * (1 - CONTROL_SHARE) / (n_perts * N_CELL_TYPES)))
    controls = max(1, round(n_cells * CONTROL_SHARE / N_CELL_TYPES))
    wall, _ = measure([str(ROOT / ".venv/bin/storm"), "synth", "--out", str(path), "--n-genes", str(N_GENES),
                       "--n-cell-types", str(N_CELL_TYPES), "--n-perturbations", str(n_perts),
                       "--cells-per-pair", str(per_pair), "--controls-per-cell-type", str(controls),
                       "--library-size", str(library_size)])
    return wall


def stored_values(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        return int(f["X/data"].shape[0])


def run_pipeline(data: Path, outdir: Path, work: Path) -> pd.DataFrame:
    cmd = [str(ROOT / ".venv/bin/nextflow"), "run", str(ROOT / "main.nf"), "--input", str(data),
           "--outdir", str(outdir), "--models", MODELS, "--split_seeds", "0", "--model_set", MODEL_SET,
           "--n_top_genes", str(N_TOP_GENES),
           "-w", str(work), "-ansi-log", "false"]
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=outdir.parent, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the pipeline failed at this size:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    trace = read_trace(newest_trace(outdir / "pipeline_info"))
    trace["step"] = step_of(trace["process"])
    # a model's steps one row per model: training costs differ by model, not by step
    per_model = trace["step"].isin(["TRAIN", "PREDICT", "EVALUATE"])
    trace.loc[per_model, "step"] += " " + trace.loc[per_model, "tag"].astype(str).str.split().str[-1]
    trace["memory_gb"] = trace["memory"].map(gigabytes)
    trace["peak_rss_gb"] = [task_peak_rss(work, h, rounded) for h, rounded in zip(trace["hash"], trace["peak_rss_gb"])]
    print(f"  pipeline: {time.perf_counter() - started:.0f} s", flush=True)
    return trace


def task_peak_rss(work: Path, task_hash: str, rounded: float) -> float:
    """A task's peak RSS in GB from its ``.command.trace`` (kilobytes), else the trace's rounded figure."""
    for trace in work.glob(f"{task_hash[:2]}/{task_hash[3:]}*/.command.trace"):
        fields = dict(line.split("=", 1) for line in trace.read_text().splitlines() if "=" in line)
        if fields.get("peak_rss", "").isdigit():
            return int(fields["peak_rss"]) * 1024 / 2**30
    return rounded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,5e5,2e6", help="cells, comma-separated")
    parser.add_argument("--pairs", default="500,5000@5e5",
                        help="pairs per size: N (every size) or N@SIZE (that size only), comma-separated")
    parser.add_argument("--work", type=Path, default=Path("/tmp/storm-scale"), help="scratch folder")
    parser.add_argument("--keep", action="store_true", help="keep each size's data and run")
    parser.add_argument("--library-size", type=float, default=LIBRARY_SIZE,
                        help="mean counts a cell (fewer: sparser cells, quicker runs that still show per-cell costs)")
    parser.add_argument("--out", type=Path, help="also write the table here (CSV; tahoe_plan.py reads it)")
    args = parser.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    runs = [(n, int(p)) for p in args.pairs.split(",") if "@" not in p for n in sizes]
    runs += [(int(float(p.split("@")[1])), int(p.split("@")[0])) for p in args.pairs.split(",") if "@" in p]
    runs = sorted(set(runs))
    rows = []
    for n_cells, n_pairs in runs:
        folder = args.work / f"cells{n_cells}-pairs{n_pairs}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        print(f"{n_cells:,} cells, {n_pairs:,} pairs", flush=True)
        wall = synth(folder / "screen.h5ad", n_cells, n_pairs, args.library_size)
        print(f"  synth: {wall:.0f} s, {(folder / 'screen.h5ad').stat().st_size / 1e9:.1f} GB", flush=True)
        stored = stored_values(folder / "screen.h5ad")
        trace = run_pipeline(folder / "screen.h5ad", folder / "results", folder / "work")
        for step, tasks in trace.groupby("step"):
            rows.append({"cells": n_cells, "pairs": n_pairs, "stored_values": stored, "step": step, "tasks": len(tasks),
                         "wall_s": tasks["realtime_s"].max(), "peak_rss_gb": tasks["peak_rss_gb"].max(),
                         "request_gb": tasks["memory_gb"].max(),
                         "inside": bool((tasks["peak_rss_gb"] <= tasks["memory_gb"]).all())})
        if not args.keep:
            shutil.rmtree(folder)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    pd.set_option("display.width", 200)
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    base = table[table["pairs"] == table["pairs"].min()]
    big = sorted(base["cells"].unique())[-2:]
    if len(big) == 2:
        a, b = (base[base["cells"] == n].set_index("step") for n in big)
        growth = pd.DataFrame({
            f"peak ratio {big[1]:,}/{big[0]:,}": b["peak_rss_gb"] / a["peak_rss_gb"],
            f"wall ratio {big[1]:,}/{big[0]:,}": b["wall_s"] / a["wall_s"],
            "bytes per cell": (b["peak_rss_gb"] - a["peak_rss_gb"]) * 2**30 / (big[1] - big[0]),
        })
        print("\n" + growth.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"\nevery task inside its memory request: {bool(table['inside'].all())}")


if __name__ == "__main__":
    sys.exit(main())
