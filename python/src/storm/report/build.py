"""Turn every metrics.csv of a run into ``summary.csv``, ``comparisons.csv``, figures and one
self-contained ``report.html`` (images embedded, so it opens straight from S3 or an e-mail)."""

from __future__ import annotations

import base64
import html
import logging
import os
from pathlib import Path

import pandas as pd

from .. import io
from ..errors import InputError
from ..evaluate import ALL, is_pair_row
from ..grid import group_of
from ..metrics import HEADLINE, better_direction, describe, key_metrics
from ..models.base import EPOCH_LOG, STEP_LOG
from . import figures, sweeps
from .cost import model_costs
from .provenance import Provenance
from .stats import (
    MEAN_SD,
    STABILITY_WINDOW,
    metric_flags,
    paired_comparisons,
    summarise,
    training_stability,
    win_matrix,
    with_flags,
)

log = logging.getLogger(__name__)



def read_metrics(paths: list[str | os.PathLike]) -> pd.DataFrame:
    if not paths:
        raise InputError("no metrics files given")
    frames = []
    for path in paths:
        frame = pd.read_csv(path)
        missing = {"dataset", "seed", "model", "cell_type", "perturbation", "metric", "value"} - set(frame.columns)
        if missing:
            raise InputError(f"{path} is not a storm metrics table (missing {', '.join(sorted(missing))})")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def shown_metrics(metric_paths: list[str | os.PathLike], val_metric_paths: list[str | os.PathLike] = (),
                  sweep_metric: str = HEADLINE) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The test metrics as the report and the verdict judge them (each swept model by the
    configuration its validation pairs chose, :mod:`.sweeps`), and those choices (None: no sweep)."""
    choices = sweeps.choose(read_metrics(list(val_metric_paths)), sweep_metric) if val_metric_paths else None
    metrics = read_metrics(list(metric_paths))
    return (metrics if choices is None else sweeps.apply(metrics, choices)), choices


def read_training_logs(model_dirs: list[str | os.PathLike], name: str = EPOCH_LOG) -> pd.DataFrame:
    """A log (``train_log.csv`` per epoch, ``train_steps.csv`` per step) of every trained model
    folder, labelled from its ``model.json``."""
    frames = []
    for folder in map(Path, model_dirs):
        log_file, meta_file = folder / name, folder / "model.json"
        if log_file.is_file() and meta_file.is_file():
            meta = io.read_json(meta_file)
            frame = pd.read_csv(log_file)
            frame["model"], frame["seed"] = meta.get("name", meta["model"]), meta["seed"]
            frame["dataset"] = meta.get("dataset", "")
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_cell_samples(paths: list[str | os.PathLike]) -> dict[str, list]:
    """Per dataset, the cell samples of its first seed's models, in model order."""
    import anndata as ad

    def key(sample):
        meta = sample.uns["sample"]
        return meta["dataset"], int(meta["seed"]), meta["model"]

    by_dataset: dict[str, list] = {}
    for sample in sorted((ad.read_h5ad(path) for path in paths), key=key):
        by_dataset.setdefault(key(sample)[0], []).append(sample)
    return {dataset: [s for s in group if key(s)[1] == key(group[0])[1]] for dataset, group in by_dataset.items()}


def _cell_map_html(samples: list | None, dataset: str, save) -> str:
    if not samples:
        return ""
    seed = samples[0].uns["sample"]["seed"]
    title = f"{dataset}, seed {seed}: up to 300 cells of each kind (held-out pairs)"
    return ("<h3>Real and predicted cells</h3><p>One UMAP of the split's real perturbed cells, its real controls "
            "and every model's predicted cells: a model whose cells sit on the controls predicts little change; "
            "one whose cells cover the real perturbed cells' spread predicts the distribution, not only its mean."
            "</p>" + _img(save(figures.cell_map(samples, title), f"{dataset}_cells.png"), "real and predicted cells"))


def _table_html(frame: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for c in frame.columns:
            value = row[c]
            text = float_format.format(value) if isinstance(value, float) else str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _headline_html(summary: pd.DataFrame, dataset: str, metrics: list[str], flags: dict) -> str:
    """Models x key metrics: mean ± sd as in summary.csv (see MEAN_SD); the best (rank 1) in bold,
    except on a metric that cannot tell models apart here (marked †, never bold)."""
    sub = summary[summary["dataset"] == dataset].set_index(["model", "metric"])
    arrows = {"higher": "↑", "lower": "↓"}
    head = "".join(f"<th>{html.escape(m)}{'†' if (dataset, m) in flags else ''}<br><small>"
                   f"{arrows.get(sub.xs(m, level='metric')['better'].iloc[0], '')}</small></th>" for m in metrics)
    rows = []
    for model in sorted(sub.index.get_level_values("model").unique()):
        cells = [f"<th>{html.escape(model)}</th>"]
        for metric in metrics:
            row = sub.loc[(model, metric)] if (model, metric) in sub.index else None
            if row is None or pd.isna(row["mean"]):
                cells.append("<td>–</td>")
                continue
            sd = "n = 1" if row["n_seeds"] < 2 else f"± {row['sd']:.3f}"
            best = (dataset, metric) not in flags and row["rank"] == 1
            cells.append(f"<td class='{'best' if best else ''}'>{row['mean']:.3f} {sd}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    notes = "".join(f"<li>{html.escape(m)}: {html.escape(flags[(dataset, m)])}</li>" for m in metrics
                    if (dataset, m) in flags)
    note = f"<p>† cannot tell the models apart on this run's design, so never counted as a win:</p><ul>{notes}</ul>" \
        if notes else ""
    return f"<table><tr><th>model</th>{head}</tr>{''.join(rows)}</table>{note}"


def _wins_html(comparisons: pd.DataFrame, dataset: str, metrics: list[str], models: list[str], flags: dict) -> str:
    """Model x model: on how many of the key metrics the row model significantly beat the column one."""
    counted = [m for m in metrics if (dataset, m) not in flags]
    if len(models) < 2 or not counted:
        return "<p>No win matrix: it needs two models and a key metric that can tell them apart.</p>"
    wins = win_matrix(comparisons[comparisons["dataset"] == dataset], counted, models)
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)
    rows = []
    for model in models:
        cells = []
        for other in models:
            if model == other:
                cells.append("<td>–</td>")
                continue
            n = int(wins.loc[model, other])
            shade = int(235 - 120 * n / len(counted))
            cells.append(f"<td style='background:rgb({shade},245,{shade})'>{n}</td>" if n else "<td>0</td>")
        rows.append(f"<tr><th>{html.escape(model)}</th>{''.join(cells)}</tr>")
    return (f"<p>Row beats column on this many of the {len(counted)} key metrics that can tell models apart "
            f"({html.escape(', '.join(counted))}): a paired Wilcoxon signed-rank test over seeds and pairs, "
            "Benjamini-Hochberg q &lt; 0.05 over all tests of the dataset. Every test, on every metric, is in "
            f"comparisons.csv.</p><table><tr><th>wins</th>{head}</tr>{''.join(rows)}</table>")


def leaders(summary: pd.DataFrame, verdicts: pd.DataFrame | None = None) -> str:
    """One line per dataset: the best model on each key metric that can tell models apart, as the
    run's last words; then each dataset's verdict."""
    lines = []
    eligible = summary[summary["metric"].isin(key_metrics()) & (summary["rank"] == 1) & (summary["flag"] == "")]
    for dataset, sub in eligible.groupby("dataset"):
        best = []
        for metric in [m for m in key_metrics() if m in set(sub["metric"])]:
            tied = sub[sub["metric"] == metric]
            best.append(f"{metric} {' = '.join(sorted(tied['model']))} ({tied['mean'].iloc[0]:.3g})")
        lines.append(f"storm: best on {dataset}: " + ", ".join(best))
    for row in (verdicts.itertuples() if verdicts is not None else ()):
        lines.append(f"storm: verdict on {row.dataset}: {row.statement}")
    return "\n".join(lines)


def _verdict_html(verdicts: pd.DataFrame | None, dataset: str) -> str:
    if verdicts is None or dataset not in set(verdicts["dataset"]):
        return ""
    row = verdicts[verdicts["dataset"] == dataset].iloc[0]
    chosen = str(row.get("predict_with", "") or "")
    why = "the winner" if row["verdict"] == "winner" and group_of(chosen) == row["winner"] else \
        "the highest mean calibrated pearson_delta of the grid's runs"
    fallback = f" New conditions (--predict_conditions) are predicted with {html.escape(chosen)} ({why})." \
        if chosen else ""
    return (f"<p class='verdict'><b>Verdict:</b> {html.escape(row['statement'])}.{fallback} Calibrated scores put "
            "each metric between perturbed_mean's score (0) and a technical replicate's (1); see the glossary.</p>")


def _new_conditions_html(asked: pd.DataFrame) -> str:
    if asked.empty:
        return ""
    flagged = int((asked["flags"] != "").sum())
    return ("<h3>New conditions</h3><p>Conditions requested with --predict_conditions, predicted by models retrained "
            "on every cell but the requested conditions the data measures, one per seed, from their cell type's "
            f"controls. {flagged} of {len(asked)} are unlike anything in training (flags): read those as "
            "extrapolations. The genes most up- and down-regulated by the mean predicted change over seeds; the cells "
            "and every gene's mean change and its sd over seeds are in new_conditions/&lt;model&gt;.h5ad.</p>"
            + _table_html(asked.drop(columns="dataset")))


def _sweeps_html(choices: pd.DataFrame) -> str:
    """Each swept model's configurations on the validation pairs, per split, and the one chosen."""
    table = choices.assign(chosen=choices["chosen"].map({True: "✓", False: ""}))
    metric = choices["metric"].iloc[0] if len(choices) else HEADLINE
    return ("<h2>Sweeps</h2><p>Each configuration of a swept model was trained and scored on the split's validation "
            f"pairs; the best by {html.escape(metric)} there (✓) stands for the model on the test pairs in the rest of "
            "this report, per split. The test pairs never chose. Every configuration's test metrics are in its "
            "metrics.csv and the results store; sweeps.csv holds this table.</p>" + _table_html(table))


def _glossary_html(metric_names: list[str]) -> str:
    rows = []
    for metric in sorted(metric_names):
        definition, blind = describe(metric)
        better = better_direction(metric) or "–"
        rows.append(f"<tr><th>{html.escape(metric)}</th><td>{better}</td><td class='text'>{html.escape(definition)}"
                    f"</td><td class='text'>{html.escape(blind)}</td></tr>")
    return ("<h2>Glossary</h2><p>Delta: a pseudobulk mean minus the mean of the same cell type's held-out controls. "
            f"{html.escape(MEAN_SD[0].upper() + MEAN_SD[1:])}.</p><table><tr><th>metric</th><th>better</th>"
            "<th>what it measures</th><th>what it is blind to</th></tr>" + "".join(rows) + "</table>")


BULK_NOTE = ("<p><b>Bulk profiles.</b> The samples are bulk profiles, not single cells: the metrics that need "
             "cells (cell-eval's differential-expression metrics, pearson_edistance, clustering_agreement, and storm's "
             "distribution distances) were skipped; the metrics of means remain.</p>")

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
td.best{font-weight:bold;background:#e6f4ea}img{max-width:100%}details{margin:1em 0}
td.text{text-align:left;max-width:520px}table.facts th{text-align:left}"""


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _phenotypes_html(data: pd.DataFrame, dataset: str, keys: list[str], headline: str, save) -> str:
    """The per-phenotype dot plot of the headline metric, and of every other key metric folded."""
    def plot(metric):
        return _img(save(figures.phenotype_dotplot(data, metric), f"{dataset}_phenotypes_{metric}.png"),
                    f"{metric} per phenotype")

    others = "".join(f"<details><summary>{html.escape(m)}</summary>{plot(m)}</details>" for m in keys if m != headline)
    return (f"<h3>Per phenotype</h3><p>Colour: the mean over seeds; dot size shrinks as seeds disagree; a hollow "
            f"dot marked n = 1 is a pair held out in one seed only (no spread to show). {html.escape(headline)} first, "
            f"then every key metric.</p>" + plot(headline) + others)


def _cost_html(tasks: pd.DataFrame | None, save) -> str:
    if tasks is None or tasks.empty:
        return ""
    costs = model_costs(tasks)
    table = _table_html(costs, "{:.4g}") if len(costs) else "<p>No model tasks in the trace yet.</p>"
    return ("<h2>Time and cost</h2><p>Per model: its tasks (train, predict, evaluate; over seeds), their summed run "
            "time from the Nextflow trace and its price: CPU-hours × --price_cpu_hour, + GPU-hours × --price_gpu_hour "
            f"for tasks on a GPU. The whole run: {tasks['realtime_s'].sum() / 3600:.3g} task-hours, "
            f"${tasks['cost_usd'].sum():.3g}.</p>" + table
            + _img(save(figures.task_resources(tasks), "task_resources.png"), "resources"))


def build_report(metric_paths: list[str | os.PathLike], out_dir: str | os.PathLike,
                 model_dirs: list[str | os.PathLike] = (),
                 tasks: pd.DataFrame | None = None,
                 provenance: Provenance | None = None,
                 cell_samples: list[str | os.PathLike] = (),
                 val_metric_paths: list[str | os.PathLike] = (), sweep_metric: str = HEADLINE,
                 profile: str = "full", verdicts: pd.DataFrame | None = None,
                 new_conditions: list[str | os.PathLike] = ()) -> pd.DataFrame:
    """Write ``summary.csv``, ``comparisons.csv``, ``leaders.txt``, ``verdict.csv`` (given
    ``verdicts``), ``figures/*.png`` and ``report.html`` (provenance first, the glossary last).
    ``tasks``: the trace's, priced (:func:`storm.report.cost.task_costs`). ``cell_samples``
    (``storm evaluate --cells-out``) give each dataset a map of real against predicted cells.
    ``val_metric_paths`` (a sweep's configurations scored on the validation pairs) choose each
    swept model's configuration by ``sweep_metric`` (``sweeps.csv``); the rest of the report shows
    the chosen. ``profile`` picks the key metrics (:func:`storm.metrics.key_metrics`). ``verdicts``
    (:mod:`.verdict`, the VERDICT step's table) open each dataset's section and close the run's
    last words. ``new_conditions``: PREDICT_NEW's tables (``storm predict --conditions``), shown in
    their dataset's section and gathered in ``new_conditions.csv``."""
    out = Path(out_dir)
    metrics, choices = shown_metrics(metric_paths, val_metric_paths, sweep_metric)
    if choices is not None:
        io.write_csv(choices, out / "sweeps.csv")
    samples = read_cell_samples(cell_samples)
    summary = summarise(metrics)
    flags = metric_flags(metrics, summary)
    summary = with_flags(summary, flags)
    io.write_csv(summary, out / "summary.csv")
    comparisons = paired_comparisons(metrics[metrics["perturbation"] != ALL])
    flagged = [(d, m) in flags for d, m in zip(comparisons["dataset"], comparisons["metric"])]
    comparisons.loc[flagged, "winner"] = ""  # a metric that cannot tell models apart names no winner
    io.write_csv(comparisons, out / "comparisons.csv")
    io.write_text(leaders(summary, verdicts) + "\n", out / "leaders.txt")
    if verdicts is not None:
        io.write_csv(verdicts, out / "verdict.csv")
    asked = pd.concat([pd.read_csv(p, keep_default_na=False) for p in new_conditions], ignore_index=True) \
        if new_conditions else pd.DataFrame(columns=["dataset"])
    if len(asked):
        io.write_csv(asked, out / "new_conditions.csv")

    def save(png: bytes, name: str) -> bytes:
        with io.atomic_path(out / "figures" / name) as tmp:
            tmp.write_bytes(png)
        return png

    sections = [(provenance or Provenance()).html()]
    if choices is not None:
        sections.append(_sweeps_html(choices))
    for dataset in sorted(metrics["dataset"].unique()):
        data = metrics[metrics["dataset"] == dataset]
        keys = [m for m in key_metrics(profile) if m in set(data["metric"])] or sorted(set(data["metric"]))[:8]
        pair_rows = data[is_pair_row(data["perturbation"])]
        n_pairs = pair_rows.groupby(["cell_type", "perturbation"]).ngroups
        n_scored = pair_rows.groupby(["seed", "cell_type", "perturbation"]).ngroups
        bulk = "energy_distance_pca" not in set(data["metric"])  # storm skips its distributions on bulk alone
        n_seeds = data["seed"].nunique()
        models = sorted(data["model"].unique())
        headline = HEADLINE if HEADLINE in keys else keys[0]
        sections.append(
            f"<h2>{html.escape(dataset)}</h2><p>{n_seeds} seed(s); {n_pairs} held-out (cell type, perturbation) "
            f"pairs, scored {n_scored} times over the seeds (a pair held out in several seeds counts once per seed: "
            f"the n of the paired tests). Mean ± sd over seeds (each seed: the mean over its pairs; n = 1: one seed, "
            f"no spread), as in summary.csv; best in bold; every metric in summary.csv, each defined in the glossary "
            f"below.</p>"
            + (BULK_NOTE if bulk else "")
            + _verdict_html(verdicts, dataset)
            + _headline_html(summary, dataset, keys, flags)
            + _img(save(figures.model_comparison(data, keys), f"{dataset}_models.png"), "model comparison")
            + "<h3>Which model is better, and how sure</h3>" + _wins_html(comparisons, dataset, keys, models, flags)
            + _phenotypes_html(data, dataset, keys, headline, save)
            + _cell_map_html(samples.get(dataset), dataset, save)
            + _new_conditions_html(asked[asked["dataset"] == dataset])
        )
    logs = read_training_logs(list(model_dirs))
    if not logs.empty:
        sections.append("<h2>Training</h2>" + _img(save(figures.training_curves(logs), "training_curves.png"),
                                                   "training curves"))
    steps = read_training_logs(list(model_dirs), STEP_LOG)
    if not steps.empty:
        stability = training_stability(steps)
        io.write_csv(stability, out / "training_stability.csv")
        sections.append(
            "<h2>Training stability</h2><p>Per optimiser step, from each model's train_steps.csv (also in "
            "TensorBoard under its model folder). loss_variance: the loss's variance in a sliding window of "
            f"{STABILITY_WINDOW} steps (a quarter of the run if shorter), averaged over the run (noise and spikes, "
            "not the trend); final_loss: the mean of the last window; gradient norms before clipping. Mean over "
            "seeds; training_stability.csv holds the table.</p>"
            + _table_html(stability)
            + _img(save(figures.step_curves(steps, STABILITY_WINDOW), "training_steps.png"), "training steps"))
    sections.append(_cost_html(tasks, save))
    sections.append(_glossary_html(sorted(metrics["metric"].unique())))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>storm report</title>"
            f"<style>{STYLE}</style></head><body><h1>storm report</h1>{''.join(sections)}</body></html>")
    with io.atomic_path(out / "report.html") as tmp:
        tmp.write_text(page)
    log.info("report: %s", out / "report.html")
    return summary
