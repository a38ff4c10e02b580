"""Training throughput of storm's trainable models, and storm's State against `state tx train`
(not a test; prints tables).

Usage: python tests/benchmarks/train_throughput.py [--cells-per-pair 200] [--genes 1000]
           [--state-steps tiny=600,sm=40] [--epochs 3] [--backed-workers 0,1] [--workdir DIR]

Writes a synthetic dataset (4 cell types x 24 perturbations; cells-per-pair sets the scale;
1M cells is --cells-per-pair 10000), splits and prepares it with storm's own commands (cached
under --workdir in a folder named by the sizes), then trains each model in its own `storm train`
process, in a fresh folder per invocation (a second run never resumes the first's checkpoints),
and reports cells per second of the fit (from model.json's fit_seconds):
Lightning models pass over every training pair each epoch; State sees batch_size x cell_set_len
cells per step. latent_additive also trains ``backed`` (cells read from disk by storm's
block-shuffling loader, with each --backed-workers count of DataLoader workers), and the table
gives its cells/s over in-memory training's (target >= 0.8). The State comparison runs `state tx
train` directly with the very overrides storm composes (same data files, config and seed) and
storm's `storm train --model state`, alternately, twice each, and reports the ratio of their wall
times (target >= 0.95).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from child import measure, sized
from storm import io

STORM = [sys.executable, "-m", "storm", "-q"]


def n_pairs(data_dir: Path) -> int:
    """Perturbed training cells: what a Lightning model pairs with a control, once per epoch."""
    from storm.data import load_split_data

    data = load_split_data(*inputs(data_dir))
    return int((data.mask("train") & ~data.is_control).sum())


def inputs(data_dir: Path) -> tuple[Path, Path, Path]:
    return data_dir / "prepared.h5ad", data_dir / "seed0" / "split.parquet", data_dir / "genes.csv"


def build(data_dir: Path, cells_per_pair: int, genes: int) -> None:
    """Synthetic data, split, prepared and its genes, made by the commands the pipeline runs."""
    prepared, split_csv, genes_csv = inputs(data_dir)
    if genes_csv.exists():
        return
    raw = data_dir / "raw.h5ad"
    for step in (["synth", "--out", raw, "--n-genes", genes, "--cells-per-pair", cells_per_pair,
                  "--controls-per-cell-type", 6 * cells_per_pair, "--n-perturbations", 24],
                 ["split", "--input", raw, "--out-dir", data_dir, "--seed", 0, "--dataset-name", "seed0"],
                 ["prepare", "--input", raw, "--out", prepared],
                 ["genes", "--prepared", prepared, "--split", split_csv, "--n-top-genes", genes // 2,
                  "--out", genes_csv]):
        measure([*STORM, *map(str, step)])


def storm_train(data_dir: Path, model: str, out: Path, sets: dict) -> dict:
    prepared, split_csv, genes_csv = inputs(data_dir)
    cmd = [*STORM, "train", "--prepared", str(prepared), "--split", str(split_csv), "--genes", str(genes_csv),
           "--model", model, "--out-dir", str(out), *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]]
    wall, peak = measure(cmd)
    meta = json.loads((out / "model.json").read_text())
    return {"wall": wall, "peak": peak, "fit": meta["fit_seconds"]}


def state_cells_per_step(model_dir: Path) -> int:
    import yaml

    config = yaml.safe_load((model_dir / "state" / "config.yaml").read_text())
    return int(config["training"]["batch_size"]) * int(config["model"]["kwargs"]["cell_set_len"])


def direct_overrides(data_dir: Path, storm_dir: Path, out: Path, sets: dict) -> list[str]:
    """What storm passes to State for this run, pointed at storm's input files and a new output folder."""
    from storm.data import load_split_data
    from storm.models.state import StateTransition

    data = load_split_data(*inputs(data_dir))
    model = StateTransition(data.spec, seed=0, **sets)
    return model.hydra_overrides(data, storm_dir / "checkpoints" / "inputs" / "experiment.toml", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells-per-pair", type=int, default=200)
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--state-steps", default="tiny=600,sm=40", help="State sizes and their steps")
    parser.add_argument("--backed-workers", default="0,1", help="DataLoader workers of backed latent_additive")
    parser.add_argument("--workdir", type=Path, default=Path("bench-train"))
    args = parser.parse_args()
    data_dir = sized(args.workdir.resolve() / "data", cells_per_pair=args.cells_per_pair, genes=args.genes)
    build(data_dir, args.cells_per_pair, args.genes)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=args.workdir.resolve()))
    print(f"data: {io.read_shape(inputs(data_dir)[0])[0]:,} cells, {args.genes // 2} genes; models in {work}")

    rows = []
    pairs = n_pairs(data_dir)
    for model in ("linear_additive", "latent_additive"):
        run = storm_train(data_dir, model, work / model, {"max_epochs": args.epochs})
        rows.append((model, "", run["fit"], pairs * args.epochs / run["fit"], run["peak"]))
    in_memory = rows[-1][3]
    backed = []
    for workers in map(int, args.backed_workers.split(",")):
        sets = {"max_epochs": args.epochs, "backed": "true", "num_workers": workers}
        run = storm_train(data_dir, "latent_additive", work / f"latent_additive_backed{workers}", sets)
        rate = pairs * args.epochs / run["fit"]
        rows.append(("latent_additive", f"backed, {workers} workers", run["fit"], rate, run["peak"]))
        backed.append((workers, rate / in_memory))
    state_runs = {}
    for item in args.state_steps.split(","):
        size, steps = item.split("=")
        sets = {"size": size, "max_steps": int(steps), "val_freq": int(steps), "ckpt_every_n_steps": int(steps)}
        out = work / f"state_{size}"
        run = storm_train(data_dir, "state", out, sets)
        cells = state_cells_per_step(out) * int(steps)
        rows.append(("state", size, run["fit"], cells / run["fit"], run["peak"]))
        state_runs[size] = (out, sets)
    print("\n| model | size | fit s | cells/s | peak GB |\n|---|---|---|---|---|")
    for model, size, fit, rate, peak in rows:
        print(f"| {model} | {size} | {fit:.1f} | {rate:,.0f} | {peak:.2f} |")
    print("\n| latent_additive backed, workers | cells/s over in-memory (target >= 0.8) |\n|---|---|")
    for workers, ratio in backed:
        print(f"| {workers} | {ratio:.2f} |")

    print("\n| State size | storm train s (median of 2) | state tx train s (median of 2) | throughput ratio |"
          "\n|---|---|---|---|")
    for size, (storm_dir, sets) in state_runs.items():
        storm_walls, direct_walls = [], []
        for attempt in range(2):
            out = work / f"direct_{size}_{attempt}"
            overrides = direct_overrides(data_dir, storm_dir, out, sets)
            direct_walls.append(measure([str(Path(sys.executable).parent / "state"), "tx", "train", *overrides])[0])
            again = storm_train(data_dir, "state", work / f"storm_{size}_{attempt}", sets)
            storm_walls.append(again["wall"])
        s, d = statistics.median(storm_walls), statistics.median(direct_walls)
        print(f"| {size} | {s:.1f} | {d:.1f} | {d / s:.3f} |")


if __name__ == "__main__":
    main()
