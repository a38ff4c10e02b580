"""One run's rows for the results store, from what its report reads: metrics.csv files, model
folders, the datasets' qc.json, the run information, software versions and Nextflow's trace."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import uuid
from pathlib import Path

import pandas as pd

from .. import io
from ..report.provenance import Provenance


def split_keys(metrics: pd.DataFrame) -> pd.Series:
    """Per row, what identifies its split across runs: the dataset, the seed and the held-out pairs
    scored (two runs that held out the same pairs of the same dataset compare pair by pair)."""
    pairs = metrics[["dataset", "seed", "cell_type", "perturbation"]].drop_duplicates()
    keys = {}
    for (dataset, seed), frame in pairs.groupby(["dataset", "seed"], sort=False):
        held_out = sorted(frame["cell_type"].astype(str) + "\t" + frame["perturbation"].astype(str))
        digest = hashlib.sha256("\n".join([str(dataset), str(seed), *held_out]).encode()).hexdigest()[:16]
        keys[(dataset, seed)] = digest
    return pd.Series([keys[k] for k in zip(metrics["dataset"], metrics["seed"])], index=metrics.index, dtype=object)


def _models(model_dirs: list[Path]) -> pd.DataFrame:
    rows = []
    for folder in model_dirs:
        about = folder / "model.json"
        if not about.is_file():
            continue
        info = io.read_json(about)
        rows.append({"dataset": info.get("dataset"), "seed": info.get("seed"), "model": info.get("name") or
                     info.get("model"), "base_model": info.get("model"),
                     "config": json.dumps(info.get("config", {}), sort_keys=True),
                     "fit_seconds": info.get("fit_seconds"), "n_train_cells": info.get("n_train_cells")})
    return pd.DataFrame(rows)


def _datasets(provenance: Provenance) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": name, "n_cells": qc.get("n_cells"), "n_genes": qc.get("n_genes"),
                          "n_perturbations": qc.get("n_perturbations"), "n_cell_types": qc.get("n_cell_types"),
                          "spec": json.dumps(qc.get("spec", {}), sort_keys=True)}
                         for name, qc in provenance.qc.items()])


def _versions(provenance: Provenance) -> pd.DataFrame:
    return pd.DataFrame([{"process": process, "package": package, "version": str(version)}
                         for process, packages in provenance.versions.items() if isinstance(packages, dict)
                         for package, version in packages.items()])


def _tasks(tasks: pd.DataFrame | None) -> pd.DataFrame:
    if tasks is None or tasks.empty:
        return pd.DataFrame()
    return tasks[[c for c in ("process", "tag", "status", "realtime_s", "cpus", "peak_rss_gb", "cost_usd")
                  if c in tasks]]


def run_tables(metrics_files: list[Path], model_dirs: list[Path], provenance: Provenance,
               pipeline_info: Path | None = None, tasks: pd.DataFrame | None = None,
               run_name: str | None = None) -> tuple[str, dict[str, pd.DataFrame]]:
    """(run_id, tables) of one run (``tasks``: the trace's, priced). Its id is Nextflow's session
    (a -resume replaces the run's rows rather than adding a second copy), or a fresh one outside
    the pipeline; its name and start are the first launch's (``pipeline_info/run.json``)."""
    first_launch = Path(pipeline_info or "") / "run.json"
    info = {**(io.read_json(first_launch) if pipeline_info and first_launch.is_file() else {}), **provenance.run}
    run_id = info.get("session") or uuid.uuid4().hex
    metrics = pd.concat([pd.read_csv(p) for p in metrics_files], ignore_index=True)
    metrics.insert(3, "split_key", split_keys(metrics))
    params = info.get("params", {})
    runs = pd.DataFrame([{
        "run_name": run_name or info.get("run_name") or run_id[:8],
        "started": info.get("started"),
        "appended": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"),
        "outdir": str(params.get("outdir", "")) or os.getcwd(),
        "storm_version": info.get("storm"), "nextflow_version": info.get("nextflow"), "commit": info.get("commit"),
        "profile": info.get("profile"), "params": json.dumps(params, sort_keys=True, default=str)}])
    return run_id, {"runs": runs, "metrics": metrics, "models": _models(model_dirs), "datasets": _datasets(provenance),
                    "versions": _versions(provenance), "tasks": _tasks(tasks)}
