"""The report's figures, each returned as PNG bytes."""

from __future__ import annotations

import io as stdio

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..evaluate import is_pair_row  # noqa: E402
from ..metrics import higher_is_better  # noqa: E402


def _png(fig) -> bytes:
    buf = stdio.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _direction(metric: str) -> str:
    return {True: "higher is better", False: "lower is better"}.get(higher_is_better(metric), "")


def model_comparison(metrics: pd.DataFrame, metric_names: list[str]) -> bytes:
    """One panel per metric: every pair's value per model (points), the mean per seed (bars ± sd
    over seeds)."""
    models = sorted(metrics["model"].unique())
    cols = min(4, len(metric_names))
    rows = int(np.ceil(len(metric_names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.3 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes.flat, metric_names):
        sub = metrics[metrics["metric"] == metric]
        for i, model in enumerate(models):
            vals = sub[sub["model"] == model]
            per_seed = vals.groupby("seed")["value"].mean()
            ax.bar(i, per_seed.mean(), yerr=per_seed.std() if len(per_seed) > 1 else None,
                   color=f"C{i}", alpha=0.35, capsize=3)
            ax.scatter(i + rng.uniform(-0.25, 0.25, len(vals)), vals["value"], s=5, color=f"C{i}")
        direction = _direction(metric)
        ax.set_title(f"{metric}\n({direction})" if direction else metric, fontsize=9)
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=8)
    for ax in list(axes.flat)[len(metric_names):]:
        ax.axis("off")
    fig.suptitle("models per metric (points: pairs; bars: mean over seeds ± sd)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def phenotype_dotplot(metrics: pd.DataFrame, metric: str) -> bytes:
    """Cell type x perturbation per model: colour is the mean over seeds, dot size shrinks as
    the seeds disagree (sd). A pair scored in one seed only is a hollow dot marked "n = 1" (it has
    no spread to show, which is not zero spread); a model without values says why."""
    sub = metrics[(metrics["metric"] == metric) & is_pair_row(metrics["perturbation"])]
    stats = sub.groupby(["model", "cell_type", "perturbation"])["value"].agg(["mean", "std", "count"]).reset_index()
    models = sorted(metrics["model"].unique())
    perts = sorted(stats["perturbation"].unique()) or ["–"]
    cts = sorted(stats["cell_type"].unique()) or ["–"]
    finite = stats["mean"].dropna()
    lo, hi = np.nanpercentile(finite, [2, 98]) if len(finite) else (0, 1)
    spread = max(float(stats["std"].max()) if stats["std"].notna().any() else 0.0, 1e-9)
    fig, axes = plt.subplots(1, len(models), figsize=(1.2 + 0.45 * len(cts) * len(models) + 1.5,
                                                      1.5 + 0.14 * len(perts)), squeeze=False, sharey=True)
    points = None
    for ax, model in zip(axes[0], models):
        m = stats[(stats["model"] == model) & stats["mean"].notna()]
        ax.set_title(model, fontsize=9)
        ax.set_xticks(range(len(cts)), cts, rotation=90, fontsize=7)
        ax.set_xlim(-0.7, len(cts) - 0.3)
        if m.empty:
            ax.text(0.5, 0.5, f"no {metric} values:\nnot computed for this model", transform=ax.transAxes,
                    ha="center", va="center", fontsize=7, color="0.4")
            continue
        x, y = m["cell_type"].map(cts.index), m["perturbation"].map(perts.index)
        several = (m["count"] > 1).to_numpy()
        size = 10 + 70 * (1 - m["std"].fillna(0) / spread)
        points = ax.scatter(x[several], y[several], c=m["mean"][several], s=size[several], cmap="viridis",
                            vmin=lo, vmax=hi)
        single = ax.scatter(x[~several], y[~several], s=45, facecolors="none",
                            edgecolors=plt.get_cmap("viridis")((m["mean"][~several] - lo) / max(hi - lo, 1e-12)))
        points = points if several.any() else single
        for xi, yi in zip(x[~several], y[~several]):
            ax.annotate("n = 1", (xi, yi), xytext=(5, -2), textcoords="offset points", fontsize=5, color="0.3")
    axes[0][0].set_yticks(range(len(perts)), perts, fontsize=6)
    axes[0][0].set_ylim(len(perts) - 0.5, -0.5)
    width = fig.get_size_inches()[0]
    fig.subplots_adjust(left=min(0.5, (0.3 + 0.06 * max(map(len, perts), default=4)) / width), bottom=0.2)
    if points is not None:
        fig.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(lo, hi), cmap="viridis"), ax=axes[0].tolist(),
                     label=f"{metric} (mean over seeds)", shrink=0.6)
    fig.suptitle(f"{metric} per (cell type, perturbation); smaller dots: more variance across seeds; "
                 f"hollow, n = 1: one seed", fontsize=9)
    return _png(fig)


def training_curves(logs: pd.DataFrame) -> bytes:
    """Loss per epoch, one panel per (dataset, model), one line per seed."""
    keys = sorted(set(zip(logs["dataset"], logs["model"])))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.0), squeeze=False)
    for ax, (dataset, model) in zip(axes[0], keys):
        sub = logs[(logs["dataset"] == dataset) & (logs["model"] == model)]
        for i, (seed, run) in enumerate(sub.groupby("seed")):
            for column, style in (("train_loss", "-"), ("val_loss", "--")):
                if column in run:
                    points = run[run[column].notna()]  # a model may validate less often than every epoch
                    ax.plot(points["epoch"], points[column], style, color=f"C{i}",
                            label=f"seed {seed} {column.split('_')[0]}")
        ax.set_title(f"{dataset} / {model}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)


def step_curves(steps: pd.DataFrame, window: int) -> bytes:
    """Per dataset: the training loss per step (a running mean over ``window`` steps, the raw
    steps faint) and the gradient norm per step, one colour per model (its first seed)."""
    datasets = sorted(steps["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.0 * len(datasets)), squeeze=False)
    for row, dataset in zip(axes, datasets):
        data = steps[steps["dataset"] == dataset]
        for i, model in enumerate(sorted(data["model"].unique())):
            sub = data[data["model"] == model]
            run = sub[sub["seed"] == sub["seed"].min()].sort_values("step")
            row[0].plot(run["step"], run["loss"], color=f"C{i}", alpha=0.2, linewidth=0.5)
            row[0].plot(run["step"], run["loss"].rolling(window, min_periods=1).mean(), color=f"C{i}", label=model)
            row[1].plot(run["step"], run["grad_norm"], color=f"C{i}", linewidth=0.7, label=model)
        row[0].set_title(f"{dataset}: training loss per step", fontsize=9)
        row[1].set_title(f"{dataset}: gradient norm per step (before clipping)", fontsize=9)
        row[1].set_yscale("log")
        for ax in row:
            ax.set_xlabel("step")
            ax.legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)


def cell_map(samples: list, title: str) -> bytes:
    """Real and predicted cells of one split in one UMAP (scanpy: 20 principal components of all
    the cells shown, their neighbour graph): a panel of real perturbed cells against real
    controls, then one per model of its predicted cells over the real perturbed ones."""
    import anndata as ad
    import scanpy as sc

    from ..evaluate.cells import SOURCE
    from ..numba_cache import cache_kernels

    cache_kernels()  # UMAP's neighbour graph: compiled once on a machine, not in every report

    real = samples[0][samples[0].obs[SOURCE] != "predicted"]
    models = [s.uns["sample"]["model"] for s in samples]
    predicted = [s[s.obs[SOURCE] == "predicted"] for s in samples]
    cells = ad.concat([real, *predicted], index_unique="-", keys=["real", *models])
    sc.pp.pca(cells, n_comps=min(20, cells.n_obs - 1, cells.n_vars - 1), random_state=0)
    sc.pp.neighbors(cells, n_neighbors=15, random_state=0)
    sc.tl.umap(cells, random_state=0)
    xy = cells.obsm["X_umap"]
    owner = np.repeat(["real", *models], [real.n_obs, *(p.n_obs for p in predicted)])
    kind = cells.obs[SOURCE].to_numpy()
    is_real = (owner == "real") & (kind == "real")
    columns = min(4, len(models) + 1)
    rows = -(-(len(models) + 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    panels = [("real cells", (owner == "real") & (kind == "control"), "controls")]
    panels += [(model, owner == model, "predicted") for model in models]
    for ax, (name, mask, label) in zip(axes.flat, panels):
        ax.scatter(*xy[is_real].T, s=3, color="0.75", label="real perturbed")
        ax.scatter(*xy[mask].T, s=3, color="C3" if label == "controls" else "C0", label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=6, markerscale=3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def task_resources(trace: pd.DataFrame) -> bytes:
    """Wall time and peak memory per task, by process (from the Nextflow trace)."""
    processes = sorted(trace["process"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.9 + 0.35 * len(processes)))
    for ax, column, label in ((axes[0], "realtime_s", "run time (s)"), (axes[1], "peak_rss_gb", "peak RSS (GB)")):
        data = [trace.loc[trace["process"] == p, column].dropna().to_numpy() for p in processes]
        ax.boxplot(data, vert=False, tick_labels=processes)
        ax.set_xlabel(label)
    fig.suptitle("resources per task (Nextflow trace)", fontsize=10)
    fig.tight_layout()
    return _png(fig)
