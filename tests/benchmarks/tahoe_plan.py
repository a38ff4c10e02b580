"""The plan for Tahoe-100M on AWS Batch, computed from measured per-cell costs (not a test; prints).

Usage: python tests/benchmarks/tahoe_plan.py [--costs tests/benchmarks/scale_costs.csv] [--nodes 14,56,112]

The grid: 14 plates of ~7.1M cells (100M x 62,710 genes, ~2,500 stored values a cell), 50 cell
lines x 379 drugs x 3 doses, 3 split seeds, models control_mean, context_mean, latent_additive,
chemcpa and st. Measured (``--costs``, written by ``pipeline_scale.py --out``): each step's wall
time and peak RSS at several sizes, from which a time per cell (per stored value for the steps
that read X: VALIDATE, PREPARE, GENES), a time per pair (REFERENCE, PREDICT, EVALUATE) and a
fixed time are fitted. Memory requests come from ``storm.resources`` at Tahoe's sizes. Assumed
(flags): how fast the GPU models train (cells a second on one GPU, epochs), the instance types and
the prices (the report's defaults, and spot ones). Printed: tasks per step with their CPUs, memory,
GPUs and instance type, core-hours and GPU-hours, the bytes each task stages and the disk it
needs, wall time on N nodes, and dollars on demand and on spot.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from storm.metrics import CELLS_PER_PAIR, CONTROLS_PER_CELL_TYPE
from storm.resources import GB, Sizes, requests

HERE = Path(__file__).resolve().parent
SCHEMA = HERE.parents[1] / "nextflow_schema.json"
PLATES, CELLS, GENES, VALUES_PER_CELL = 14, 100_000_000, 62_710, 2_500
LINES, DRUGS, DOSES, SEEDS = 50, 379, 3, 3
N_TOP_GENES = 2000
HELD_OUT = 0.2  # share of pairs a split holds out (val + test), as the benchmark's transfer split
MODELS = {  # model: (where it trains, its benchmark row to scale from)
    "control_mean": ("cpu", "TRAIN control_mean"), "context_mean": ("cpu", "TRAIN context_mean"),
    "latent_additive": ("gpu", None), "chemcpa": ("gpu", None), "st": ("gpu", None)}
CPUS = {"process_single": 1, "process_low": 2, "process_medium": 4, "process_gpu": 8}
LABEL = {"VALIDATE": "process_single", "PREPARE": "process_low", "COMBINE_QC": "process_single",
         "SPLIT": "process_single", "GENES": "process_single", "REFERENCE": "process_low",
         "PREDICT": "process_single", "EVALUATE": "process_single"}
#: on-demand instance types the Batch compute environment may pick from: (vCPUs, GiB, GPUs)
INSTANCES = {"m6i.large": (2, 8, 0), "r6i.large": (2, 16, 0), "r6i.xlarge": (4, 32, 0), "r6i.2xlarge": (8, 64, 0),
             "r6i.4xlarge": (16, 128, 0), "r6i.8xlarge": (32, 256, 0), "r6i.16xlarge": (64, 512, 0),
             "g5.2xlarge": (8, 32, 1), "g5.4xlarge": (16, 64, 1), "g5.8xlarge": (32, 128, 1),
             "g5.16xlarge": (64, 256, 1)}


def schema_default(name: str) -> float:
    for group in json.loads(SCHEMA.read_text())["$defs"].values():
        if name in group.get("properties", {}):
            return float(group["properties"][name]["default"])
    raise KeyError(name)


def scored(cells, pairs):
    """Perturbed cells scored: each pair's, at most CELLS_PER_PAIR (90% of a screen's cells are perturbed)."""
    return np.minimum(np.asarray(cells) * 0.9 / np.asarray(pairs), CELLS_PER_PAIR) * np.asarray(pairs)


def fit(costs: pd.DataFrame, step: str, features: list[str]):
    """Seconds of ``step`` as fixed + a cost per unit of each of ``features`` (least squares over the
    measured sizes, costs kept non-negative); returns a function of those features' values."""
    rows = costs[costs["step"] == step]
    if rows.empty:
        raise SystemExit(f"{step} was not measured in the costs table")
    X = np.column_stack([np.ones(len(rows)), *(rows[f].to_numpy(float) for f in features)])
    coef = np.maximum(np.linalg.lstsq(X, rows["wall_s"].to_numpy(float), rcond=None)[0], 0.0)
    return lambda **values: float(coef[0] + sum(c * values[f] for c, f in zip(coef[1:], features)))


def instance(cpus: int, memory: float, gpus: int) -> str:
    fits = [(c * 1000 + m, name) for name, (c, m, g) in INSTANCES.items()
            if c >= cpus and m * GB >= memory and g >= gpus and (g > 0) == (gpus > 0)]
    return min(fits)[1] if fits else "none fits"


def plan(costs: pd.DataFrame, args) -> pd.DataFrame:
    plate = CELLS // PLATES
    pairs = LINES * DRUGS * DOSES
    costs = costs.assign(scored=scored(costs["cells"], costs["pairs"]))
    tahoe = {"cells": CELLS, "pairs": pairs, "stored_values": CELLS * VALUES_PER_CELL,
             "scored": float(scored(CELLS, pairs))}
    memory = requests(Sizes(CELLS, GENES, DRUGS * DOSES, CELLS // LINES), N_TOP_GENES)
    shard_memory = requests(Sizes(plate, GENES, DRUGS * DOSES, plate // LINES), N_TOP_GENES)
    plate_bytes = plate * VALUES_PER_CELL * 8  # float32 values + int32 gene indices
    prepared_bytes = 2 * plate_bytes  # X and the counts layer
    scored_bytes = (tahoe["scored"] * HELD_OUT + LINES * CONTROLS_PER_CELL_TYPE) * N_TOP_GENES * 4 * 2
    rows = []

    def add(step, tasks, seconds, memory_bytes, label, staged, gpus=0, how=""):
        cpus = CPUS[label]
        rows.append({"step": step, "tasks": tasks, "cpus": cpus, "memory_gb": memory_bytes / GB, "gpus": gpus,
                     "instance": instance(cpus, memory_bytes, gpus), "hours_per_task": seconds / 3600,
                     "staged_gb": staged / 1e9, "disk_gb": staged / 1e9 * 1.1 + 20, "how": how})

    for step in ("VALIDATE", "PREPARE"):  # per plate
        seconds = fit(costs, step, ["stored_values"])(stored_values=plate * VALUES_PER_CELL)
        add(step, PLATES, seconds, shard_memory.get(step, 3 * GB), LABEL[step],
            plate_bytes + (prepared_bytes if step == "PREPARE" else 0), how="measured: per stored value")
    add("COMBINE_QC", 1, 5, GB, "process_single", 0, how="seconds")
    add("SPLIT", SEEDS, fit(costs, "SPLIT", ["cells"])(**tahoe), memory["SPLIT"], "process_single",
        PLATES * plate_bytes * 0.01, how="measured: per cell (obs only)")
    add("GENES", SEEDS, fit(costs, "GENES", ["stored_values"])(**tahoe), memory["GENES"], "process_single",
        PLATES * prepared_bytes, how="measured: per stored value")
    add("REFERENCE", SEEDS, fit(costs, "REFERENCE", ["cells", "pairs"])(**tahoe), memory["REFERENCE"],
        LABEL["REFERENCE"], PLATES * prepared_bytes, how="measured: per cell and pair")
    for model, (device, row) in MODELS.items():
        if device == "cpu":
            seconds, label, gpus, how = fit(costs, row, ["cells"])(**tahoe), "process_medium", 0, "measured: per cell"
        else:
            seconds = args.epochs * CELLS * (1 - HELD_OUT) / args.gpu_cells_per_s
            label, gpus = "process_gpu", 1
            how = f"assumed: {args.epochs:g} epochs at {args.gpu_cells_per_s:,.0f} cells/s a GPU"
        add(f"TRAIN {model}", SEEDS, seconds, memory["TRAIN_BACKED"], label, PLATES * prepared_bytes, gpus, how)
        measured = f"PREDICT {model}" if f"PREDICT {model}" in set(costs["step"]) else "PREDICT latent_additive"
        add(f"PREDICT {model}", SEEDS, fit(costs, measured, ["cells", "pairs"])(**tahoe), memory["PREDICT"],
            "process_single", PLATES * prepared_bytes, how=f"measured ({measured.split()[1]}): per cell and pair")
        add(f"EVALUATE {model}", SEEDS, fit(costs, "EVALUATE control_mean", ["cells", "pairs"])(**tahoe),
            memory["EVALUATE"], "process_single", scored_bytes, how="measured: per cell and pair")
    return pd.DataFrame(rows)


def wall_hours(table: pd.DataFrame, nodes: int) -> float:
    """Stages run one after another (per plate, then per split, training, scoring); a stage's
    tasks fill the nodes (one task a node) in waves."""
    stages = [["VALIDATE"], ["PREPARE"], ["COMBINE_QC", "SPLIT"], ["GENES"], ["REFERENCE", "TRAIN"],
              ["PREDICT"], ["EVALUATE"]]
    total = 0.0
    for stage in stages:
        tasks = table[table["step"].str.split().str[0].isin(stage)]
        durations = sorted(np.repeat(tasks["hours_per_task"].to_numpy(), tasks["tasks"].to_numpy()), reverse=True)
        loads = np.zeros(nodes)
        for hours in durations:  # longest first onto the least loaded node
            loads[np.argmin(loads)] += hours
        total += loads.max()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--costs", type=Path, default=HERE / "scale_costs.csv", help="pipeline_scale.py --out's table")
    parser.add_argument("--nodes", default="14,56,112", help="nodes working at once, comma-separated")
    parser.add_argument("--gpu-cells-per-s", type=float, default=20_000,
                        help="assumed: cells a second one GPU trains the neural models on (backed reads)")
    parser.add_argument("--epochs", type=float, default=3, help="assumed: epochs the neural models train")
    parser.add_argument("--spot-cpu-share", type=float, default=0.35, help="assumed: spot price / on-demand, CPU")
    parser.add_argument("--spot-gpu-share", type=float, default=0.40, help="assumed: spot price / on-demand, GPU")
    args = parser.parse_args()

    costs = pd.read_csv(args.costs)
    table = plan(costs, args)
    cpu_hour, gpu_hour = schema_default("price_cpu_hour"), schema_default("price_gpu_hour")
    table["core_hours"] = table["tasks"] * table["hours_per_task"] * table["cpus"]
    table["gpu_hours"] = table["tasks"] * table["hours_per_task"] * table["gpus"]
    table["on_demand_usd"] = table["core_hours"] * cpu_hour + table["gpu_hours"] * gpu_hour
    table["spot_usd"] = (table["core_hours"] * cpu_hour * args.spot_cpu_share
                         + table["gpu_hours"] * gpu_hour * args.spot_gpu_share)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 60)
    print(f"Tahoe-100M: {PLATES} plates, {CELLS:,} cells x {GENES:,} genes; {LINES * DRUGS * DOSES:,} pairs; "
          f"{SEEDS} seeds; models {', '.join(MODELS)}\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    print(f"\ncore-hours {table['core_hours'].sum():,.0f}; GPU-hours {table['gpu_hours'].sum():,.0f}; "
          f"on demand ${table['on_demand_usd'].sum():,.0f} (${cpu_hour}/CPU-hour, ${gpu_hour}/GPU-hour); "
          f"spot ${table['spot_usd'].sum():,.0f}")
    for nodes in map(int, args.nodes.split(",")):
        hours = wall_hours(table, nodes)
        print(f"wall time on {nodes} nodes: {hours:,.1f} h{' (under a day)' if hours < 24 else ''}")
    biggest = table.loc[table["staged_gb"].idxmax()]
    print(f"\nlargest staging: {biggest['step']} stages {biggest['staged_gb']:,.0f} GB a task: on Batch, give the "
          f"tasks a shared filesystem (FSx for Lustre, or Fusion) instead of copying every prepared plate "
          f"{math.ceil(biggest['staged_gb'] / 1e3)} TB into each task")


if __name__ == "__main__":
    main()
