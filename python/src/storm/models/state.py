"""Arc's State Transition model through the real arc-state package.

storm writes what cell-load reads (an h5ad of the split's training and validation cells with
categorical obs, and the experiment TOML), composes State's Hydra config with the right
overrides and runs State's own trainer in this process. It then keeps the checkpoint and the
one-hot maps in the model folder, so nothing depends on the run directory's absolute paths.
Predictions run State's ``predict_step`` over storm's control draws, the forward pass
``state tx infer`` runs, so every model is scored on the same control cells.

The traps handled: wandb is off; a stale ``final.ckpt`` is removed before a resumed run (State
would keep it); gene names come from storm, checked against State's ``var_dims`` at fit;
expression input uses State's HVG mode (``obsm['X_hvg']``; its ``output_space=all`` path squeezes
the cell through a 10-wide bottleneck), an embedding input switches the gene decoder on; a LoRA
model started from a plain checkpoint gets the backbone weights under peft's names (State would
skip them); predictions are clipped to [0, 14] like State's own CLI does.
"""

from __future__ import annotations

import contextlib
import io as io_text
import logging
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import io
from ..data import PerturbationData
from ..errors import InputError, Interrupted, StormError
from ..logs import adopt
from ..rowblocks import WRITE_ROWS, write_h5ad_rows
from ..split.export import toml_string
from .base import EPOCH_LOG, PerturbationModel
from .checkpoints import resume_point, training_lock
from .config import flatten, load_defaults

log = logging.getLogger(__name__)

DATASET = "storm"
RUN_NAME = "state"
KEPT = ["config.yaml", "var_dims.pkl", "pert_onehot_map.pt", "cell_type_onehot_map.torch", "batch_onehot_map.torch"]
CHECKPOINT = "model.ckpt"
MAX_EXPRESSION = 14.0  # State's CLI clips gene-space predictions to [0, 14]
HVG_KEY = "X_hvg"

#: Hydra overrides per size: tiny is a one-layer toy for CPU tests; sm and default are State's own
SIZES: dict[str, list[str]] = {
    "tiny": ["model=state_sm", "model.kwargs.cell_set_len=16", "model.kwargs.hidden_dim=32",
             "model.kwargs.n_encoder_layers=1", "model.kwargs.n_decoder_layers=1",
             "++model.kwargs.decoder_hidden_dims=[64,64]",
             "model.kwargs.transformer_backbone_kwargs.intermediate_size=64",
             "model.kwargs.transformer_backbone_kwargs.num_hidden_layers=1",
             "model.kwargs.transformer_backbone_kwargs.num_attention_heads=2",
             "model.kwargs.transformer_backbone_kwargs.num_key_value_heads=2",
             "model.kwargs.transformer_backbone_kwargs.head_dim=16"],
    "sm": ["model=state_sm"],
    "default": ["model=state"],
}


def _hydra_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    return str(value)


def write_inputs(data: PerturbationData, folder: Path, embed_key: str | None) -> Path:
    """The split's train and val cells as cell-load reads them, and the TOML; returns the TOML.

    Test cells are left out entirely. A perturbation's val cells are cell-load ``fewshot`` val
    lists per cell type; all other cells train. The cells are written a block of rows at a time
    and cell-load reads them back by row, so neither storm nor State holds them all.
    """
    keep = np.flatnonzero(data.split != "test")
    obs = pd.DataFrame(
        {"perturbation": pd.Categorical(data.perturbation[keep]), "cell_type": pd.Categorical(data.cell_type[keep]),
         "batch": pd.Categorical(data.batch[keep])},
        index=pd.Index(data.ids(keep), dtype=object),
    )
    n_genes = len(data.genes)
    h5ad = folder / "cells.h5ad"
    with write_h5ad_rows(h5ad, obs, pd.DataFrame(index=pd.Index(data.genes.astype(str), dtype=object))) as rows:
        # State's HVG mode reads expression (input and gene-space target) from obsm['X_hvg'] only,
        # so X is an empty sparse matrix: it still names the genes, and the cells are written once
        empty, hvg = rows.matrix("X", n_genes), rows.matrix(f"obsm/{HVG_KEY}", n_genes, dense=True)
        embedding = data.obsm[embed_key] if embed_key else None
        emb = rows.matrix(f"obsm/{embed_key}", embedding.shape[1], dense=True) if embed_key else None
        for start in range(0, keep.size, WRITE_ROWS):
            cells = keep[start:start + WRITE_ROWS]
            empty.append(sp.csr_matrix((cells.size, n_genes), dtype=np.float32))
            hvg.append(data.rows(cells))
            if emb is not None:
                emb.append(embedding[cells])

    lines = ["[datasets]", f"{DATASET} = {toml_string(str(h5ad.resolve()))}", "",
             "[training]", f'{DATASET} = "train"', "", "[zeroshot]", "", "[fewshot]"]
    val = data.mask("val") & ~data.is_control
    for ct in sorted(np.unique(data.cell_type[val])):
        perts = sorted(np.unique(data.perturbation[val & (data.cell_type == ct)]))
        lines += [f"[fewshot.{toml_string(f'{DATASET}.{ct}')}]",
                  f"val = [{', '.join(toml_string(p) for p in perts)}]", "test = []"]
    toml = folder / "experiment.toml"
    io.write_text("\n".join(lines) + "\n", toml)
    return toml


def _peft_key_map(model_keys: list[str]) -> dict[str, str]:
    """peft's name of each backbone weight -> its name in a model without adapters."""
    plain = {}
    for key in model_keys:
        if "lora_" in key:
            continue
        bare = key.replace("base_model.model.", "").replace(".base_layer.", ".")
        if bare != key:
            plain[key] = bare
    return plain


@contextlib.contextmanager
def lora_hooks(lora: dict, init_from: str | None, scratch: Path):
    """While State builds its module: freeze all but the adapters, and give a plain init
    checkpoint peft's key names. State loads the init weights after building the module and
    rebuilds the layers it cannot reuse (the perturbation encoder for a new perturbation set, and
    always in HVG mode), so those new layers train too."""
    import torch
    from state.tx import utils as state_utils

    build = state_utils.get_lightning_module

    def build_with_lora(model_type, data_config, model_config, training_config, var_dims):
        module = build(model_type, data_config, model_config, training_config, var_dims)
        keys = list(module.state_dict())
        if init_from:
            checkpoint = torch.load(init_from, map_location="cpu", weights_only=False)
            state = checkpoint["state_dict"]
            for peft_key, bare in _peft_key_map(keys).items():
                if peft_key not in state and bare in state:
                    state[peft_key] = state.pop(bare)
            converted = scratch / "init_with_peft_names.ckpt"
            torch.save(checkpoint, converted)
            model_config["init_from"] = str(converted)  # the dict State reads init_from from next
        if lora["adapters_only"]:
            for name, param in module.named_parameters():
                param.requires_grad = "lora_" in name
        start = module.on_train_start

        def log_trainable():  # after State loaded the init weights and rebuilt what changed shape
            counts: dict[str, int] = {}
            for name, param in module.named_parameters():
                if param.requires_grad:
                    group = "LoRA adapters" if "lora_" in name else name.split(".")[0]
                    counts[group] = counts.get(group, 0) + param.numel()
            log.info("training %s of %d parameters", ", ".join(f"{n} ({g})" for g, n in counts.items()),
                     sum(p.numel() for p in module.parameters()))
            start()

        module.on_train_start = log_trainable
        return module

    state_utils.get_lightning_module = build_with_lora
    try:
        yield
    finally:
        state_utils.get_lightning_module = build


def _train_log(run_dir: Path, out: Path) -> None:
    """State's per-step metrics.csv (latest version) as storm's per-epoch train_log.csv."""
    versions = sorted(run_dir.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not versions:
        return
    metrics = pd.concat([pd.read_csv(p) for p in versions], ignore_index=True)
    cols = [c for c in ("train_loss", "val_loss") if c in metrics]
    table = metrics.groupby("epoch")[cols].mean().reset_index()
    io.write_csv(table, out)


class StateTransition(PerturbationModel):
    """Arc's State Transition model (arc-state): a transformer over sets of control cells,
    trained with State's own trainer; LoRA fine-tuning from a checkpoint with ``init_from``."""

    defaults = load_defaults("state")
    family = "arc-state"
    environment = "state"
    requires = ("state", "cell_load")
    resume = "resumes from State's last checkpoint"
    open_sections = frozenset({"overrides"})
    reads_cells = "disk"  # storm writes cell-load's file a block at a time; cell-load reads it by row

    def hydra_overrides(self, data: PerturbationData, toml: Path, run_root: Path) -> list[str]:
        c = self.config
        if c["size"] not in SIZES:
            raise StormError(f"unknown State size '{c['size']}'; sizes: {', '.join(SIZES)}")
        embed = c["embed_key"]
        spec = data.spec
        overrides = [
            *SIZES[c["size"]],
            f"data.kwargs.toml_config_path={toml.resolve()}",
            # expression in: State's HVG mode; an embedding in: its gene decoder maps to obsm['X_hvg']
            f"data.kwargs.embed_key={embed or HVG_KEY}", "data.kwargs.output_space=gene",
            f"model.kwargs.gene_decoder_bool={_hydra_value(bool(embed))}",
            "data.kwargs.pert_col=perturbation", "data.kwargs.cell_type_key=cell_type", "data.kwargs.batch_col=batch",
            f"data.kwargs.control_pert={_hydra_value(spec.control_value)}",
            f"data.kwargs.num_workers={int(c['num_workers'])}", "data.kwargs.pin_memory=false",
            f"training.max_steps={int(c['max_steps'])}", f"training.batch_size={int(c['batch_size'])}",
            f"training.lr={float(c['lr'])}", f"training.val_freq={int(c['val_freq'])}",
            f"training.ckpt_every_n_steps={int(c['ckpt_every_n_steps'])}", f"training.train_seed={self.seed}",
            "use_wandb=false", f"output_dir={run_root.resolve()}", f"name={RUN_NAME}", "overwrite=false",
        ]
        if c["cell_set_len"]:
            overrides.append(f"model.kwargs.cell_set_len={int(c['cell_set_len'])}")
        lora = c["lora"]
        if lora["enable"]:
            overrides += ["model.kwargs.lora.enable=true", f"model.kwargs.lora.r={int(lora['rank'])}",
                          f"model.kwargs.lora.alpha={int(lora['alpha'])}",
                          f"model.kwargs.lora.dropout={float(lora['dropout'])}",
                          f"model.kwargs.lora.adapt_mlp={_hydra_value(bool(lora['adapt_mlp']))}"]
        if self.init_checkpoint:
            overrides.append(f"model.kwargs.init_from={self.init_checkpoint}")
        # ++ sets a key whether or not State's config has it (some, like decoder_hidden_dims, are optional)
        overrides += [f"++{key}={_hydra_value(value)}" for key, value in flatten(c["overrides"]).items()]
        return overrides

    @property
    def init_checkpoint(self) -> str | None:
        """``init_from`` as a checkpoint file (a storm State model folder is accepted)."""
        init = self.config["init_from"]
        if not init:
            return None
        path = Path(init)
        if path.is_dir():
            path = path / RUN_NAME / CHECKPOINT
        if not path.is_file():
            raise InputError(f"init_from: no checkpoint at {path}")
        return str(path.resolve())

    def fit(self, data: PerturbationData, out_dir: Path) -> None:
        run_root = self.checkpoint_dir or out_dir / "checkpoints"
        with training_lock(run_root):  # one attempt at a time writes the inputs and checkpoints
            self._train(data, run_root)
        run_dir = run_root / RUN_NAME
        with open(run_dir / "var_dims.pkl", "rb") as fh:
            genes = list(pickle.load(fh)["gene_names"])
        if [str(g) for g in genes] != [str(g) for g in data.genes]:
            raise StormError("State's output genes differ from the split's genes")
        self._keep(run_dir, out_dir / RUN_NAME)
        _train_log(run_dir, out_dir / EPOCH_LOG)

    def _train(self, data: PerturbationData, run_root: Path) -> None:
        """State's own trainer on the split's cells, resuming from what ``run_root`` holds."""
        from hydra import compose, initialize_config_module
        from hydra.errors import HydraException
        from lightning.pytorch.utilities.exceptions import SIGTERMException
        from state._cli import run_tx_train

        adopt("lightning", "lightning.pytorch", "lightning.fabric", "torchmetrics", "transformers", "huggingface_hub")
        inputs = run_root / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        toml = write_inputs(data, inputs, self.config["embed_key"])
        overrides = self.hydra_overrides(data, toml, run_root)
        log.info("state tx train %s", " ".join(overrides))
        try:
            with initialize_config_module(config_module="state.configs", version_base=None):
                cfg = compose(config_name="config", overrides=overrides)
        except HydraException as exc:
            raise StormError(f"State rejects the config: {exc}") from exc
        os.environ.setdefault("WANDB_MODE", "disabled")
        self._prepare_resume(run_root / RUN_NAME / "checkpoints")
        lora = self.config["lora"]
        hooks = lora_hooks(lora, self.init_checkpoint, inputs) if lora["enable"] else contextlib.nullcontext()
        try:
            with hooks:
                run_tx_train(cfg)
        except SIGTERMException as exc:
            raise Interrupted(f"State training stopped by SIGTERM; the next attempt resumes from "
                              f"{run_root / RUN_NAME}", 15) from exc

    @staticmethod
    def _prepare_resume(checkpoints: Path) -> None:
        """State resumes from its ``last.ckpt`` only: a damaged one is set aside and the newest
        intact checkpoint (State's ``best.ckpt``) takes its place; a stale ``final.ckpt`` goes (State
        writes it only if none is there, so it would outlive a longer resumed run)."""
        (checkpoints / "final.ckpt").unlink(missing_ok=True)
        if not checkpoints.is_dir():
            return
        point = resume_point(checkpoints)
        if point is not None:
            if point.name != "last.ckpt":
                shutil.copyfile(point, checkpoints / "last.ckpt")
            log.info("resuming from %s", checkpoints / "last.ckpt")

    def _keep(self, run_dir: Path, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for name in KEPT:
            with io.atomic_path(dest / name) as tmp:
                shutil.copyfile(run_dir / name, tmp)
        with io.atomic_path(dest / CHECKPOINT) as tmp:
            shutil.copyfile(run_dir / "checkpoints" / "final.ckpt", tmp)

    def save(self, out_dir: Path) -> None:
        """fit already kept the checkpoint and maps in ``out_dir/state``."""

    def load_state(self, out_dir: Path) -> None:
        import torch
        from state.tx.models.state_transition import StateTransitionPerturbationModel

        folder = out_dir / RUN_NAME
        with contextlib.redirect_stdout(io_text.StringIO()):  # State prints its whole module when built
            self.module = StateTransitionPerturbationModel.load_from_checkpoint(
                folder / CHECKPOINT, map_location="cpu", weights_only=False)
        self.module.eval()
        self.pert_map = {str(k): v.float() for k, v in
                         torch.load(folder / "pert_onehot_map.pt", weights_only=False).items()}
        self.set_len = int(getattr(self.module, "cell_sentence_len", 0) or self.config["cell_set_len"] or 16)
        self.warned: set[str] = set()

    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        import torch

        vector = self.pert_map.get(perturbation)
        if vector is None:
            if perturbation not in self.warned:
                log.warning("State never saw '%s' in training; predicting it as the control", perturbation)
                self.warned.add(perturbation)
            vector = self.pert_map[self.spec.control_value]
        out = []
        with torch.no_grad():
            for start in range(0, len(controls), self.set_len):
                window = torch.from_numpy(np.asarray(controls[start:start + self.set_len], dtype=np.float32))
                batch = {"ctrl_cell_emb": window, "pert_emb": vector.unsqueeze(0).repeat(len(window), 1),
                         "pert_name": [perturbation] * len(window)}
                result = self.module.predict_step(batch, batch_idx=0, padded=False)
                preds = result.get("pert_cell_counts_preds") if self.config["embed_key"] else result["preds"]
                out.append(preds.float().cpu().numpy().reshape(len(window), -1))
        return np.clip(np.concatenate(out), 0.0, MAX_EXPRESSION)

