"""Gather the strategies' results: summary.csv and three figures (macro-F1 per task and
strategy, training curves, time per strategy)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .. import io  # noqa: E402
from ..errors import InputError  # noqa: E402


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def build(result_dirs: list[str | os.PathLike], out_dir: Path) -> pd.DataFrame:
    """One row per (strategy, task): macro-F1, training seconds, cells/s; figures beside it."""
    metrics, logs, summaries = [], [], []
    for folder in map(Path, result_dirs):
        if not (folder / "summary.json").is_file():
            raise InputError(f"{folder} holds no finished loader run (no summary.json)")
        metrics.append(pd.read_csv(folder / "metrics.csv"))
        logs.append(pd.read_csv(folder / "train_log.csv"))
        summaries.append(io.read_json(folder / "summary.json"))
    times = pd.DataFrame(summaries)[["strategy", "train_seconds", "cells_per_second"]]
    table = pd.concat(metrics).merge(times, on="strategy").sort_values(["task", "strategy"])
    out_dir.mkdir(parents=True, exist_ok=True)
    io.write_csv(table, out_dir / "summary.csv")

    grid = table.pivot(index="strategy", columns="task", values="macro_f1")
    fig, axes = plt.subplots(1, grid.shape[1], figsize=(3.2 * grid.shape[1], 3.2), squeeze=False, sharey=True)
    for ax, task in zip(axes[0], grid.columns):
        ax.barh(grid.index, grid[task], color="#4C72B0")
        ax.set_title(task, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_xlabel("macro-F1")
    _save(fig, out_dir / "macro_f1_by_task.png")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for strategy, log in pd.concat(logs).groupby("strategy"):
        ax.plot(log["seconds"], log["train_loss"], marker="o", label=strategy)
    ax.set_xlabel("training seconds")
    ax.set_ylabel("loss (sum over tasks)")
    ax.legend(fontsize=7)
    _save(fig, out_dir / "training_curves.png")

    fig, ax = plt.subplots(figsize=(5, 0.6 + 0.35 * len(times)))
    ordered = times.sort_values("train_seconds")
    ax.barh(ordered["strategy"], ordered["train_seconds"], color="#DD8452")
    ax.set_xlabel("training seconds")
    _save(fig, out_dir / "time_by_strategy.png")
    return table
