"""Train one model on one split and write its model folder."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from . import io, shards
from .data import load_split_data, prepared_spec, stored_keys
from .errors import InputError
from .gpus import training_rank
from .models import get_model_class
from .resources import GB, TRAIN_MEMORY_BUDGET, dense_bytes, trains_in_memory
from .spec import DatasetSpec
from .versions import used_versions

log = logging.getLogger(__name__)

MODEL_JSON = "model.json"


def train(prepared: str | os.PathLike, split_csv: str | os.PathLike, genes_csv: str | os.PathLike, model_name: str,
          out_dir: str | os.PathLike, seed: int, config: dict[str, Any], dataset: str = "",
          checkpoint_dir: str | os.PathLike | None = None, name: str = "",
          memory_budget: int = TRAIN_MEMORY_BUDGET) -> dict:
    """Fit ``model_name`` on the training cells of a split (its genes from ``genes_csv``), its
    cells in memory while they fit ``memory_budget`` bytes (:func:`reads_from_disk`).

    Writes the model's own files, ``train_log.csv`` for trainable models, and last
    ``model.json`` (model, the ``name`` it runs under, config, seed, genes, package versions): a folder without
    ``model.json`` is an unfinished run. Trainable models checkpoint every epoch into
    ``checkpoint_dir`` (default ``out_dir/checkpoints``) and resume from the last checkpoint found
    there, so a retried task continues where a killed one stopped.
    """
    cls = get_model_class(model_name)
    config = cls.resolve_config(config)  # a bad key fails before any data is read
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_JSON).unlink(missing_ok=True)

    keys = cls.data_keys(config, prepared_spec(prepared), stored_keys(prepared))
    backed = reads_from_disk(cls, model_name, config, prepared, genes_csv, memory_budget)
    if backed and "backed" in config:
        config["backed"] = True
    data = load_split_data(prepared, split_csv, genes_csv, obsm_keys=keys["obsm"], layer_keys=keys["layers"],
                           backed=backed)
    n_train = int(data.mask("train").sum())
    if n_train == 0:
        raise InputError(f"{split_csv} has no training cells")
    model = cls(data.spec, seed=seed, **config)
    if checkpoint_dir:
        model.checkpoint_dir = Path(checkpoint_dir) / run_key(prepared, split_csv, genes_csv, model_name, seed,
                                                              model.config)
    log.info("training %s on %d cells x %d genes (seed %d)", model_name, n_train, len(data.genes), seed)
    started = time.perf_counter()
    model.fit(data, out)
    meta = {
        "model": model_name,
        "name": name or model_name,
        "dataset": dataset,
        "config": model.config,
        "seed": seed,
        "n_train_cells": n_train,
        "genes": data.genes.tolist(),
        "fit_seconds": round(time.perf_counter() - started, 3),
        "versions": used_versions(),
        "spec": data.spec.to_dict(),
    }
    if training_rank() == 0:  # over several devices, the other ranks leave the writing to rank 0
        model.save(out)
        io.write_json(meta, out / MODEL_JSON)
    return meta


def reads_from_disk(cls, model_name: str, config: dict, prepared, genes_csv, budget: int) -> bool:
    """Whether training reads its cells from disk: always for a model that needs only sums
    (``reads_cells`` "disk") or is told to (``backed``), and past ``budget`` for one that can;
    past it, a model whose package needs its cells in memory is an error naming the budget."""
    if cls.reads_cells == "disk" or config.get("backed"):
        return True
    n_cells, n_genes = shards.shape(prepared)[0], len(io.read_csv(genes_csv))
    if trains_in_memory(n_cells, n_genes, budget):
        return False
    need = f"{n_cells:,} cells x {n_genes:,} genes take {dense_bytes(n_cells, n_genes) / GB:.1f} GB in memory"
    if cls.reads_cells == "auto":
        log.warning("%s, over the memory budget of %.1f GB: reading cells from disk (backed)", need, budget / GB)
        return True
    raise InputError(f"{model_name} trains on cells in memory and {need}, over the budget of {budget / GB:.1f} GB "
                     f"(--train_memory_budget); subsample the screen (--max_cells_per_pair) or raise the budget")


def run_key(prepared, split_csv, genes_csv, model_name: str, seed: int, config: dict) -> str:
    """What makes two trainings the same: a shared checkpoint folder is keyed by it, so a retry
    resumes its own run and never one trained on other data, split, genes or config. Files count
    by content (the checksums their producers recorded, verified), not by name or size."""
    contents = [io.content_digest(path) for path in (*shards.paths_of(prepared), split_csv, genes_csv)]
    digest = hashlib.sha256(json.dumps([contents, model_name, seed, config], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _model_json(model_dir: Path) -> dict:
    if not (model_dir / MODEL_JSON).is_file():
        raise InputError(f"{model_dir} holds no finished model (no {MODEL_JSON})")
    return io.read_json(model_dir / MODEL_JSON)


def trained_model_name(model_dir: str | os.PathLike) -> str:
    return _model_json(Path(model_dir))["model"]


def load_model(model_dir: str | os.PathLike):
    """Load a trained model and its ``model.json``."""
    model_dir = Path(model_dir)
    meta = _model_json(model_dir)
    cls = get_model_class(meta["model"])
    model = cls.load(model_dir, DatasetSpec.from_dict(meta["spec"]), meta["seed"], meta["config"])
    return model, meta

