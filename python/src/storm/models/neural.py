"""What storm's neural models share: a torch network mapping (control cell, perturbation, cell
type) to expression, trained with Lightning on perturbed cells paired with controls, checkpointed
and resumable. Lightning is imported only to train (``fit``): predicting needs torch alone, and
Lightning's import costs seconds per task."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from ..data import PerturbationData
from ..data.loader import shard_fetches
from ..data.sampling import Sampling
from ..errors import StormError
from ..gpus import training_rank
from ..io import atomic_path
from .base import PerturbationModel
from .conditions import MoleculeConditions, conditions_for, conditions_from_dict, control_pairs

#: the training loggers a config's ``logger`` may name, and the folder each writes in the model folder
LOGGERS = {"tensorboard": "tensorboard", "wandb": "wandb", "none": None}


def check_training_config(config: dict, several_devices: bool = False) -> None:
    """Fail on a bad choice among training.yaml's keys before any data is read; ``several_devices``:
    the model can train on more than one device at once."""
    if config["logger"] not in LOGGERS:
        raise StormError(f"logger must be one of {', '.join(LOGGERS)}, got '{config['logger']}'")
    devices = int(config["devices"])
    if devices < 1 or (devices > 1 and not several_devices):
        raise StormError(f"devices must be {'at least 1' if several_devices else '1 for this model'}, got {devices}")


def mlp(n_in: int, hidden: int, n_out: int, n_layers: int, dropout: float) -> nn.Sequential:
    """``n_layers`` hidden layers of Linear, LayerNorm, ReLU and dropout, then a linear output."""
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(hidden if n_layers else n_in, n_out))
    return nn.Sequential(*layers)


def autoencoder_sizes(config: dict) -> tuple[int, int, int, float]:
    """(hidden_dim, latent_dim, n_layers, dropout) of an encoder-decoder model's config."""
    return int(config["hidden_dim"]), int(config["latent_dim"]), int(config["n_layers"]), float(config["dropout"])


def prediction_loss(net: nn.Module, control, pert, cov, target) -> torch.Tensor:
    return nn.functional.mse_loss(net(control, pert, cov).float(), target)


def training_loss(net: nn.Module, control, pert, cov, target) -> torch.Tensor:
    """The network's own ``training_loss`` when it has one, else the prediction's MSE."""
    own = getattr(net, "training_loss", None)
    return own(control, pert, cov, target) if own else prediction_loss(net, control, pert, cov, target)


class MoleculeConditioned(nn.Module):
    """chemCPA's drug input (Hetzel et al. 2022) before any of storm's networks: the molecule's
    features embedded by an MLP and scaled by a learned dose response, a sigmoid of an MLP of the
    embedding and the log dose (so it applies to molecules never trained on); the result is the
    inner network's perturbation input."""

    def __init__(self, inner: nn.Module, n_features: int, dim: int, hidden: int):
        super().__init__()
        self.inner = inner
        self.embed = mlp(n_features, hidden, dim, 1, 0.0)
        self.doser = mlp(dim + 1, hidden, 1, 1, 0.0)

    def condition(self, pert: torch.Tensor) -> torch.Tensor:
        """[features | log dose] -> the embedding scaled by its dose response."""
        embedding = self.embed(pert[:, :-1])
        return embedding * torch.sigmoid(self.doser(torch.cat([embedding, pert[:, -1:]], dim=1)))

    def forward(self, control: torch.Tensor, pert: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        return self.inner(control, self.condition(pert), cov)

    def training_loss(self, control, pert, cov, target) -> torch.Tensor:
        return training_loss(self.inner, control, self.condition(pert), cov, target)


def precision_for(config: dict) -> str:
    """``auto``: bf16 mixed precision on a GPU, 32-bit on CPU."""
    if config["precision"] != "auto":
        return str(config["precision"])
    on_gpu = config["accelerator"] in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if on_gpu else "32-true"


class PairBatches(IterableDataset):
    """Batches of (control, perturbation, cell type, target) read from backed data in a loader
    strategy's order over the pairs; DataLoader workers take their own fetches."""

    def __init__(self, model: "NeuralModel", data: PerturbationData, targets: np.ndarray, controls: np.ndarray,
                 sampling: Sampling, rank: int = 0, world_size: int = 1, n_workers: int = 0):
        self.model, self.data, self.targets, self.controls = model, data, targets, controls
        self.rank, self.world_size, self.n_workers = rank, world_size, max(n_workers, 1)
        self.sampling = sampling if world_size == 1 else sampling.for_shards(targets.size, world_size * self.n_workers)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        # a known length lets Lightning tell a finished epoch from a cut one when it resumes; over
        # several devices, this rank's (every rank takes as many)
        if self.world_size == 1:
            return self.sampling.n_batches(self.targets.size)
        return self.sampling.n_batches(self.targets.size, self.world_size * self.n_workers) * self.n_workers

    def __iter__(self):
        # pairs are ordered by target cell, so a sorted fetch reads its targets in file order
        for number, fetch in shard_fetches(self.sampling, self.targets.size, self.epoch, rank=self.rank,
                                           world_size=self.world_size, equal=self.world_size > 1):
            targets, controls = self.targets[fetch], self.controls[fetch]
            target_rows = self.data.rows(targets)
            control_rows = self.model.inputs(self.data, controls) if self.model.uses_controls else None
            pert, cov = self.model.conditions.encode(self.data.perturbation[targets], self.data.cell_type[targets])
            for positions in self.sampling.batches(fetch, self.epoch, number):
                control = (torch.from_numpy(control_rows[positions]) if control_rows is not None
                           else torch.zeros(positions.size, 0))
                yield control, pert[positions], cov[positions], torch.from_numpy(target_rows[positions])


class NeuralModel(PerturbationModel):
    """A model trained on (control, perturbation, cell type) -> perturbed cell pairs.

    Subclasses build the Lightning module; this class pairs cells, trains with checkpoints and
    resume, predicts, saves and loads. A model that ignores expression input sets
    :attr:`uses_controls` to False and gets zero-width control tensors. With ``backed`` the
    cells stay on disk and are read in the ``loader`` strategy's order.
    """

    uses_controls: ClassVar[bool] = True
    resume = "resumes from its last epoch checkpoint"
    reads_cells = "auto"  # past the memory budget, storm train turns ``backed`` on
    #: strategies that read every pair once per epoch (weighted ones would need pair weights)
    loaders: ClassVar[tuple[str, ...]] = ("streaming", "streaming_buffer", "block_shuffling", "random")

    @classmethod
    def resolve_config(cls, overrides: dict) -> dict:
        config = super().resolve_config(overrides)
        check_training_config(config, several_devices=True)
        if config["loader"] not in cls.loaders:
            raise StormError(f"loader must be one of {', '.join(cls.loaders)}, got '{config['loader']}'")
        return config

    @abstractmethod
    def build_module(self, n_inputs: int, n_genes: int, n_perturbations: int, n_cell_types: int) -> nn.Module:
        """The network, ``forward(control, pert, cov) -> expression``, for these sizes and :attr:`config`."""

    def _loader(self, data: PerturbationData, split: str, rng: np.random.Generator, train: bool):
        """A DataLoader over a split's pairs (None without pairs), and a callback it needs."""
        from .lightning_utils import EpochSampler, SetEpoch

        targets, controls = control_pairs(data, split, rng)
        if targets.size == 0:
            return None, None
        c = self.config
        batch = int(c["batch_size"])
        if c["backed"]:
            strategy = c["loader"] if train else "streaming"
            dataset = PairBatches(self, data, targets, controls,
                                  Sampling(strategy, int(c["block_size"]), batch, seed=self.seed),
                                  training_rank(), int(c["devices"]), int(c["num_workers"]))
            loader = DataLoader(dataset, batch_size=None, num_workers=int(c["num_workers"]))
            return loader, SetEpoch(dataset)
        pert, cov = self.conditions.encode(data.perturbation[targets], data.cell_type[targets])
        control = torch.from_numpy(self.inputs(data, controls)) if self.uses_controls else torch.zeros(len(targets), 0)
        dataset = TensorDataset(control, pert, cov, torch.from_numpy(data.rows(targets)))
        sampler = EpochSampler(len(dataset), self.seed) if train else None
        return DataLoader(dataset, batch_size=batch, sampler=sampler), None

    def _build(self) -> None:
        conditions = self.conditions
        if isinstance(conditions, MoleculeConditions):
            molecule = self.config["molecule"]
            dim = int(molecule["embedding_dim"])
            inner = self.build_module(self.n_inputs, self.n_genes, dim, len(conditions.cell_types) + 1)
            self.module = MoleculeConditioned(inner, conditions.n_features, dim, int(molecule["hidden"]))
            return
        self.module = self.build_module(self.n_inputs, self.n_genes, len(conditions.perturbations),
                                        len(conditions.cell_types))

    def fit(self, data: PerturbationData, out_dir: Path) -> None:
        from .lightning_utils import Budget, ConditionalTrainer, fit_with_resume

        self.conditions = conditions_for(data, str(self.config["molecule"]["encoder"]))
        first = np.arange(1)
        self.n_inputs = self.inputs(data, first).shape[1] if self.uses_controls else 0
        self.n_genes = len(data.genes)
        torch.manual_seed(self.seed)  # initial weights
        self._build()
        rng = np.random.default_rng(self.seed)
        train_loader, set_epoch = self._loader(data, "train", rng, train=True)
        val_loader, _ = self._loader(data, "val", rng, train=False)
        fit_with_resume(
            ConditionalTrainer(self.module, float(self.config["lr"]), float(self.config["weight_decay"])),
            train_loader, val_loader,
            out_dir, Budget.from_config(self.config), str(self.config["accelerator"]), self.seed,
            ckpt_dir=self.checkpoint_dir, precision=precision_for(self.config),
            callbacks=[set_epoch] if set_epoch else [], logger=str(self.config["logger"]),
            devices=int(self.config["devices"]),
        )

    @torch.no_grad()
    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        n = controls.shape[0]
        pert, cov = self.conditions.encode(np.full(n, perturbation, dtype=object), np.full(n, cell_type, dtype=object))
        control = torch.from_numpy(np.asarray(controls, dtype=np.float32)) if self.uses_controls else torch.zeros(n, 0)
        self.module.eval()
        device = next(self.module.parameters()).device
        return self.module(control.to(device), pert.to(device), cov.to(device)).float().cpu().numpy()

    def unrepresentable(self, cell_type: str, perturbation: str) -> str | None:
        return self.conditions.unrepresentable(cell_type, perturbation)

    def save(self, out_dir: Path) -> None:
        state = {"state_dict": self.module.state_dict(), "conditions": self.conditions.to_dict(),
                 "n_inputs": self.n_inputs, "n_genes": self.n_genes}
        with atomic_path(out_dir / "weights.pt") as tmp:
            torch.save(state, tmp)

    def load_state(self, out_dir: Path) -> None:
        state = torch.load(out_dir / "weights.pt", map_location="cpu", weights_only=True)
        self.conditions = conditions_from_dict(state["conditions"])
        self.n_inputs, self.n_genes = state["n_inputs"], state["n_genes"]
        self._build()
        self.module.load_state_dict(state["state_dict"])
