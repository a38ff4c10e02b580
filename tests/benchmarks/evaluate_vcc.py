"""`storm evaluate` beside the `cell-eval run` CLI on a VCC-sized prediction (not a test).

Usage: python tests/benchmarks/evaluate_vcc.py [--perturbations 200] [--genes 2000] [--cells 100]
       [--controls 5000] [--threads 2]

Writes a real.h5ad (log-normalised negative-binomial counts with sparse perturbation effects) and
a pred.h5ad (real means plus noise) once into --cache (a folder named by the sizes), then times in
one run, as child processes: `cell-eval run` (real DE computed inside), storm's reference step
(real DE + cell-mean baseline from real.h5ad: what `storm reference` does, once per split in the
pipeline, after writing real.h5ad), and `storm evaluate` with that reference (every VCC metric
plus storm's own). Prints wall time, peak RSS and the ratios.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from child import measure, sized

BIN = Path(sys.executable).parent


def make_pair(cache: Path, n_pert: int, n_genes: int, n_cells: int, n_ctrl: int) -> tuple[Path, Path]:
    real_path, pred_path = cache / "real.h5ad", cache / "pred.h5ad"
    if real_path.exists() and pred_path.exists():
        return pred_path, real_path
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1.2, n_genes)
    effects = rng.normal(0, 1.0, (n_pert, n_genes)) * (rng.random((n_pert, n_genes)) < 0.03)
    labels = np.repeat(["non-targeting"] + [f"P{i:03d}" for i in range(n_pert)], [n_ctrl] + [n_cells] * n_pert)
    group = np.repeat(np.arange(-1, n_pert), [n_ctrl] + [n_cells] * n_pert)
    log_mean = base + np.where(group[:, None] >= 0, effects[np.maximum(group, 0)], 0)
    mu = np.exp(log_mean - log_mean.max(1, keepdims=True))
    mu = mu / mu.sum(1, keepdims=True) * 3000
    counts = rng.poisson(rng.gamma(8.0, mu / 8.0)).astype(np.float32)
    X = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    obs = pd.DataFrame({"perturbation": pd.Categorical(labels), "cell_type": "K562"},
                       index=[f"c{i}" for i in range(len(labels))])
    real = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))
    real.uns["storm"] = {"spec": {"control_value": "non-targeting"}}
    real.write_h5ad(real_path)
    pred = real.copy()
    noise = rng.normal(0, 0.3, X.shape).astype(np.float32)
    pred.X = np.clip(np.where(group[:, None] >= 0, X + noise, X), 0, None)
    pred.obs_names = [f"p{i}" for i in range(len(labels))]
    pred.write_h5ad(pred_path)
    return pred_path, real_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--perturbations", type=int, default=200)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--controls", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", default="/tmp/storm-eval-bench")
    args = parser.parse_args()
    cache = sized(Path(args.cache), perturbations=args.perturbations, genes=args.genes, cells=args.cells,
                  controls=args.controls)
    pred, real = make_pair(cache, args.perturbations, args.genes, args.cells, args.controls)
    threads = str(args.threads)
    reference = [sys.executable, "-c", "import sys; from storm.evaluate import build_reference as b; "
                 "b(sys.argv[1], sys.argv[2], int(sys.argv[3]))", str(real), str(cache / "reference"), threads]
    runs = {
        "cell-eval run (CLI; computes DE)": [
            str(BIN / "cell-eval"), "run", "-ap", str(pred), "-ar", str(real), "--control-pert", "non-targeting",
            "--pert-col", "perturbation", "--celltype-col", "cell_type", "-o", str(cache / "cli"),
            "--num-threads", threads],
        # storm splits cell-eval's work in two: the real DE once per split, then each model's metrics
        "storm reference (DE, once per split)": reference,
        "storm evaluate (per model; reuses DE)": [
            str(BIN / "storm"), "-q", "evaluate", "--pred", str(pred), "--real", str(real),
            "--reference", str(cache / "reference"), "--out", str(cache / "metrics.csv"), "--dataset", "bench",
            "--seed", "0", "--model", "noisy", "--threads", threads],
    }
    results = {name: measure(cmd) for name, cmd in runs.items()}
    cli_s = results["cell-eval run (CLI; computes DE)"][0]
    n_cells = args.perturbations * args.cells + args.controls
    print(f"{args.perturbations} perturbations x {args.genes} genes, {n_cells:,} cells per side, "
          f"{args.threads} threads")
    print(f"{'run':<40} {'wall s':>8} {'peak GB':>8} {'vs CLI':>7}")
    for name, (seconds, gb) in results.items():
        print(f"{name:<40} {seconds:>8.1f} {gb:>8.2f} {seconds / cli_s:>7.2f}")


if __name__ == "__main__":
    main()
