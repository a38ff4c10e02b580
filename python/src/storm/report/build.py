"""Turn every metrics.csv of a run into ``summary.csv``, figures and one self-contained
``report.html`` (images embedded, so it opens straight from S3 or an e-mail)."""

from __future__ import annotations

import base64
import html
import io as stdio
import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .. import io  # noqa: E402
from ..errors import InputError  # noqa: E402

log = logging.getLogger(__name__)

HIGHER_IS_BETTER = {"pearson_delta": True, "cosine_logfc": True, "mse": False, "mae": False}


def read_metrics(paths: list[str | os.PathLike]) -> pd.DataFrame:
    if not paths:
        raise InputError("no metrics files given")
    frames = []
    for path in paths:
        frame = pd.read_csv(path)
        missing = {"dataset", "seed", "model", "metric", "value"} - set(frame.columns)
        if missing:
            raise InputError(f"{path} is not a storm metrics table (missing {', '.join(sorted(missing))})")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd and n of every (dataset, model, metric) over seeds and pairs; NaNs are counted
    in ``n_missing`` rather than dropped silently."""
    grouped = metrics.groupby(["dataset", "model", "metric"], sort=True)["value"]
    summary = grouped.agg(mean="mean", sd="std", n="count").reset_index()
    summary["n_missing"] = grouped.apply(lambda v: int(v.isna().sum())).to_numpy()
    return summary


def _figure_png(metrics: pd.DataFrame, dataset: str) -> bytes:
    """One panel per metric: each pair's value per model (points), the mean per seed (bars)."""
    data = metrics[metrics["dataset"] == dataset]
    names = sorted(data["metric"].unique(), key=lambda m: (m not in HIGHER_IS_BETTER, m))
    models = sorted(data["model"].unique())
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.6), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes[0], names):
        sub = data[data["metric"] == metric]
        for i, model in enumerate(models):
            vals = sub.loc[sub["model"] == model]
            seed_means = vals.groupby("seed")["value"].mean()
            ax.bar(i, seed_means.mean(), yerr=seed_means.std() if len(seed_means) > 1 else None,
                   color=f"C{i}", alpha=0.35, capsize=3)
            ax.scatter(i + rng.uniform(-0.25, 0.25, len(vals)), vals["value"], s=6, color=f"C{i}")
        better = {True: "higher is better", False: "lower is better"}.get(HIGHER_IS_BETTER.get(metric), "")
        ax.set_title(f"{metric}\n({better})" if better else metric, fontsize=9)
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=8)
    fig.suptitle(f"{dataset}: models per metric (points: pairs; bars: mean over seeds ± sd)", fontsize=10)
    fig.tight_layout()
    buf = stdio.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _summary_html(summary: pd.DataFrame, dataset: str) -> str:
    sub = summary[summary["dataset"] == dataset]
    metrics = sorted(sub["metric"].unique(), key=lambda m: (m not in HIGHER_IS_BETTER, m))
    rows = []
    for model in sorted(sub["model"].unique()):
        cells = [f"<th>{html.escape(model)}</th>"]
        for metric in metrics:
            col = sub[sub["metric"] == metric]
            row = col[col["model"] == model].iloc[0]
            higher = HIGHER_IS_BETTER.get(metric)
            best = higher is not None and row["mean"] == (col["mean"].max() if higher else col["mean"].min())
            text = f"{row['mean']:.4f} ± {0 if pd.isna(row['sd']) else row['sd']:.4f}"
            cells.append(f"<td class='{'best' if best else ''}'>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    return f"<table><tr><th>model</th>{head}</tr>{''.join(rows)}</table>"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td.best{font-weight:bold;background:#e6f4ea}img{max-width:100%}"""


def build_report(metric_paths: list[str | os.PathLike], out_dir: str | os.PathLike) -> pd.DataFrame:
    """Write ``summary.csv``, ``figures/<dataset>_models.png`` and ``report.html``."""
    metrics = read_metrics(metric_paths)
    summary = summarise(metrics)
    out = Path(out_dir)
    io.write_csv(summary, out / "summary.csv")
    sections = []
    for dataset in sorted(metrics["dataset"].unique()):
        png = _figure_png(metrics, dataset)
        with io.atomic_path(out / "figures" / f"{dataset}_models.png") as tmp:
            tmp.write_bytes(png)
        seeds = sorted(metrics.loc[metrics["dataset"] == dataset, "seed"].unique())
        n_pairs = metrics[metrics["dataset"] == dataset].groupby(["cell_type", "perturbation"]).ngroups
        sections.append(
            f"<h2>{html.escape(dataset)}</h2><p>{len(seeds)} seed(s), {n_pairs} held-out "
            f"(cell type, perturbation) pairs. Mean ± sd over seeds and pairs; best in bold.</p>"
            + _summary_html(summary, dataset)
            + f"<img alt='model comparison' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        )
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>storm report</title>"
            f"<style>{STYLE}</style></head><body><h1>storm report</h1>{''.join(sections)}</body></html>")
    with io.atomic_path(out / "report.html") as tmp:
        tmp.write_text(page)
    log.info("report: %s", out / "report.html")
    return summary
