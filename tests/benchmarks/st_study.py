"""The ST fine-tuning study (conf/studies/st_finetune.yaml) on a synthetic time course: an st is
pretrained on one course (seed 1 of `storm synth --time-course`), then the study's variants start
from it on another (seed 0: other cell types, trajectories and stimuli over the same genes), whole
courses held out. Prints the study's metrics per variant (mean ± sd over split seeds) and its
training stability.

    .venv/bin/python tests/benchmarks/st_study.py [--seeds 0,1] [--steps 400] [--out DIR] [--set st.key=value]
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
STORM = [str(REPO / ".venv" / "bin" / "storm"), "-q"]
SPEC = json.dumps({"perturbation_key": "stimulus", "time_key": "time", "batch_key": None})
COURSE = ["--time-course", "--n-genes", "300", "--n-perturbations", "6", "--n-cell-types", "4",
          "--cells-per-pair", "16", "--controls-per-cell-type", "150"]
SIZE = {"cell_set_len": 16, "hidden_dim": 64}
METRICS = ["pearson_delta", "discrimination_score_l1", "direction_cosine", "temporal_coherence", "temporal_order"]


def run(*cmd: str, cwd: Path | None = None) -> None:
    done = subprocess.run(list(cmd), capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{(done.stdout + done.stderr)[-4000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("st-study"))
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="MODEL.KEY=VALUE",
                        help="more --model_set items, e.g. st.lora.adapters_only=false")
    args = parser.parse_args()
    out = args.out.resolve()
    pre = out / "pretrain"
    pre.mkdir(parents=True, exist_ok=True)
    sizes = [f"{key}={value}" for key, value in SIZE.items()]
    if not (pre / "st" / "model.json").is_file():
        run(*STORM, "synth", *COURSE, "--seed", "1", "--out", str(pre / "course.h5ad"))
        run(*STORM, "prepare", "--input", str(pre / "course.h5ad"), "--out", str(pre / "prepared.h5ad"), "--spec", SPEC)
        run(*STORM, "split", "--input", str(pre / "course.h5ad"), "--out-dir", str(pre), "--spec", SPEC)
        run(*STORM, "genes", "--prepared", str(pre / "prepared.h5ad"), "--split", str(pre / "seed0" / "split.parquet"),
            "--n-top-genes", "300", "--out", str(pre / "genes.csv"))
        run(*STORM, "train", "--prepared", str(pre / "prepared.h5ad"), "--split", str(pre / "seed0" / "split.parquet"),
            "--genes", str(pre / "genes.csv"), "--model", "st", "--out-dir", str(pre / "st"),
            *[a for s in sizes for a in ("--set", s)])
    course = out / "course.h5ad"
    if not course.is_file():
        run(*STORM, "synth", *COURSE, "--seed", "0", "--out", str(course))
    study = out / "study"
    study.mkdir(exist_ok=True)
    run(str(REPO / ".venv" / "bin" / "nextflow"), "run", str(REPO / "main.nf"), "-ansi-log", "false", "-resume",
        "--outdir", "results", "-params-file", str(REPO / "conf" / "studies" / "st_finetune.yaml"),
        "--input", str(course), "--perturbation_key", "stimulus", "--time_key", "time", "--batch_key", "",
        "--split_seeds", args.seeds, "--n_top_genes", "300", "--split_args", "--whole-time-courses ",
        "--model_set", " ".join([f"st.init_from={pre / 'st'}", f"st.min_steps={args.steps}",
                                 *(f"st.{s}" for s in sizes), *args.extra]), cwd=study)
    summary = pd.read_csv(study / "results" / "report" / "summary.csv")
    summary["mean ± sd"] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(summary["mean"], summary["sd"].fillna(0))]
    table = summary[summary["metric"].isin(METRICS)].pivot(index="model", columns="metric", values="mean ± sd")
    print(f"study on a synthetic time course (seeds {args.seeds}, {args.steps} steps; mean ± sd over seeds)")
    print(table[[m for m in METRICS if m in table.columns]].to_string())
    stability = pd.read_csv(study / "results" / "report" / "training_stability.csv")
    print(stability.drop(columns="dataset").round(4).to_string(index=False))


if __name__ == "__main__":
    main()
