"""st: storm's own State Transition model, small enough to read in one sitting.

Following Arc's State (Adduri et al. 2025): a model sees *sets* of ``cell_set_len`` control
cells of one cell type with a perturbation, and predicts the set of perturbed cells; the loss
compares the predicted and the real perturbed sets as distributions (energy distance by default,
geomloss), so no perturbed cell has to be paired with a control. The network is in
:mod:`storm.models.st_net`. Variants are config sections: ``lora`` (peft adapters on the
backbone, usually with ``init_from`` a pretrained st), ``mhc`` (manifold-constrained
hyper-connections) and ``velocity`` (each cell's predicted shift pushed toward its RNA velocity).
``zero_shot`` predicts with a pretrained model as it is: the "pretrained, not fine-tuned" control.

How it differs from arc-state's State: storm's Lightning base (checkpoints every epoch, bit-exact
resume, early stopping on the validation loss, TensorBoard), storm's own condition encoders
(multi-hot perturbations, molecules for chemical screens), sets drawn from storm's split and
scored on storm's control draws like every model, a plain bidirectional transformer instead of a
LLaMA/GPT-2 backbone, and no batch token.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from ..data import PerturbationData
from ..errors import InputError, StormError
from ..io import atomic_path
from ..spec import DatasetSpec
from .base import PerturbationModel
from .conditions import conditions_for, conditions_from_dict
from .config import load_defaults
from .neural import check_training_config, precision_for
from .st_net import STNet

log = logging.getLogger(__name__)

LOSSES = ("energy", "sinkhorn", "mmd", "mse")
WEIGHTS = "weights.pt"
PREDICT_SETS = 64  # sets predicted at once


def set_distance(kind: str, blur: float):
    """``(predicted, real) -> loss``: the mean over sets (batch, set, features) of a distance
    between each predicted and real set; ``mse`` pairs cells in order (for debugging)."""
    if kind == "mse":
        return torch.nn.functional.mse_loss
    from geomloss import SamplesLoss

    samples = SamplesLoss("gaussian" if kind == "mmd" else kind, blur=blur)
    return lambda pred, real: samples(pred.float(), real.float()).mean()


def velocity_alignment(shift: torch.Tensor, velocity: torch.Tensor, beta: float) -> torch.Tensor:
    """Mean over cells with a velocity of ``1 - exp(beta (cos - 1))``, cos the cosine between a
    cell's predicted shift and its velocity: 0 when they align; a larger ``beta`` forgives only
    small angles."""
    has = velocity.norm(dim=-1) > 0
    if not bool(has.any()):
        return shift.new_zeros(())
    cos = torch.nn.functional.cosine_similarity(shift[has].float(), velocity[has].float(), dim=-1, eps=1e-8)
    return (1 - torch.exp(beta * (cos - 1))).mean()


class SetBatches(IterableDataset):
    """Batches of sets for one split: per (cell type, perturbation) group, as many sets as its
    perturbed cells fill, each of ``cell_set_len`` of them and as many of the cell type's controls
    (drawn with replacement when the group is smaller). The draw depends on (seed, epoch) alone,
    so a resumed run sees the batches an uninterrupted one would."""

    def __init__(self, model: "ST", data: PerturbationData, split: str, velocity_key: str | None):
        self.model, self.data, self.epoch = model, data, 0
        self.set_len, self.batch = int(model.config["cell_set_len"]), int(model.config["batch_size"])
        self.velocity_key = velocity_key
        targets = data.mask(split) & ~data.is_control
        self.groups = []
        for ct, pert in sorted({(c, p) for c, p in zip(data.cell_type[targets], data.perturbation[targets])}):
            controls = np.flatnonzero(data.mask(split, cell_type=ct) & data.is_control)
            if controls.size:
                self.groups.append((ct, pert, np.flatnonzero(targets & data.mask(cell_type=ct, perturbation=pert)),
                                    controls))
        # each group's index once per set its perturbed cells fill
        self.sets = [g for g, group in enumerate(self.groups) for _ in range(math.ceil(group[2].size / self.set_len))]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.sets) / self.batch)

    def _draw(self, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(pool, size=self.set_len, replace=pool.size < self.set_len)

    def __iter__(self):
        rng = np.random.default_rng([self.model.seed, self.epoch])
        order = rng.permutation(self.sets)
        for start in range(0, order.size, self.batch):
            chosen = [self.groups[g] for g in order[start:start + self.batch]]
            targets = np.concatenate([self._draw(cells, rng) for _, _, cells, _ in chosen])
            controls = np.concatenate([self._draw(pool, rng) for _, _, _, pool in chosen])
            pert, cov = self.model.conditions.encode(np.array([p for _, p, _, _ in chosen], dtype=object),
                                                     np.array([c for c, _, _, _ in chosen], dtype=object))
            shape = (len(chosen), self.set_len, -1)
            batch = {"control": self.model.inputs(self.data, controls), "target": self.model.inputs(self.data, targets)}
            if self.model.decodes_genes:
                batch["genes"] = self.data.rows(targets)
            if self.velocity_key:
                batch["velocity"] = velocity_of(self.data, self.velocity_key, controls)
            yield {"pert": pert, "cov": cov, **{k: torch.from_numpy(v).reshape(shape) for k, v in batch.items()}}


def velocity_of(data: PerturbationData, key: str, cells: np.ndarray) -> np.ndarray:
    return (data.layers[key] if key in data.layers else data.obsm[key])[cells]


def set_trainer(net: torch.nn.Module, config: dict):
    """The Lightning module that trains ``net`` on sets (built here: Lightning is imported only to
    train)."""
    import lightning as L

    distance = set_distance(str(config["loss"]), float(config["blur"]))
    velocity, decoder_weight = config["velocity"], float(config["decoder_loss_weight"])

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = net

        def losses(self, batch: dict, with_velocity: bool) -> dict[str, torch.Tensor]:
            pred = self.net(batch["control"], batch["pert"], batch["cov"])
            parts = {"distribution": distance(pred, batch["target"])}
            if self.net.gene_decoder is not None:
                parts["decoder"] = decoder_weight * distance(self.net.genes(pred), batch["genes"])
            if with_velocity:
                ramp = min(1.0, (self.global_step + 1) / max(int(velocity["warmup_steps"]), 1))
                parts["velocity"] = float(velocity["lambda"]) * ramp * velocity_alignment(
                    pred - batch["control"], batch["velocity"], float(velocity["beta"]))
            return parts

        def training_step(self, batch, batch_idx):
            parts = self.losses(batch, "velocity" in batch)
            for name, value in parts.items():
                self.log(f"train_{name}_loss", value, on_step=False, on_epoch=True)
            loss = sum(parts.values())
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, batch_idx):
            # the distribution losses only: early stopping compares variants on the same measure
            self.log("val_loss", sum(self.losses(batch, False).values()), on_step=False, on_epoch=True)

        def configure_optimizers(self):
            trainable = [p for p in self.parameters() if p.requires_grad]
            # foreach: one fused update over all tensors, not a Python loop per tensor (CPU's default)
            return torch.optim.Adam(trainable, lr=float(config["lr"]), weight_decay=float(config["weight_decay"]),
                                    foreach=True)

    return Module()


class ST(PerturbationModel):
    """storm's State Transition model: sets of control cells -> sets of perturbed cells through a
    transformer, trained on a distribution loss; LoRA, mHC and velocity alignment as options."""

    defaults = load_defaults("st", base=("training",))
    resume = "resumes from its last epoch checkpoint"
    reads_cells = "auto"  # its sets are read by row (data.rows), from memory or disk alike
    decodes_genes: bool = False

    @classmethod
    def resolve_config(cls, overrides: dict) -> dict:
        c = super().resolve_config(overrides)
        check_training_config(c)
        if c["loss"] not in LOSSES:
            raise StormError(f"loss must be one of {', '.join(LOSSES)}, got '{c['loss']}'")
        heads = int(c["transformer_backbone_kwargs"]["num_attention_heads"])
        if int(c["hidden_dim"]) % heads:
            raise StormError(f"hidden_dim ({c['hidden_dim']}) must be a multiple of "
                             f"transformer_backbone_kwargs.num_attention_heads ({heads})")
        if c["mhc"]["enable"] and not 2 <= int(c["mhc"]["streams"]) <= 16:
            raise StormError(f"mhc.streams must be between 2 and 16, got {c['mhc']['streams']}")
        if c["zero_shot"] and not c["init_from"]:
            raise StormError("zero_shot predicts with a pretrained model: set init_from to an st model folder")
        if c["gene_decoder_bool"] not in ("auto", True, False):
            raise StormError(f"gene_decoder_bool must be auto, true or false, got {c['gene_decoder_bool']!r}")
        return c

    @classmethod
    def data_keys(cls, config: dict, spec: DatasetSpec, stored: dict[str, list[str]]) -> dict[str, tuple]:
        keys = super().data_keys(config, spec, stored)
        velocity = config["velocity"]
        if not velocity["enable"]:
            return keys
        key, embed_key = str(velocity["key"]), cls.embedding_key(config, spec)
        if embed_key is None and key in stored["layers"]:
            return {**keys, "layers": (key,)}
        if key in stored["obsm"]:
            return {**keys, "obsm": (*keys["obsm"], key)}
        where = f"obsm['{key}'] in the space of obsm['{embed_key}']" if embed_key else \
            f"layers['{key}'] (gene space) or obsm['{key}']"
        raise InputError(f"velocity.enable needs {where}; the data has layers {', '.join(stored['layers']) or 'none'} "
                         f"and obsm {', '.join(stored['obsm']) or 'none'}. Compute it with `storm velocity` "
                         f"(scVelo, from layers 'spliced' and 'unspliced') or set velocity.key")

    def _build(self, n_genes: int) -> None:
        self.decodes_genes = self.input_key is not None and self.config["gene_decoder_bool"] is not False
        if self.input_key is not None and not self.decodes_genes:
            raise StormError("st reads an embedding (embed_key) and predicts expression through its gene decoder: "
                             "gene_decoder_bool cannot be false")
        self.n_genes = n_genes
        self.net = STNet(self.n_inputs, n_genes, len(self.conditions.perturbations), self.n_covariates, self.config,
                         self.decodes_genes)

    def _add_adapters(self) -> None:
        """LoRA adapters on the backbone (peft); with ``adapters_only`` everything else is frozen
        but the weights ``init_from`` could not fill (e.g. mHC's mixing over a plain checkpoint)."""
        from peft import LoraConfig, inject_adapter_in_model

        lora = self.config["lora"]
        targets = ["q", "k", "v", "o", *(["up", "down"] if lora["adapt_mlp"] else [])]
        inject_adapter_in_model(LoraConfig(r=int(lora["rank"]), lora_alpha=int(lora["alpha"]),
                                           lora_dropout=float(lora["dropout"]), target_modules=targets),
                                self.net.backbone)
        if lora["adapters_only"]:
            fresh = getattr(self, "fresh_weights", set())
            for name, param in self.net.named_parameters():
                param.requires_grad = "lora_" in name or name.replace(".base_layer.", ".") in fresh
        n_train = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        log.info("LoRA rank %d on %s: %d of %d weights train", int(lora["rank"]), ", ".join(targets), n_train,
                 sum(p.numel() for p in self.net.parameters()))

    def _init_from(self) -> None:
        """Weights of a pretrained st whose names and sizes match; the others (e.g. the encoder of
        another dataset's perturbations) start afresh and are named."""
        path = Path(self.config["init_from"])
        path = path / WEIGHTS if path.is_dir() else path
        if not path.is_file():
            raise InputError(f"init_from: no st weights at {path} (an st model folder or its {WEIGHTS})")
        pretrained = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        own = self.net.state_dict()
        kept = {k: v for k, v in pretrained.items() if k in own and own[k].shape == v.shape}
        self.net.load_state_dict(kept, strict=False)
        self.fresh_weights = {k for k in own if k not in kept}
        fresh_modules = sorted({k.rsplit(".", 1)[0] for k in self.fresh_weights})
        log.info("init_from %s: %d of %d tensors loaded%s", path, len(kept), len(own),
                 f"; started afresh: {', '.join(fresh_modules)}" if fresh_modules else "")

    def fit(self, data: PerturbationData, out_dir: Path) -> None:
        from .lightning_utils import Budget, SetEpoch, fit_with_resume

        self.conditions = conditions_for(data, str(self.config["molecule"]["encoder"]))
        self.n_inputs = self.inputs(data, np.arange(1)).shape[1]
        self.n_covariates = int(self.conditions.encode(np.array([""], dtype=object),
                                                       np.array([""], dtype=object))[1].shape[1])
        torch.manual_seed(self.seed)  # initial weights
        self._build(len(data.genes))
        if self.config["init_from"]:
            self._init_from()
        if self.config["lora"]["enable"]:
            if not self.config["init_from"] and self.config["lora"]["adapters_only"]:
                log.warning("LoRA without init_from: only the adapters train, over random backbone weights")
            self._add_adapters()
        if self.config["zero_shot"]:
            log.info("zero_shot: predicting with the pretrained weights, no training")
            return
        velocity_key = str(self.config["velocity"]["key"]) if self.config["velocity"]["enable"] else None
        train = SetBatches(self, data, "train", velocity_key)
        if not train.groups:
            raise InputError("st found no training set: no perturbed training cells with controls of their cell type")
        val = SetBatches(self, data, "val", None)
        fit_with_resume(set_trainer(self.net, self.config), DataLoader(train, batch_size=None),
                        DataLoader(val, batch_size=None) if val.groups else None, out_dir,
                        Budget.from_config(self.config), str(self.config["accelerator"]), self.seed,
                        ckpt_dir=self.checkpoint_dir, precision=precision_for(self.config),
                        callbacks=[SetEpoch(train)], logger=str(self.config["logger"]),
                        gradient_clip_val=float(self.config["gradient_clip_val"]))

    @torch.no_grad()
    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        """The controls in sets of ``cell_set_len`` (the last one filled up with the first
        controls again), each set predicted as a whole."""
        n, set_len = controls.shape[0], int(self.config["cell_set_len"])
        n_sets = math.ceil(n / set_len)
        cells = torch.from_numpy(np.asarray(controls, dtype=np.float32)[np.arange(n_sets * set_len) % n])
        sets = cells.reshape(n_sets, set_len, -1)
        pert, cov = self.conditions.encode(np.array([perturbation], dtype=object), np.array([cell_type], dtype=object))
        self.net.eval()
        out = []
        for start in range(0, n_sets, PREDICT_SETS):
            chunk = sets[start:start + PREDICT_SETS]
            k = chunk.shape[0]
            out.append(self.net.genes(self.net(chunk, pert.expand(k, -1), cov.expand(k, -1))).float())
        return torch.cat(out).reshape(n_sets * set_len, -1)[:n].numpy()

    def save(self, out_dir: Path) -> None:
        state = {"state_dict": self.net.state_dict(), "conditions": self.conditions.to_dict(),
                 "n_inputs": self.n_inputs, "n_covariates": self.n_covariates, "n_genes": self.n_genes}
        with atomic_path(out_dir / WEIGHTS) as tmp:
            torch.save(state, tmp)

    def load_state(self, out_dir: Path) -> None:
        state = torch.load(out_dir / WEIGHTS, map_location="cpu", weights_only=True)
        self.conditions = conditions_from_dict(state["conditions"])
        self.n_inputs, self.n_covariates = state["n_inputs"], state["n_covariates"]
        self._build(state["n_genes"])
        if self.config["lora"]["enable"]:
            self._add_adapters()
        self.net.load_state_dict(state["state_dict"])
