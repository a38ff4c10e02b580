"""`storm evaluate` beside the `cell-eval run` CLI on a VCC-sized prediction (not a test).

Usage: python tests/benchmarks/evaluate_vcc.py [--perturbations 50] [--genes 2000] [--cells 100]
       [--controls 5000] [--threads 2]

Writes a real.h5ad (log-normalised negative-binomial counts with sparse perturbation effects) and
a pred.h5ad (real means plus noise), both in cell-eval's column names (target_gene,
non-targeting) without storm's metadata, once into --cache (a folder named by the sizes), then
times in one run, as child processes, on equal work:

- `cell-eval run`: real DE, predicted DE, every metric of its full profile;
- `storm evaluate` from scratch on the same files (`--pert-col` etc. as cell-eval takes them): the
  same real DE, predicted DE and cell-eval metrics (the same numbers: a test checks it), plus
  storm's own metrics, which cell-eval does not compute;
- the pipeline's way: the real DE and cell-mean baseline once per split (`storm reference`'s
  build_reference), then `storm evaluate --reference` per model.

Prints wall time, peak RSS and the ratios to the CLI.
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
    obs = pd.DataFrame({"target_gene": pd.Categorical(labels), "cell_type": "K562"},
                       index=[f"c{i}" for i in range(len(labels))])
    real = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))
    real.write_h5ad(real_path)
    pred = real.copy()
    noise = rng.normal(0, 0.3, X.shape).astype(np.float32)
    pred.X = np.clip(np.where(group[:, None] >= 0, X + noise, X), 0, None)
    pred.obs_names = [f"p{i}" for i in range(len(labels))]
    pred.write_h5ad(pred_path)
    return pred_path, real_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--perturbations", type=int, default=50)
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
    columns = ["--pert-col", "target_gene", "--control-pert", "non-targeting", "--celltype-col", "cell_type"]
    # the reference reads storm's real.h5ad (its spec in uns): a copy with storm's columns
    storm_real = cache / "storm_real.h5ad"
    if not storm_real.exists():
        adata = ad.read_h5ad(real)
        adata.obs = adata.obs.rename(columns={"target_gene": "perturbation"})
        adata.uns["storm"] = {"spec": {"control_value": "non-targeting"}}
        adata.write_h5ad(storm_real)
    reference = [sys.executable, "-c", "import sys; from storm.evaluate import build_reference as b; "
                 "b(sys.argv[1], sys.argv[2], int(sys.argv[3]))", str(storm_real), str(cache / "reference"), threads]
    storm_eval = [str(BIN / "storm"), "-q", "evaluate", "--pred", str(pred), "--out", str(cache / "metrics.csv"),
                  *columns, "--threads", threads]
    runs = {
        "cell-eval run (real DE, pred DE, metrics)": [
            str(BIN / "cell-eval"), "run", "-ap", str(pred), "-ar", str(real), *columns, "-o", str(cache / "cli"),
            "--num-threads", threads],
        "storm evaluate (the same + storm's own)": [*storm_eval, "--real", str(real)],
        "storm reference (real DE, once a split)": reference,
        "storm evaluate --reference (per model)": [*storm_eval, "--real", str(storm_real),
                                                   "--reference", str(cache / "reference")],
    }
    results = {name: measure(cmd) for name, cmd in runs.items()}
    cli_s = results["cell-eval run (real DE, pred DE, metrics)"][0]
    n_cells = args.perturbations * args.cells + args.controls
    print(f"{args.perturbations} perturbations x {args.genes} genes, {n_cells:,} cells per side, "
          f"{args.threads} threads")
    print(f"{'run':<42} {'wall s':>8} {'peak GB':>8} {'vs CLI':>7}")
    for name, (seconds, gb) in results.items():
        print(f"{name:<42} {seconds:>8.1f} {gb:>8.2f} {seconds / cli_s:>7.2f}")
    shared = sum(results[name][0] for name in ("storm reference (real DE, once a split)",
                                               "storm evaluate --reference (per model)"))
    print(f"{'storm reference + evaluate (one model)':<42} {shared:>8.1f} {'':>8} {shared / cli_s:>7.2f}")
    # the reference also scores the cell-mean baseline (vcc_score): cell-eval needs a second run for it
    print(f"{'  same work in cell-eval: 2 runs (+ baseline)':<42} {2 * cli_s:>8.1f} {'':>8} "
          f"{shared / (2 * cli_s):>7.2f} (storm / cell-eval)")


if __name__ == "__main__":
    main()
