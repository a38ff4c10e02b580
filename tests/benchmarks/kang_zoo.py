"""The scGen paper's task on real data: Kang 2018 PBMCs, control vs IFN-β. For each cell type in turn
its stimulated cells are held out and predicted from its controls (half of that cell type's controls
train, the other half are the held-out controls predictions start from); every other cell type
trains (a tenth of it validates). Prints, per held-out cell type and model, R² of per-gene mean
expression over all genes and over the top-100 DE genes (storm's r2_mean_all and r2_mean_top100_deg,
the scGen paper's figures), pearson_delta (cell-eval's minimal profile), cosine logFC, the DEG-
weighted R², the calibrated pearson_delta and its control-floor version, each model's training time,
and the verdict over the five held-out cell types. A held-out cell type has no perturbed training
cells, so perturbed_mean (the calibration's floor) takes the other cell types' mean effect, as
additive and matching_mean do for the one perturbation here: the three baselines predict the same
cells. Folders already done are reused, so a stopped run continues.

    .venv/bin/python tests/benchmarks/kang_zoo.py [--models a,b] [--out DIR] [--set model.key=value ...]

Every model runs through `storm train` and `storm predict`, so each published model trains in
its own environment. The split is storm's `file` strategy: a cell_id,split CSV per cell type.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "kang2018_pbmc_ifnb_counts.h5ad"
SPEC = {"perturbation_key": "condition", "cell_type_key": "cluster_id", "control_value": "control",
        "batch_key": "donor"}
MODELS = ("control_mean,context_mean,additive,perturbed_mean,matching_mean,flow_matching,scgen,cpa,biolord,"
          "cellflow,cellot")
#: what is printed per held-out cell type and model (storm's metric names)
SHOWN = {"r2_all": "r2_mean_all", "r2_top100_deg": "r2_mean_top100_deg", "pearson_delta": "pearson_delta",
         "cosine_logfc": "cosine_logfc", "r2_deg_weighted": "r2_deg_weighted",
         "calibrated_pearson_delta": "calibrated_pearson_delta",
         "calibrated_control_pearson_delta": "calibrated_control_pearson_delta"}
STORM = [str(REPO / ".venv" / "bin" / "storm")]


def storm(*args: str) -> None:
    done = subprocess.run([*STORM, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"storm {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def split_for(obs: pd.DataFrame, cell_type: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    held = (obs["cell_type"] == cell_type).to_numpy()
    control = (obs["perturbation"] == "control").to_numpy()
    split = np.where(rng.random(len(obs)) < 0.1, "val", "train").astype(object)
    split[held & ~control] = "test"
    split[held & control] = np.where(rng.random((held & control).sum()) < 0.5, "train", "test")
    return pd.DataFrame({"cell_id": obs.index, "split": split})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--out", type=Path, default=Path("kang-zoo"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="MODEL.KEY=VALUE")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    spec = json.dumps(SPEC)
    prepared = out / "prepared.h5ad"
    if not prepared.is_file():
        storm("prepare", "--input", str(DATA), "--out", str(prepared), "--spec", spec)
    from storm import io

    obs = io.read_obs(prepared)
    rows = []
    for cell_type in sorted(obs["cell_type"].unique()):
        folder = out / cell_type.replace(" ", "_")
        folder.mkdir(exist_ok=True)
        split = folder / "split.csv"
        io.write_csv(split_for(obs, cell_type), split, checksum=True)
        genes = folder / "genes.csv"
        if not genes.is_file():
            storm("genes", "--prepared", str(prepared), "--split", str(split), "--n-top-genes", "2000",
                  "--out", str(genes))
        files = ["--prepared", str(prepared), "--split", str(split), "--genes", str(genes)]
        if not (folder / "real.h5ad").is_file():
            storm("reference", *files, "--out-dir", str(folder))
        for model in args.models.split(","):
            model_dir = folder / model
            sets = [arg for o in args.overrides if o.startswith(f"{model}.")
                    for arg in ("--set", o.split(".", 1)[1])]
            if not (model_dir / "metrics.csv").is_file():  # a second run picks up where one stopped
                storm("train", *files, "--model", model, "--out-dir", str(model_dir / "model"), *sets)
                storm("predict", *files, "--model-dir", str(model_dir / "model"), "--out",
                      str(model_dir / "pred.h5ad"))
                storm("evaluate", "--pred", str(model_dir / "pred.h5ad"), "--real", str(folder / "real.h5ad"),
                      "--out", str(model_dir / "metrics.csv"), "--dataset", "kang2018", "--seed", "0",
                      "--model", model, "--reference", str(folder / "reference"), "--profile", "minimal")
            fit = json.loads((model_dir / "model" / "model.json").read_text())["fit_seconds"]
            metrics = pd.read_csv(model_dir / "metrics.csv")
            metrics = metrics[metrics["perturbation"] != "control"].groupby("metric")["value"].mean()
            rows.append({"cell_type": cell_type, "model": model,
                         **{column: metrics.get(name, np.nan) for column, name in SHOWN.items()}, "train_s": fit})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    io.write_csv(table, out / "kang_zoo.csv")
    pd.set_option("display.width", 200)
    for column in (*SHOWN, "train_s"):
        print(f"\n{column} (rows: held-out cell type)")
        wide = table.pivot(index="cell_type", columns="model", values=column)[args.models.split(",")]
        wide.loc["mean"] = wide.mean()
        print(wide.round(3 if column != "train_s" else 0).to_string())
    # the verdict over the five held-out cell types (one pair each): what the report would open with
    storm("verdict", *map(str, sorted(out.glob("*/*/metrics.csv"))), "--out", str(out / "verdict.csv"))
    for row in pd.read_csv(out / "verdict.csv", keep_default_na=False).itertuples():
        print(f"\nverdict: {row.statement}")


if __name__ == "__main__":
    main()
