"""st against arc-state's State at the same size, on the same synthetic data and split: quality
(cell-eval's pearson_delta and discrimination score, mean over held-out pairs) and training speed
(cells a second: optimiser steps x sets a step x cells a set, over the TRAIN command's wall time).

    .venv/bin/python tests/benchmarks/st_parity.py [--steps 800] [--out DIR]

Both train for the same number of optimiser steps on the same batches' shape (sets of
`cell_set_len` cells, `batch_size` sets a step), hidden size, depth and heads, with validation and
early stopping off, checkpointing as often (st every epoch, State every as many steps), through
`storm train`. What differs, and counts in the timing: State's TRAIN writes the split's cells for
cell-load and builds its data module; st keeps two epoch checkpoints beside the last and logs
every step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pandas as pd

from child import measure

REPO = Path(__file__).resolve().parents[2]
STORM = [str(REPO / ".venv" / "bin" / "storm"), "-q"]
SIZE = {"cell_set_len": 32, "batch_size": 8, "hidden": 128, "layers": 2, "heads": 4, "intermediate": 256}


def storm(*args: str) -> None:
    done = subprocess.run([*STORM, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"storm {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")


def settings(model: str, steps: int, checkpoint_every: int = 0) -> list[str]:
    s = SIZE
    if model == "st":
        keys = {"min_steps": steps, "patience": 0, "max_epochs": 100000, "cell_set_len": s["cell_set_len"],
                "batch_size": s["batch_size"], "hidden_dim": s["hidden"], "logger": "none", "accelerator": "cpu",
                "transformer_backbone_kwargs.num_hidden_layers": s["layers"],
                "transformer_backbone_kwargs.num_attention_heads": s["heads"],
                "transformer_backbone_kwargs.intermediate_size": s["intermediate"]}
    else:  # State's tiny preset, grown to the same size through its own (Hydra) keys
        kwargs = "overrides.model.kwargs"
        keys = {"max_steps": steps, "val_freq": steps + 1, "ckpt_every_n_steps": checkpoint_every,
                "batch_size": s["batch_size"],
                "cell_set_len": s["cell_set_len"], f"{kwargs}.hidden_dim": s["hidden"],
                f"{kwargs}.n_encoder_layers": 2, f"{kwargs}.n_decoder_layers": 2,  # st's defaults
                f"{kwargs}.transformer_backbone_kwargs.num_hidden_layers": s["layers"],
                f"{kwargs}.transformer_backbone_kwargs.num_attention_heads": s["heads"],
                f"{kwargs}.transformer_backbone_kwargs.num_key_value_heads": s["heads"],
                f"{kwargs}.transformer_backbone_kwargs.head_dim": s["hidden"] // s["heads"],
                f"{kwargs}.transformer_backbone_kwargs.intermediate_size": s["intermediate"]}
    return [arg for key, value in keys.items() for arg in ("--set", f"{key}={value}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--out", type=Path, default=Path("st-parity"))
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    data, prepared, genes = out / "data.h5ad", out / "prepared.h5ad", out / "genes.csv"
    split = out / "seed0" / "split.parquet"
    if not genes.is_file():
        storm("synth", "--out", str(data))  # the demo dataset: 600 genes, 4 cell types, 24 perturbations
        storm("prepare", "--input", str(data), "--out", str(prepared))
        storm("split", "--input", str(data), "--out-dir", str(out))
        storm("genes", "--prepared", str(prepared), "--split", str(split), "--n-top-genes", "500", "--out", str(genes))
        storm("reference", "--prepared", str(prepared), "--split", str(split), "--genes", str(genes),
              "--out-dir", str(out / "reference"))
    files = ["--prepared", str(prepared), "--split", str(split), "--genes", str(genes)]
    rows = []
    checkpoint_every = 0
    for model in ("st", "state"):
        folder = out / model
        seconds, memory = measure([*STORM, "train", *files, "--model", model, "--out-dir", str(folder / "model"),
                                   *settings(model, args.steps, checkpoint_every)])
        if model == "st":  # State checkpoints as often as st does (every epoch of st's)
            epochs = pd.read_csv(folder / "model" / "train_steps.csv")["epoch"].nunique()
            checkpoint_every = -(-args.steps // epochs)
        storm("predict", *files, "--model-dir", str(folder / "model"), "--out", str(folder / "pred.h5ad"))
        storm("evaluate", "--pred", str(folder / "pred.h5ad"), "--real", str(out / "reference" / "real.h5ad"),
              "--reference", str(out / "reference" / "reference"), "--out", str(folder / "metrics.csv"),
              "--dataset", "synthetic", "--seed", "0", "--model", model)
        metrics = pd.read_csv(folder / "metrics.csv").groupby("metric")["value"].mean()
        cells = args.steps * SIZE["batch_size"] * SIZE["cell_set_len"]
        rows.append({"model": model, "train_s": seconds, "cells_per_s": cells / seconds, "peak_rss_gb": memory,
                     "pearson_delta": metrics["pearson_delta"],
                     "discrimination_score_l1": metrics["discrimination_score_l1"],
                     "mse": metrics["mse"]})
    table = pd.DataFrame(rows).set_index("model")
    print(f"{args.steps} steps x {SIZE['batch_size']} sets x {SIZE['cell_set_len']} cells; hidden {SIZE['hidden']}, "
          f"{SIZE['layers']} layers, {SIZE['heads']} heads; 500 genes; CPU, one process each")
    print(table.round(3).to_string())
    ratio = table.loc["st", "cells_per_s"] / table.loc["state", "cells_per_s"]
    print(f"st / state training speed (cells a second): {ratio:.2f}x")
    (out / "parity.json").write_text(json.dumps(table.reset_index().to_dict("records"), indent=1))


if __name__ == "__main__":
    main()
