"""A multi-task linear classifier (one linear head per obs column) trained through a loader
strategy, and scored on a held-out file with macro-F1 per task."""

from __future__ import annotations

import logging
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.metrics import f1_score
from torch import nn

from .. import io
from ..data.backed import BackedCells
from ..data.loader import CellBatches, make_loader, to_tensors
from ..data.sampling import Sampling, balanced_weights
from ..errors import InputError
from ..models.config import read_config_file, resolve

log = logging.getLogger(__name__)
PRESETS = ("pilot", "full")


def load_config(preset_or_path: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """A preset (pilot, full) or a YAML file of the same keys, with dot-key overrides."""
    if preset_or_path in PRESETS:
        base = yaml.safe_load(files(__package__).joinpath("configs", f"{preset_or_path}.yaml").read_text())
    else:
        base = resolve(load_config("pilot", {}), read_config_file(preset_or_path), owner="loader config")
    return resolve(base, overrides, owner="loader config")


class MultiTaskLinear(nn.Module):
    def __init__(self, n_genes: int, classes: dict[str, int]):
        super().__init__()
        self.heads = nn.ModuleDict({task: nn.Linear(n_genes, n) for task, n in classes.items()})

    def forward(self, X: torch.Tensor) -> dict[str, torch.Tensor]:
        X = torch.log1p(X)  # counts in, as the files hold them
        return {task: head(X) for task, head in self.heads.items()}


def _capped(loader, cap: int | None):
    seen = 0
    for batch in loader:
        if cap is not None and seen >= cap:
            return
        seen += len(batch["index"])
        yield batch


def run(train_paths: list[Path], test_path: Path, tasks: list[str], config: dict[str, Any], out_dir: Path) -> dict:
    """Train one classifier with ``config['strategy']``; write metrics.csv, train_log.csv, summary.json."""
    started = time.perf_counter()
    sampling = Sampling(config["strategy"], int(config["block_size"]), int(config["batch_size"]),
                        int(config["fetch_factor"]), int(config["buffer_size"]), int(config["seed"]))
    if not tasks:
        raise InputError("give at least one task (an obs column to classify)")
    both = BackedCells([*train_paths, test_path], tasks)  # categories shared by train and test
    train = BackedCells(train_paths, tasks, categories=both.categories)
    test = BackedCells([test_path], tasks, categories=both.categories)
    weights = None
    if "weighted" in sampling.strategy:
        balance = list(config["weight_balance"])
        train_balance = BackedCells(train_paths, balance) if set(balance) - set(tasks) else train
        weights = balanced_weights([train_balance.labels[c] for c in balance], float(config["baseline"]))
    torch.manual_seed(int(config["seed"]))
    model = MultiTaskLinear(train.n_vars, {t: len(both.categories[t]) for t in tasks})
    optimiser = torch.optim.Adam(model.parameters(), lr=float(config["lr"]))
    dataset = CellBatches(train, sampling, weights, dense=False)  # CSR crosses from workers
    loader = make_loader(dataset, int(config["num_workers"]))
    rows, cells_seen, train_seconds = [], 0, 0.0
    for epoch in range(int(config["epochs"])):
        dataset.set_epoch(epoch)
        epoch_start = time.perf_counter()
        losses = []
        for batch in _capped(loader, config["max_train_cells"]):
            batch = to_tensors(batch)
            logits = model(batch["X"])
            loss = sum(nn.functional.cross_entropy(logits[t], batch[t]) for t in tasks)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            cells_seen += len(batch["index"])
        train_seconds += time.perf_counter() - epoch_start
        rows.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": train_seconds})
        log.info("%s epoch %d/%d loss %.4f (%.1fs)", sampling.strategy, epoch + 1, config["epochs"],
                 rows[-1]["train_loss"], train_seconds)
    scores = evaluate(model, test, tasks, config["max_test_cells"], int(config["batch_size"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    io.write_csv(pd.DataFrame([{"strategy": sampling.strategy, "task": t, "macro_f1": f} for t, f in scores.items()]),
                 out_dir / "metrics.csv")
    io.write_csv(pd.DataFrame(rows).assign(strategy=sampling.strategy), out_dir / "train_log.csv")
    summary = {"strategy": sampling.strategy, "train_seconds": round(train_seconds, 3), "cells_seen": cells_seen,
               "cells_per_second": round(cells_seen / max(train_seconds, 1e-9), 1),
               "wall_seconds": round(time.perf_counter() - started, 3), "config": config}
    io.write_json(summary, out_dir / "summary.json")
    return summary


@torch.no_grad()
def evaluate(model: MultiTaskLinear, test: BackedCells, tasks: list[str], cap: int | None,
             batch_size: int) -> dict[str, float]:
    """Macro-F1 per task over the test file's cells, read in file order (capped)."""
    n = len(test) if cap is None else min(len(test), int(cap))
    predicted = {t: [] for t in tasks}
    for start in range(0, n, batch_size * 16):
        rows = np.arange(start, min(start + batch_size * 16, n))
        logits = model(torch.from_numpy(test.read(rows).toarray().astype(np.float32)))
        for t in tasks:
            predicted[t].append(logits[t].argmax(1).numpy())
    return {t: float(f1_score(test.labels[t][:n], np.concatenate(predicted[t]), average="macro")) for t in tasks}
