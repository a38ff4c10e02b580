"""CellFlow (Klein et al. 2025) through its package, cellflow-tools (JAX): conditional flow
matching with optimal-transport pairing, from a cell type's controls to its perturbed cells.

storm hands CellFlow the split's training cells in a PCA space fitted on them (CellFlow's own
setting for expression), each perturbation as its singles (one-hot representations, padded with the
control's zero vector, so a combination of trained singles can be asked for), the cell type as a
sample covariate (one-hot) and as the split covariate (each cell type's controls are the source of
its flows). Departures from the paper's setup, stated: a small network and a fixed number of
iterations suited to a CPU (the package offers no early stopping on a loss storm can read), plain
Adam rather than the package's 20-step gradient accumulation, and predictions decoded back to genes
by the PCA's inverse. The package keeps no mid-training checkpoint, so a retried task retrains.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ..data import PerturbationData
from ..spec import CELL_TYPE, PERTURBATION
from .config import load_defaults
from .zoo import PackageModel, seed_everything

CONTROL = "is_control"
CONDITION = "condition"
PERTURBATION_REPS, CELL_TYPE_REPS = "perturbation_reps", "cell_type_reps"
PCA = "X_pca"


@contextlib.contextmanager
def quiet():
    """The package's progress bars (dask's, tqdm's) kept out of the task's log; its errors still raise."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def one_hot(names: list[str]) -> dict[str, np.ndarray]:
    eye = np.eye(len(names), dtype=np.float32)
    return {name: eye[i] for i, name in enumerate(names)}


class CellFlow(PackageModel):
    """CellFlow (Klein et al. 2025, the cellflow-tools package): flows from a cell type's controls
    to its perturbed cells, learnt by conditional optimal-transport flow matching in PCA space."""

    defaults = load_defaults("cellflow")
    family = "cellflow"
    environment = "cellflow"
    requires = ("cellflow", "jax")
    package_dir = "cellflow"

    def slots(self, perturbation: str) -> list[str]:
        """A perturbation as its singles, padded with the control to the longest combination trained."""
        singles = self.spec.singles(perturbation) if perturbation != self.spec.control_value else []
        return singles + [self.spec.control_value] * (self.width - len(singles))

    def train_package(self, adata: ad.AnnData, data: PerturbationData) -> None:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the environment's jaxlib is the CPU build
        from cellflow.model import CellFlow as Package
        from sklearn.decomposition import PCA as Projection

        c = self.config
        seed_everything(self.seed)
        perturbed = [p for p in self.seen if p != self.spec.control_value]
        singles = sorted({s for p in perturbed for s in self.spec.singles(p)})
        self.width = max(len(self.spec.singles(p)) for p in perturbed)
        n_components = min(int(c["n_components"]), adata.n_vars, adata.n_obs - 1)
        self.projection = Projection(n_components, random_state=self.seed).fit(adata.X)
        perturbation = adata.obs[PERTURBATION].astype(str).to_numpy()
        cell_type = adata.obs[CELL_TYPE].astype(str).to_numpy()
        # every control population needs targets: a cell type without perturbed training cells (a
        # held-out one) is left out of the flows, and still has a representation to be asked about
        flows = np.isin(cell_type, cell_type[perturbation != self.spec.control_value])
        self.singles, self.cell_types = singles, sorted(set(cell_type))
        cells = self._cells(adata.X[flows], perturbation[flows], cell_type[flows])
        cells.uns.update(self._representations())
        self.model = Package(cells, solver="otfm")
        with quiet():
            self._prepare_and_train(c)

    def _prepare_and_train(self, c: dict) -> None:
        import optax

        self.model.prepare_data(
            sample_rep=PCA, control_key=CONTROL, perturbation_covariates={"perturbation": self._columns()},
            perturbation_covariate_reps={"perturbation": PERTURBATION_REPS}, sample_covariates=[CELL_TYPE],
            sample_covariate_reps={CELL_TYPE: CELL_TYPE_REPS}, split_covariates=[CELL_TYPE])
        self.model.prepare_model(
            condition_embedding_dim=int(c["condition_embedding_dim"]), pooling=str(c["pooling"]),
            time_encoder_dims=tuple(c["time_encoder_dims"]), hidden_dims=tuple(c["hidden_dims"]),
            decoder_dims=tuple(c["decoder_dims"]), optimizer=optax.adam(float(c["lr"])), seed=self.seed)
        self.model.train(num_iterations=int(c["max_steps"]), batch_size=int(c["batch_size"]),
                         valid_freq=int(c["max_steps"]) + 1)

    def _representations(self) -> dict[str, dict[str, np.ndarray]]:
        """What CellFlow reads from ``uns``, in training and to predict: each single's one-hot (the
        control's zeros pad a single to a combination's width) and each cell type's."""
        zeros = np.zeros(len(self.singles), np.float32)
        return {PERTURBATION_REPS: {**one_hot(self.singles), self.spec.control_value: zeros},
                CELL_TYPE_REPS: one_hot(self.cell_types)}

    def _columns(self) -> list[str]:
        return [f"perturbation_{i + 1}" for i in range(self.width)]

    def _cells(self, X: np.ndarray, perturbations: np.ndarray, cell_types: np.ndarray) -> ad.AnnData:
        """Cells as CellFlow reads them: their PCA coordinates, whether each is a control, the
        singles of its perturbation one a column, its cell type."""
        obs = pd.DataFrame({CONTROL: perturbations == self.spec.control_value,
                            CELL_TYPE: pd.Categorical(cell_types)})
        slots = np.array([self.slots(p) for p in perturbations], dtype=object).reshape(len(perturbations), -1)
        for i, column in enumerate(self._columns()):
            obs[column] = pd.Categorical(slots[:, i])
        obs.index = obs.index.astype(str)
        cells = ad.AnnData(X=np.zeros((len(obs), 0), np.float32), obs=obs)
        cells.obsm[PCA] = self.projection.transform(np.asarray(X, dtype=np.float32)).astype(np.float32)
        return cells

    def predict(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        if self.unrepresentable(cell_type, perturbation) is None:  # a combination of trained singles too
            return np.asarray(self.predict_package(controls, cell_type, perturbation), dtype=np.float32)
        return super().predict(controls, cell_type, perturbation)

    def predict_package(self, controls: np.ndarray, cell_type: str, perturbation: str) -> np.ndarray:
        n = len(controls)
        source = self._cells(controls, np.full(n, self.spec.control_value, dtype=object), np.full(n, cell_type))
        source.uns.update(self._representations())
        condition = pd.DataFrame([[*self.slots(perturbation), cell_type, False, "asked"]],
                                 columns=[*self._columns(), CELL_TYPE, CONTROL, CONDITION])
        for column in (*self._columns(), CELL_TYPE):
            condition[column] = condition[column].astype("category")
        with quiet():
            moved = self.model.predict(source, condition, condition_id_key=CONDITION)["asked"]
        return self.projection.inverse_transform(np.asarray(moved))

    def unrepresentable(self, cell_type: str, perturbation: str) -> str | None:
        if cell_type not in self.cell_types:
            return f"cell type '{cell_type}' was not in the data CellFlow was trained on"
        singles = self.spec.singles(perturbation)
        unseen = [s for s in singles if s not in self.singles]
        if unseen:
            return f"perturbation '{unseen[0]}' was never trained: CellFlow has no representation for it"
        return f"CellFlow was trained on at most {self.width} perturbations at once" if len(singles) > self.width \
            else None

    def save_package(self, folder: Path) -> None:
        import joblib

        folder.mkdir(parents=True)
        self.model.save(str(folder))
        joblib.dump({"projection": self.projection, "width": self.width, "singles": self.singles,
                     "cell_types": self.cell_types}, folder / "storm.joblib")

    def load_package(self, folder: Path) -> None:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import joblib
        from cellflow.model import CellFlow as Package

        self.model = Package.load(str(folder))
        state = joblib.load(folder / "storm.joblib")
        self.projection, self.width = state["projection"], state["width"]
        self.singles, self.cell_types = state["singles"], state["cell_types"]
