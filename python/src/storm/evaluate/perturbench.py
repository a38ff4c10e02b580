"""PerturBench's metrics and the distributional and direction metrics storm adds, per pair.

Means and deltas are per (cell type, perturbation); a delta is the change from the cell type's
real control mean (a log fold change, as data is log-normalised). Every fit metric has a rank
partner: where the prediction for a perturbation ranks among all real perturbations of its cell
type (0 = it is closest to its own, 1 = farthest), computed for all pairs at once from a P x P
distance matrix rather than PerturBench's O(P^2) Python loop.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from ..metrics import DEG_K, MAX_CELLS, N_PCS, SCGEN_TOP_K, TOP_K
from .pairs import CellTypeGroup


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, a @ b.T / norm, np.nan)


def rank_from_distances(dist: np.ndarray) -> np.ndarray:
    """For each row i: the share of other columns j closer to row i than column i is (ties half)."""
    own = np.diag(dist)[:, None]
    closer = (dist < own).sum(axis=1) + 0.5 * ((dist == own).sum(axis=1) - 1)
    n = dist.shape[1]
    return closer / (n - 1) if n > 1 else np.full(dist.shape[0], np.nan)


def r2(real: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Row-wise coefficient of determination of ``real`` by ``pred``."""
    ss_res = ((real - pred) ** 2).sum(axis=1)
    ss_tot = ((real - real.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.nan)


def pearson_rows(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Pearson correlation of ``a`` and ``b`` along ``axis`` (NaN where either is constant)."""
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=axis) / denom, np.nan)


def top_k_genes(delta: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k genes with the largest absolute change, per row."""
    k = min(k, delta.shape[1])
    return np.argpartition(-np.abs(delta), k - 1, axis=1)[:, :k]


def top_k_changes(real_delta: np.ndarray, pred_delta: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The real and predicted changes on each row's real top-k changed genes (rows x k)."""
    top = top_k_genes(real_delta, k)
    return np.take_along_axis(real_delta, top, 1), np.take_along_axis(pred_delta, top, 1)


def fit_metrics(pred_mean: np.ndarray, real_mean: np.ndarray, ctrl_mean: np.ndarray,
                deg_k: tuple[int, ...] = DEG_K, k: int = TOP_K) -> dict:
    """Pseudobulk fit metrics and their rank partners, for P perturbations (rows) at once; the
    top-k DEG R² at each of ``deg_k``, the recall at ``k``."""
    pred_delta, real_delta = pred_mean - ctrl_mean, real_mean - ctrl_mean
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b keeps the P x P matrix free of a P x P x genes temporary
    sq = (pred_mean ** 2).sum(1)[:, None] + (real_mean ** 2).sum(1)[None, :] - 2 * pred_mean @ real_mean.T
    rmse_matrix = np.sqrt(np.maximum(sq, 0) / pred_mean.shape[1])
    np.fill_diagonal(rmse_matrix, np.sqrt(((pred_mean - real_mean) ** 2).mean(axis=1)))
    cosine = cosine_matrix(pred_delta, real_delta)
    real_top, pred_top = top_k_genes(real_delta, k), top_k_genes(pred_delta, k)
    recall = np.array([np.isin(r, p).mean() for r, p in zip(real_top, pred_top)])
    return {
        "rmse": np.diag(rmse_matrix),
        "cosine_logfc": np.diag(cosine),
        "rank_rmse": rank_from_distances(rmse_matrix),
        "rank_cosine_logfc": rank_from_distances(-np.nan_to_num(cosine, nan=-2.0)),
        f"top{k}_deg_recall": recall,
        "r2_delta": r2(real_delta, pred_delta),
        **{f"top{n}_deg_r2": r2(*top_k_changes(real_delta, pred_delta, n)) for n in deg_k},
        **scgen_r2(pred_mean, real_mean, real_delta),
    }


def scgen_r2(pred_mean: np.ndarray, real_mean: np.ndarray, real_delta: np.ndarray, k: int = SCGEN_TOP_K) -> dict:
    """scGen's scores: R² of mean expression over all genes and over the real top-``k`` changed
    genes. Mean expression is mostly the cell type's baseline, so even ``control_mean`` scores
    high on all genes; the top-``k`` score is the one that sees the response."""
    top = top_k_genes(real_delta, k)
    rows = np.arange(len(top))[:, None]
    # the R² of a least-squares line, as scGen's figures report it (scipy's linregress rvalue ** 2)
    return {"r2_mean_all": pearson_rows(real_mean, pred_mean, axis=1) ** 2,
            f"r2_mean_top{k}_deg": pearson_rows(real_mean[rows, top], pred_mean[rows, top], axis=1) ** 2}


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """2 E|X-Y| - E|X-X'| - E|Y-Y'| (Euclidean)."""
    def mean_dist(a, b):
        return np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0)).mean()
    return float(2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y))


def mmd_rbf(x: np.ndarray, y: np.ndarray) -> float:
    """Squared maximum mean discrepancy with an RBF kernel, bandwidth by the median heuristic."""
    z = np.vstack([x, y])
    sq = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    positive = sq[sq > 0]
    gamma = 1.0 / np.median(positive) if positive.size else 1.0
    kernel = np.exp(-gamma * sq)
    n = len(x)
    return float(kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean())


def distribution_metrics(group: CellTypeGroup, seed: int = 0) -> dict:
    """Per pair, in the PCA space of the cell type's real cells: energy distance, MMD, the mean
    distance of each predicted cell to its nearest real cell, and the mean cosine between each
    predicted cell's change from the control mean and the real mean change."""
    rng = np.random.default_rng(seed)
    real_all = np.vstack([group.controls, *group.real.values()])
    n_pcs = max(1, min(N_PCS, real_all.shape[0] - 1, real_all.shape[1]))
    pca = PCA(n_components=n_pcs, random_state=seed).fit(real_all)
    ctrl_mean = group.control_mean
    out = {name: [] for name in ("energy_distance_pca", "mmd_pca", "cellwise_distance", "direction_cosine")}
    for pert in group.perturbations:
        pred, real = group.pred[pert], group.real[pert]
        pred = pred[rng.choice(len(pred), MAX_CELLS, replace=False)] if len(pred) > MAX_CELLS else pred
        real = real[rng.choice(len(real), MAX_CELLS, replace=False)] if len(real) > MAX_CELLS else real
        x, y = pca.transform(pred), pca.transform(real)
        out["energy_distance_pca"].append(energy_distance(x, y))
        out["mmd_pca"].append(mmd_rbf(x, y))
        out["cellwise_distance"].append(float(np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)).min(1).mean()))
        real_delta = real.mean(axis=0) - ctrl_mean
        out["direction_cosine"].append(float(np.nanmean(cosine_matrix(pred - ctrl_mean, real_delta[None, :]))))
    return {k: np.asarray(v) for k, v in out.items()}


def genewise_pearson(pred_delta: np.ndarray, real_delta: np.ndarray) -> float:
    """Mean over genes of the correlation, across perturbations, of predicted and real change."""
    if pred_delta.shape[0] < 3:
        return float("nan")
    r = pearson_rows(pred_delta, real_delta, axis=0)
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")
