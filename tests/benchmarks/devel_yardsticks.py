"""The field's yardsticks on real data: PerturBench's development subset (McFaline-Figueroa 2023's
glioblastoma lines split by cell-type transfer, Norman 2019's K562 combinations split by
combination; ../shared/data) through the pipeline, every model beside the baselines. Prints, per
dataset and model, the mean ± sd over seeds of pearson_delta, cosine_logfc and its rank, the
DEG-weighted R² and the calibrated pearson_delta (the report's summary.csv), PerturBench's
published Norman 2019 cosine logFC and rank beside storm's K562 numbers, and the verdict the report
opens each dataset with.

    .venv/bin/python tests/benchmarks/devel_yardsticks.py [--models a,b] [--seeds 0,1,2] [--out DIR]

A stopped run continues (-resume in --out). PerturBench's numbers are its full Norman 2019 study
(thousands of genes and pairs, five tuned seeds); this subset has 500 genes and 2 held-out
combinations a split, with default configs, so only the ordering compares, and the verdict is
underpowered by design.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
DEVEL = REPO.parent / "shared" / "data" / "perturbench_devel.h5ad"
MODELS = ("control_mean,context_mean,additive,perturbed_mean,matching_mean,linear_additive,latent_additive,"
          "decoder_only,flow_matching,cellflow,biolord")
SHOWN = ("pearson_delta", "cosine_logfc", "rank_cosine_logfc", "r2_deg_weighted", "calibrated_pearson_delta")
#: PerturBench's published Norman 2019 table (5 seeds, tuned): cosine logFC / its rank, by storm's model names
PUBLISHED_NORMAN = {"latent_additive": "0.79 / 0.005", "cpa": "0.76 / 0.0072", "decoder_only": "0.73 / 0.017",
                    "linear_additive": "0.60 / 0.035", "biolord": "0.41 / 0.027"}
NAMES = {"mcfaline23_gbm": "McFaline-Figueroa 2023, GBM lines (transfer)",
         "norman19_k562": "Norman 2019, K562 (combo)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=REPO / "benchmark_runs" / "devel_yardsticks")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "samples.csv").write_text(
        "id,path,cell_types,split_strategy\n"
        f"mcfaline23_gbm,{DEVEL},A172;T98G;U87MG,transfer\n"
        f"norman19_k562,{DEVEL},k562,combo\n")
    command = [str(REPO / ".venv" / "bin" / "nextflow"), "run", str(REPO / "main.nf"), "--input", "samples.csv",
               "--batch_key", "none", "--split_seeds", args.seeds, "--models", args.models, "--outdir", "results",
               "-resume", "-ansi-log", "false"]
    done = subprocess.run(command, cwd=args.out, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the pipeline failed:\n{(done.stdout + done.stderr)[-4000:]}")
    report = args.out / "results" / "report"
    summary = pd.read_csv(report / "summary.csv")
    verdicts = pd.read_csv(report / "verdict.csv", keep_default_na=False)
    shown = summary[summary["metric"].isin(SHOWN)]
    print("| dataset | model | " + " | ".join(SHOWN) + " | PerturBench's Norman 2019 cosine logFC / rank |")
    print("| --- | --- | " + " | ".join("---" for _ in SHOWN) + " | --- |")
    for dataset, frame in shown.groupby("dataset"):
        table = frame.pivot_table(index="model", columns="metric", values=["mean", "sd"])
        order = table[("mean", "pearson_delta")].sort_values(ascending=False).index
        for i, model in enumerate(order):
            cells = [f"{table.loc[model, ('mean', m)]:.3f} ± {table.loc[model, ('sd', m)]:.3f}"
                     if ("mean", m) in table and pd.notna(table.loc[model, ("mean", m)]) else "n/a" for m in SHOWN]
            published = PUBLISHED_NORMAN.get(model, "") if dataset == "norman19_k562" else ""
            print(f"| {NAMES.get(dataset, dataset) if i == 0 else ''} | {model} | " + " | ".join(cells)
                  + f" | {published} |")
    print()
    for row in verdicts.itertuples():
        print(f"- verdict on {row.dataset}: {row.statement}; new conditions would be predicted with {row.predict_with}")


if __name__ == "__main__":
    main()
