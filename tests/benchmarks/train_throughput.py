"""Training throughput of storm's trainable models, and storm's State against `state tx train`
(not a test; prints tables).

Usage: python tests/benchmarks/train_throughput.py [--cells-per-pair 200] [--genes 1000]
           [--state-steps tiny=600,sm=40] [--epochs 3] [--workdir DIR]

Writes a synthetic dataset (4 cell types x 24 perturbations; cells-per-pair sets the scale;
1M cells is --cells-per-pair 10000), splits and prepares it, then trains each model in its own
`storm train` process and reports cells per second of the fit (from model.json's fit_seconds):
Lightning models pass over every training pair each epoch; State sees batch_size x cell_set_len
cells per step. The State comparison runs `state tx train` directly with the very overrides
storm composes (same data files, config and seed) and storm's `storm train --model state`,
alternately, twice each, and reports the ratio of their wall times (target >= 0.95).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import pandas as pd

from child import measure
from storm import io

STORM = [sys.executable, "-m", "storm", "-q"]


def n_pairs(prepared: Path, split_csv: Path) -> int:
    """Perturbed training cells: what a Lightning model pairs with a control, once per epoch."""
    from storm.data import load_split_data

    data = load_split_data(prepared, split_csv, "seed0")
    return int((data.mask("train") & ~data.is_control).sum())


def build(work: Path, cells_per_pair: int, genes: int) -> tuple[Path, Path]:
    from storm.prepare import prepare
    from storm.spec import DatasetSpec
    from storm.split import SplitParams, make_split
    from storm.split.core import SPLITS
    from storm.split.obs import read_coded_obs
    from storm.synth import SynthConfig, make_synthetic

    prepared, split_csv = work / "prepared.h5ad", work / "split.csv"
    if prepared.exists():
        return prepared, split_csv
    adata = make_synthetic(SynthConfig(n_genes=genes, cells_per_pair=cells_per_pair,
                                       controls_per_cell_type=6 * cells_per_pair))
    io.write_h5ad(adata, work / "raw.h5ad")
    obs = read_coded_obs(work / "raw.h5ad", ["cell_type", "perturbation"])
    result = make_split(obs, SplitParams("perturbation", ["cell_type"], "control", seed=0))
    cells = pd.DataFrame({"cell_id": obs.cell_ids.to_pylist(), "split": SPLITS[result.cell_split]})
    io.write_csv(cells, split_csv)
    io.write_h5ad(prepare(adata, DatasetSpec(), {"seed0": cells}, n_top_genes=genes // 2), prepared)
    return prepared, split_csv


def storm_train(prepared: Path, split_csv: Path, model: str, out: Path, sets: dict) -> dict:
    cmd = [*STORM, "train", "--prepared", str(prepared), "--split", str(split_csv), "--split-name", "seed0",
           "--model", model, "--out-dir", str(out), *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]]
    wall, peak = measure(cmd)
    meta = json.loads((out / "model.json").read_text())
    return {"wall": wall, "peak": peak, "fit": meta["fit_seconds"]}


def state_cells_per_step(model_dir: Path) -> int:
    import yaml

    config = yaml.safe_load((model_dir / "state" / "config.yaml").read_text())
    return int(config["training"]["batch_size"]) * int(config["model"]["kwargs"]["cell_set_len"])


def direct_overrides(prepared: Path, split_csv: Path, storm_dir: Path, out: Path, sets: dict) -> list[str]:
    """What storm passes to State for this run, pointed at storm's input files and a new output folder."""
    from storm.data import load_split_data
    from storm.models.arc_state import StateTransition

    data = load_split_data(prepared, split_csv, "seed0")
    model = StateTransition(data.spec, seed=0, **sets)
    return model.hydra_overrides(data, storm_dir / "checkpoints" / "inputs" / "experiment.toml", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells-per-pair", type=int, default=200)
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--state-steps", default="tiny=600,sm=40", help="State sizes and their steps")
    parser.add_argument("--workdir", type=Path, default=Path("bench-train"))
    args = parser.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    prepared, split_csv = build(work, args.cells_per_pair, args.genes)
    print(f"data: {io.read_shape(prepared)[0]:,} cells, {args.genes // 2} genes")

    rows = []
    pairs = n_pairs(prepared, split_csv)
    for model in ("linear_additive", "latent_additive"):
        run = storm_train(prepared, split_csv, model, work / model, {"max_epochs": args.epochs})
        rows.append((model, "", run["fit"], pairs * args.epochs / run["fit"], run["peak"]))
    state_runs = {}
    for item in args.state_steps.split(","):
        size, steps = item.split("=")
        sets = {"size": size, "max_steps": int(steps), "val_freq": int(steps), "ckpt_every_n_steps": int(steps)}
        out = work / f"state_{size}"
        run = storm_train(prepared, split_csv, "state", out, sets)
        cells = state_cells_per_step(out) * int(steps)
        rows.append(("state", size, run["fit"], cells / run["fit"], run["peak"]))
        state_runs[size] = (out, sets)
    print("\n| model | size | fit s | cells/s | peak GB |\n|---|---|---|---|---|")
    for model, size, fit, rate, peak in rows:
        print(f"| {model} | {size} | {fit:.1f} | {rate:,.0f} | {peak:.2f} |")

    print("\n| State size | storm train s (median of 2) | state tx train s (median of 2) | throughput ratio |"
          "\n|---|---|---|---|")
    for size, (storm_dir, sets) in state_runs.items():
        storm_walls, direct_walls = [], []
        for attempt in range(2):
            out = work / f"direct_{size}_{attempt}"
            overrides = direct_overrides(prepared, split_csv, storm_dir, out, sets)
            direct_walls.append(measure([str(Path(sys.executable).parent / "state"), "tx", "train", *overrides])[0])
            again = storm_train(prepared, split_csv, "state", work / f"storm_{size}_{attempt}", sets)
            storm_walls.append(again["wall"])
        s, d = statistics.median(storm_walls), statistics.median(direct_walls)
        print(f"| {size} | {s:.1f} | {d:.1f} | {d / s:.3f} |")


if __name__ == "__main__":
    main()
