"""Metrics that resist systematic variation, per pair.

Systema (Viñas Torné et al. 2025): perturbed cells share a shift from the controls whatever the
perturbation, and delta metrics taken from the controls reward predicting that shift alone. Its
metrics measure effects from the *perturbed centroid* instead: the cell type's held-out controls
shifted by the mean effect of its training perturbations, exactly what the ``perturbed_mean``
baseline predicts (so that baseline scores no better than chance on them). "Diversity by design"
(2025): an unweighted error is dominated by the many genes that do not change; weighting each gene
by the size of its real change (the absolute real change, normalised to sum 1 per pair) tells
models apart where mean baselines win unweighted.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..models.base import load_table, save_table
from .perturbench import cosine_matrix, pearson_rows

#: in the reference folder: per cell type, the mean effect of its training perturbations
PERTURBED_EFFECT_FILE = "perturbed_effect.npz"


def write_perturbed_effects(prepared, split_csv, genes_csv, out_dir: str | os.PathLike, eval_split: str = "test"
                            ) -> None:
    """For each cell type with held-out pairs in ``eval_split``: the ``perturbed_mean`` baseline's
    effect (with its fallback for a cell type without perturbed training cells), from the split's
    training cells, read from disk a block at a time."""
    from ..data import load_split_data
    from ..models.baselines import PerturbedMean

    data = load_split_data(prepared, split_csv, genes_csv, backed=True)
    cell_types = sorted(set(data.cell_type[data.mask(eval_split) & ~data.is_control]))
    baseline = PerturbedMean(data.spec)
    baseline.learn(data)
    effects = [baseline.perturbed_mean(ct, len(data.genes))[0] for ct in cell_types]
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    save_table(Path(out_dir) / PERTURBED_EFFECT_FILE, cell_types,
               np.stack(effects) if effects else np.zeros((0, len(data.genes))))


def read_perturbed_effects(reference: str | os.PathLike | None) -> dict[str, np.ndarray]:
    """Each cell type's perturbed effect from a reference folder, read once ({} without one)."""
    path = Path(reference) / PERTURBED_EFFECT_FILE if reference else None
    return load_table(path) if path is not None and path.is_file() else {}


def perturbed_centroid(effects: dict[str, np.ndarray], cell_type: str, control_mean: np.ndarray
                       ) -> np.ndarray | None:
    """The cell type's perturbed centroid (its held-out controls' mean + the training perturbations'
    mean effect, from :func:`read_perturbed_effects`), or None where the reference has none."""
    effect = effects.get(cell_type)
    return None if effect is None else control_mean + effect


def centroid_metrics(pred_mean: np.ndarray, real_mean: np.ndarray, centroid: np.ndarray | None) -> dict:
    """Systema's centroid-referenced metrics for P perturbations (rows): the Pearson correlation of
    the predicted and real shifts from the perturbed centroid, and whether each prediction's shift
    is nearer (by cosine) its own real shift than any other held-out perturbation's."""
    n = pred_mean.shape[0]
    if centroid is None:
        return {"pearson_delta_pert": np.full(n, np.nan), "centroid_accuracy": np.full(n, np.nan)}
    pred_shift, real_shift = pred_mean - centroid, real_mean - centroid
    similarity = cosine_matrix(pred_shift, real_shift)
    accuracy = np.full(n, np.nan)
    if n > 1:
        for i, row in enumerate(similarity):
            if np.isfinite(row).all():
                accuracy[i] = float(row[i] > np.delete(row, i).max())
    return {"pearson_delta_pert": pearson_rows(pred_shift, real_shift, axis=1), "centroid_accuracy": accuracy}


def deg_weights(real_delta: np.ndarray) -> np.ndarray:
    """Per pair (row), each gene's weight: its absolute real change over the pair's total."""
    size = np.abs(real_delta)
    total = size.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, size / total, np.nan)


def deg_weighted_metrics(pred_mean: np.ndarray, real_mean: np.ndarray, ctrl_mean: np.ndarray) -> dict:
    """The DEG-weighted mean squared error of the pseudobulk means and R² of the real change by the
    predicted one, each gene weighted by :func:`deg_weights`."""
    real_delta, pred_delta = real_mean - ctrl_mean, pred_mean - ctrl_mean
    w = deg_weights(real_delta)
    residual = (w * (real_delta - pred_delta) ** 2).sum(axis=1)
    centred = real_delta - (w * real_delta).sum(axis=1, keepdims=True)
    spread = (w * centred ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(spread > 0, 1 - residual / spread, np.nan)
    return {"mse_deg_weighted": (w * (pred_mean - real_mean) ** 2).sum(axis=1), "r2_deg_weighted": r2}
