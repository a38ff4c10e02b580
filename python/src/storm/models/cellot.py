"""CellOT (Bunne et al. 2023) following the paper on storm's base: a perturbation moves each
control cell along the optimal transport map from the controls to its cells, the gradient of an
input-convex neural network (ICNN, Amos et al. 2017) trained with Makkuva et al.'s (2020) minimax
dual, as CellOT does.

Per perturbation there are two ICNNs, f and g. g's gradient is the map; g takes ``inner_steps``
steps on ``f(∇g(x)) - <x, ∇g(x)>`` (with a penalty on its negative hidden weights) for each step
of f on ``f(y) - f(∇g(x))`` (f's negative hidden weights clipped to zero), x controls and y the
perturbation's cells. A map is fit per training perturbation, from the training controls to its
training cells, all cell types pooled (the map carries over to a held-out cell type: the paper's
out-of-sample setting), in the principal components of the training cells. The maps of all
perturbations are independent but train as one batched network, so a step costs one pass.

CellOT is not on PyPI, and ott-jax's W2 neural dual (the maintained implementation) ran 1.8 s a
step on CPU here, so storm follows the paper in torch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import torch
from torch import nn

from ..data import PerturbationData
from ..io import atomic_path
from ..spec import PERTURBATION
from .checkpoints import resume_point, training_lock
from .config import load_defaults
from .zoo import SPLIT, TRAIN, PackageModel

log = logging.getLogger(__name__)

CHECKPOINT = "last.ckpt"


class BatchedICNN(nn.Module):
    """``n_maps`` independent ICNNs evaluated together: input (maps, cells, dim) -> (maps, cells).

    z1 = act(A0 x)², z(k+1) = act(Wk zk + Ak x), out = WL zL + AL x, with every W non-negative
    (clipped or penalised by the trainer) and act convex and non-decreasing: convex in x. The
    square and the initialisation (normal, std 0.1) are CellOT's."""

    def __init__(self, n_maps: int, dim: int, hidden: list[int], leak: float):
        super().__init__()
        sizes = [*hidden, 1]
        self.leak = leak
        self.A = nn.ParameterList([nn.Parameter(torch.randn(n_maps, dim, s) * 0.1) for s in sizes])
        self.b = nn.ParameterList([nn.Parameter(torch.zeros(n_maps, 1, s)) for s in sizes])
        self.W = nn.ParameterList([nn.Parameter(torch.randn(n_maps, a, b) * 0.1) for a, b in zip(sizes, sizes[1:])])

    def forward(self, x: torch.Tensor, maps: slice = slice(None)) -> torch.Tensor:
        """The networks ``maps`` (all by default) at their cells ``x`` (len(maps), cells, dim)."""
        z = nn.functional.leaky_relu(torch.baddbmm(self.b[0][maps], x, self.A[0][maps]), self.leak).square()
        for k, W in enumerate(self.W, start=1):
            out = torch.baddbmm(self.b[k][maps], x, self.A[k][maps]) + torch.bmm(z, W[maps])
            z = out if k == len(self.W) else nn.functional.leaky_relu(out, self.leak)
        return z.squeeze(-1)

    def transport(self, x: torch.Tensor, create_graph: bool = False, maps: slice = slice(None)) -> torch.Tensor:
        """The map: the gradient of each network at its cells."""
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        return torch.autograd.grad(self(x, maps).sum(), x, create_graph=create_graph)[0]

    def clip(self) -> None:
        with torch.no_grad():
            for W in self.W:
                W.clamp_(min=0)

    def negative_weights(self) -> torch.Tensor:
        return sum(torch.relu(-W).pow(2).sum() for W in self.W)


class CellOT(PackageModel):
    """CellOT (Bunne et al. 2023) following the paper: the gradient of an input-convex network,
    trained as an optimal transport map from control to perturbed cells, per perturbation."""

    defaults = load_defaults("cellot")
    family = "storm (CellOT paper)"
    package_dir = "cellot"
    resume = "resumes from its last checkpoint (every checkpoint_every steps)"

    def train_package(self, adata: ad.AnnData, data: PerturbationData) -> None:
        c = self.config
        train = adata[adata.obs[SPLIT] == TRAIN]
        X = np.asarray(train.X, dtype=np.float32)
        perturbations = train.obs[PERTURBATION].astype(str).to_numpy()
        self._fit_pca(X)
        Z = torch.from_numpy(self.project(X))
        self.maps = [p for p in self.seen if p != self.spec.control_value and (perturbations == p).any()]
        controls = torch.from_numpy(np.flatnonzero(perturbations == self.spec.control_value))
        targets = [torch.from_numpy(np.flatnonzero(perturbations == p)) for p in self.maps]
        torch.manual_seed(self.seed)
        self._build()
        device = _device(str(c["accelerator"]))
        self.f.to(device), self.g.to(device)
        Z = Z.to(device)
        betas = tuple(float(b) for b in c["betas"])
        opt_f = torch.optim.Adam(self.f.parameters(), lr=float(c["lr"]), betas=betas)
        opt_g = torch.optim.Adam(self.g.parameters(), lr=float(c["lr"]), betas=betas)
        folder = self.checkpoints
        with training_lock(folder):
            start = self._resume(folder, opt_f, opt_g)
            generator = torch.Generator().manual_seed(self.seed + start)
            batch, n_maps = int(c["batch_size"]), len(self.maps)

            def draw(pool: torch.Tensor) -> torch.Tensor:
                return pool[torch.randint(len(pool), (batch,), generator=generator)]

            for step in range(start, int(c["steps"])):
                x = torch.stack([Z[draw(controls)] for _ in range(n_maps)])
                y = torch.stack([Z[draw(t)] for t in targets])
                for _ in range(int(c["inner_steps"])):
                    moved = self.g.transport(x, create_graph=True)
                    loss_g = (self.f(moved) - (x * moved).sum(-1)).mean(-1).sum()
                    opt_g.zero_grad()
                    (loss_g + float(c["penalty"]) * self.g.negative_weights()).backward()
                    opt_g.step()
                moved = self.g.transport(x).detach()
                loss_f = (self.f(y) - self.f(moved)).mean(-1).sum()
                opt_f.zero_grad()
                loss_f.backward()
                opt_f.step()
                self.f.clip()
                done = step + 1
                if done % int(c["checkpoint_every"]) == 0 or done == int(c["steps"]):
                    self._checkpoint(folder, opt_f, opt_g, done)
                    log.info("step %d/%d: loss f %.4f, loss g %.4f (summed over %d maps)", done, int(c["steps"]),
                             loss_f.item(), loss_g.item(), n_maps)
        self.f.cpu(), self.g.cpu()

    def _fit_pca(self, X: np.ndarray) -> None:
        from sklearn.decomposition import PCA

        n = min(int(self.config["n_components"]), X.shape[1], X.shape[0] - 1)
        pca = PCA(n_components=n, random_state=self.seed).fit(X)
        self.mean, self.components = pca.mean_.astype(np.float32), pca.components_.astype(np.float32)
        # one scale for all components, so the networks see values of order one
        self.scale = np.float32(np.sqrt(pca.explained_variance_.mean()))

    def _build(self) -> None:
        hidden, leak = [int(h) for h in self.config["hidden"]], float(self.config["leak"])
        dim = self.components.shape[0]
        self.f = BatchedICNN(len(self.maps), dim, hidden, leak)
        self.g = BatchedICNN(len(self.maps), dim, hidden, leak)

    def _checkpoint(self, folder: Path, opt_f, opt_g, step: int) -> None:
        state = {"f": self.f.state_dict(), "g": self.g.state_dict(), "opt_f": opt_f.state_dict(),
                 "opt_g": opt_g.state_dict(), "step": step, "maps": self.maps}
        with atomic_path(folder / CHECKPOINT) as tmp:
            torch.save(state, tmp)

    def _resume(self, folder: Path, opt_f, opt_g) -> int:
        point = resume_point(folder, CHECKPOINT)
        if point is None:
            return 0
        state = torch.load(point, map_location="cpu", weights_only=False)
        if state["maps"] != self.maps:
            log.warning("checkpoint %s holds maps of other perturbations: training starts over", point)
            return 0
        self.f.load_state_dict(state["f"]), self.g.load_state_dict(state["g"])
        opt_f.load_state_dict(state["opt_f"]), opt_g.load_state_dict(state["opt_g"])
        log.info("resuming from %s at step %d", point, state["step"])
        return int(state["step"])

    def project(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float32) - self.mean) @ self.components.T / self.scale

    def predict_package(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        if perturbation not in self.maps:  # the control value: no move
            return controls
        Z = self.project(controls)
        k = self.maps.index(perturbation)  # only its network runs, not every perturbation's
        moved = self.g.transport(torch.from_numpy(Z)[None], maps=slice(k, k + 1))[0].numpy()
        # what lies outside the components stays as in the control cell
        return controls + (moved - Z) * self.scale @ self.components

    def save_package(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        state = {"mean": self.mean, "components": self.components, "scale": self.scale, "maps": self.maps,
                 "g": self.g.state_dict()}
        torch.save(state, folder / "maps.pt")

    def load_package(self, folder: Path) -> None:
        state = torch.load(folder / "maps.pt", map_location="cpu", weights_only=False)
        self.mean, self.components, self.scale, self.maps = (state[k] for k in ("mean", "components", "scale", "maps"))
        self._build()
        self.g.load_state_dict(state["g"])


def _device(accelerator: str) -> torch.device:
    wants_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if wants_gpu else "cpu")
