"""What every Lightning-trained storm model shares: the trainer, checkpoints, resume, the log."""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from .. import io
from ..errors import Interrupted
from ..gpus import training_rank
from ..logs import adopt
from .base import EPOCH_LOG, STEP_LOG
from .checkpoints import resume_point, training_lock
from .neural import LOGGERS, prediction_loss, training_loss

log = logging.getLogger(__name__)
adopt("lightning", "lightning.pytorch", "lightning.fabric", "torchmetrics")

LAST_CKPT = "last.ckpt"


class ConditionalTrainer(L.LightningModule):
    """Trains a network ``forward(control, pert, cov) -> expression`` with Adam on its
    ``training_loss`` (MSE of the prediction unless the network defines its own, as chemCPA's
    and TranSiGen's do); validation is always the prediction's MSE, so every model stops early on
    the same measure. The network itself is plain torch (``net``), so predicting needs no
    Lightning."""

    def __init__(self, net: torch.nn.Module, lr: float, weight_decay: float):
        super().__init__()
        self.net, self.lr, self.weight_decay = net, lr, weight_decay

    def forward(self, control, pert, cov):
        return self.net(control, pert, cov)

    def training_step(self, batch, batch_idx):
        loss = training_loss(self.net, *batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        control, pert, cov, target = batch
        self.log("val_loss", prediction_loss(self.net, control, pert, cov, target), on_step=False, on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class SetEpoch(L.Callback):
    """Tells a backed training set which epoch comes next (its order is drawn from seed and
    epoch): when a checkpoint is restored and when an epoch ends. Worker processes copy the
    dataset when the next epoch's iterator is made, which Lightning does before its epoch-start
    hooks (and, resuming, before its train-start hook)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_load_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        self.dataset.set_epoch(int(checkpoint["epoch"]) + 1)  # checkpoints are taken as an epoch ends

    def on_train_epoch_end(self, trainer, module) -> None:
        self.dataset.set_epoch(trainer.current_epoch + 1)


class EpochSampler(torch.utils.data.Sampler):
    """Shuffles with a permutation drawn from (seed, epoch) alone, so a run resumed at an
    epoch boundary sees the same batches as one that never stopped. Lightning calls
    :meth:`set_epoch` before every epoch."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint under a temporary name and renames it into place, so a task killed
    while saving (a scheduler's SIGTERM, then SIGKILL) leaves the previous checkpoint intact; a
    checksum beside it tells a later attempt whether it was damaged since."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        with io.atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)
        io.write_checksum(path)

    def remove_checkpoint(self, path) -> None:
        super().remove_checkpoint(path)
        Path(str(path) + io.CHECKSUM_SUFFIX).unlink(missing_ok=True)


class ResumeState(L.Callback):
    """What a checkpoint must carry besides Lightning's own for a resume to go on exactly as the run
    that never stopped: torch's random state (dropout draws the same masks) and whether training
    had decided to stop (Lightning forgets it: a task killed after early stopping's last checkpoint
    would otherwise train on past it)."""

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint["storm_torch_rng"] = torch.get_rng_state()
        checkpoint["storm_should_stop"] = bool(trainer.should_stop)

    def on_load_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        if "storm_torch_rng" in checkpoint:
            torch.set_rng_state(checkpoint["storm_torch_rng"])
        trainer.should_stop = bool(checkpoint.get("storm_should_stop", False))


class BestWeights(L.Callback):
    """Keeps the weights of the epoch with the lowest validation loss and puts them back when
    training ends (early stopping ends ``patience`` epochs past the best). They travel in every
    checkpoint, so a resumed run ends with the same weights as one that never stopped."""

    def __init__(self):
        self.best, self.weights = math.inf, None

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        loss = trainer.callback_metrics.get("val_loss")
        if trainer.sanity_checking or loss is None or not float(loss) < self.best:
            return
        self.best = float(loss)
        self.weights = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # not on_train_end: a resume from the checkpoint that decided to stop skips the training loop
        if self.weights is not None:
            module.load_state_dict(self.weights)
            log.info("restored the weights of the best validation loss (%.4g)", self.best)

    def state_dict(self) -> dict:
        return {"best": self.best, "weights": self.weights}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.weights = state["best"], state["weights"]


@dataclass(frozen=True)
class Budget:
    """How long to train: until the validation loss has not improved for ``patience`` epochs
    (after at least ``min_steps`` optimiser steps, and at most ``max_epochs``), so a small dataset
    trains as long as it still learns and a large one stops when it has. Without validation pairs
    (or with ``patience`` 0) it is ``min_steps`` steps, at least one epoch, at most ``max_epochs``."""

    max_epochs: int
    min_steps: int
    patience: int

    @classmethod
    def from_config(cls, config: dict) -> "Budget":
        return cls(int(config["max_epochs"]), int(config["min_steps"]), int(config["patience"]))

    def stops_early(self, validates: bool) -> bool:
        return validates and self.patience > 0

    def trainer_args(self, validates: bool) -> dict:
        if self.stops_early(validates):
            return {"max_epochs": self.max_epochs, "min_steps": self.min_steps}
        return {"max_epochs": self.max_epochs, "max_steps": max(self.min_steps, 1), "min_epochs": 1}

    def callbacks(self, validates: bool) -> list:
        if not self.stops_early(validates):
            return []
        from lightning.pytorch.callbacks import EarlyStopping

        return [EarlyStopping(monitor="val_loss", mode="min", patience=self.patience), BestWeights()]


class EpochLog(L.Callback):
    """Writes ``train_log.csv`` (epoch, losses) after every epoch and logs one line per epoch.

    Rows of a run that is resumed are kept, so the log covers the whole training.
    """

    def __init__(self, path: Path):
        self.path = path

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:  # over several devices, rank 0 writes
            return
        row = {"epoch": trainer.current_epoch}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        rows = pd.read_csv(self.path) if self.path.exists() else pd.DataFrame()
        if not rows.empty:
            rows = rows[rows["epoch"] < trainer.current_epoch]
        io.write_csv(pd.concat([rows, pd.DataFrame([row])], ignore_index=True), self.path)
        log.info("epoch %d/%d %s", trainer.current_epoch + 1, trainer.max_epochs,
                 " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))


class StepLog(L.Callback):
    """Per optimiser step: the training loss, the gradients' global 2-norm (before clipping) and
    the learning rate, sent to the run's logger (TensorBoard, W&B) and written to
    ``train_steps.csv`` as each epoch ends, where the report reads loss curves and stability.
    Rows of a resumed run are kept, as in :class:`EpochLog`."""

    def __init__(self, path: Path):
        self.path, self.rows, self.grad_norm = path, [], math.nan

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        grads = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
        self.grad_norm = float(torch.stack(grads).norm()) if grads else math.nan

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        row = {"step": trainer.global_step, "epoch": trainer.current_epoch, "loss": float(loss),
               "grad_norm": self.grad_norm, "lr": trainer.optimizers[0].param_groups[0]["lr"]}
        self.rows.append(row)
        if trainer.logger is not None:
            trainer.logger.log_metrics({f"step/{k}": v for k, v in row.items() if k not in ("step", "epoch")},
                                       step=row["step"])

    def on_train_epoch_end(self, trainer, module) -> None:
        if not self.rows or not trainer.is_global_zero:
            return
        earlier = pd.read_csv(self.path) if self.path.exists() else pd.DataFrame()
        if not earlier.empty:
            earlier = earlier[earlier["step"] < self.rows[0]["step"]]
        io.write_csv(pd.concat([earlier, pd.DataFrame(self.rows)], ignore_index=True), self.path)
        self.rows = []


def training_logger(kind: str, ckpt_dir: Path):
    """The Lightning logger ``kind`` names, writing beside the checkpoints (so a resumed attempt
    keeps the earlier events); W&B runs offline, never reaching a server."""
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=ckpt_dir, name=LOGGERS[kind], version="", default_hp_metric=False)
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(save_dir=ckpt_dir, offline=True, project="storm")
    return None


def fit_with_resume(module: L.LightningModule, train_loader, val_loader, out_dir: Path,
                    budget: Budget, accelerator: str, seed: int, ckpt_dir: Path | None = None,
                    precision: str = "32-true", callbacks: list | None = None, logger: str = "none",
                    gradient_clip_val: float | None = None, devices: int = 1) -> None:
    """Fit ``module`` for its ``budget``, checkpointing every epoch into ``ckpt_dir`` (default
    ``out_dir/checkpoints``) and resuming from the newest intact checkpoint a previous attempt left
    (``last.ckpt``, else the two newest epochs'). Resumed at an epoch boundary, training reaches
    the same weights as a run that never stopped. One attempt at a time trains into ``ckpt_dir``.
    The epoch and step logs and the ``logger``'s folder end up in ``out_dir``. With ``devices``
    N > 1 it trains on N devices of this node at once (DDP, gloo on CPU): Lightning starts ranks
    1..N-1 as copies of this command; rank 0 holds the lock and writes every file."""
    ckpt_dir = ckpt_dir or out_dir / "checkpoints"
    validates = val_loader is not None
    if not validates and budget.patience > 0:
        log.warning("no validation pairs to stop early on: training for %d step(s) (min_steps)", budget.min_steps)
    if not budget.stops_early(validates):
        val_loader, validates = None, False  # nothing would stop on it: no validation passes to pay for
    rank = training_rank()
    with training_lock(ckpt_dir) if rank == 0 else contextlib.nullcontext():
        _fit(module, train_loader, val_loader, out_dir, budget.trainer_args(validates), accelerator, seed, ckpt_dir,
             precision, [*budget.callbacks(validates), *(callbacks or [])],
             training_logger(logger, ckpt_dir) if rank == 0 else None, gradient_clip_val, devices)
    if ckpt_dir == out_dir or rank > 0:
        return
    for name in (EPOCH_LOG, STEP_LOG):
        with io.atomic_path(out_dir / name) as tmp:
            shutil.copyfile(ckpt_dir / name, tmp)
    if LOGGERS[logger]:
        shutil.copytree(ckpt_dir / LOGGERS[logger], out_dir / LOGGERS[logger], dirs_exist_ok=True)


def _fit(module, train_loader, val_loader, out_dir: Path, length: dict, accelerator: str, seed: int,
         ckpt_dir: Path, precision: str, callbacks: list, logger, gradient_clip_val: float | None,
         devices: int = 1) -> None:
    L.seed_everything(seed, workers=True, verbose=False)
    resume = resume_point(ckpt_dir)
    # the two newest epochs besides last.ckpt: a damaged last.ckpt still leaves one to resume from
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=2,
                                                     monitor="step", mode="max")
    trainer = L.Trainer(
        **length,
        accelerator=accelerator,
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        precision=precision,
        default_root_dir=out_dir,
        logger=logger or False,
        gradient_clip_val=gradient_clip_val,
        log_every_n_steps=1,  # StepLog writes every step itself; this only quiets a warning on short epochs
        # the logs live beside the checkpoints, so a resumed attempt keeps the earlier epochs' rows
        callbacks=[checkpoint, ResumeState(), EpochLog(ckpt_dir / EPOCH_LOG), StepLog(ckpt_dir / STEP_LOG),
                   *callbacks],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
        deterministic=True,
    )
    if resume:
        log.info("resuming from %s", resume)
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume) if resume else None)
    except SIGTERMException as exc:
        # Lightning turns SIGTERM into a SystemExit with status 0: a stopped run must not look finished
        raise Interrupted(f"training stopped by SIGTERM in epoch {trainer.current_epoch + 1}; "
                          f"the next attempt resumes from {ckpt_dir / LAST_CKPT}", signal.SIGTERM) from exc
