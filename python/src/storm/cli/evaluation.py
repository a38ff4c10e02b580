"""Scoring: `storm reference` (once a split), `storm evaluate` (per prediction), `storm report`."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ..metrics import DEG_K, PROFILES
from .base import cli, comma_floats, eval_split_option, log, quadratic_option, split_input_options, threads_option


@cli.command()
@split_input_options
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for real.h5ad and reference/ (real DE tables, the baseline's metrics).")
@eval_split_option
@threads_option
@quadratic_option
def reference(prepared: tuple[Path, ...], split_csv: Path, genes_csv: Path, out_dir: Path, eval_split: str,
              threads: int, quadratic: str) -> None:
    """Once per split, what every model's evaluation shares: the real held-out cells (real.h5ad),
    their differential expression, the cell-mean baseline's metrics, the training perturbations'
    mean effect per cell type (the perturbed centroid of Systema's metrics) and the calibrated
    scores' floors and ceilings."""
    from ..evaluate import build_reference
    from ..evaluate.systema import write_perturbed_effects
    from ..predict import write_real

    summary = write_real(prepared, split_csv, genes_csv, out_dir / "real.h5ad", eval_split=eval_split)
    log.info("real.h5ad: %d pair(s), %d cells", summary["pairs"], summary["cells"])
    write_perturbed_effects(prepared, split_csv, genes_csv, out_dir / "reference", eval_split)
    build_reference(out_dir / "real.h5ad", out_dir / "reference", threads, quadratic)


@cli.command()
@click.option("--pred", required=True, type=click.Path(path_type=Path),
              help="Predicted cells (h5ad): storm predict's pred.h5ad, or any tool's with --pert-col etc.")
@click.option("--real", required=True, type=click.Path(path_type=Path),
              help="Real cells (h5ad): storm reference's real.h5ad, or any with the same genes.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="metrics.csv to write.")
@click.option("--pert-col", help="obs column of the perturbation in both files (cell-eval's --pert-col) "
                                 "[default: storm's perturbation].")
@click.option("--control-pert", help="Its value on control cells (cell-eval's --control-pert) "
                                     "[default: the one storm recorded in real.h5ad].")
@click.option("--celltype-col", help="obs column of the cell type, scored apart (cell-eval's --celltype-col) "
                                     "[default: storm's cell_type when present, else all cells together].")
@click.option("--profile", default="full", show_default=True, type=click.Choice(PROFILES),
              help="cell-eval's metric profile (cell-eval's --profile); storm's own metrics come with each.")
@click.option("--dataset", help="Dataset name for the table [default: the real file's name].")
@click.option("--seed", default=0, show_default=True, type=int, help="Split seed for the table.")
@click.option("--model", help="Model name for the table [default: the pred file's name].")
@click.option("--reference", "reference_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder from `storm reference` for the same real.h5ad: reuses its DE, adds vcc_score.")
@click.option("--no-vcc", is_flag=True, help="Skip the cell-eval (VCC) metrics.")
@click.option("--cells-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a small sample of predicted, real and control cells here (the report's cell map).")
@click.option("--deg-k", default=",".join(map(str, DEG_K)), show_default=True,
              help="The k of the top-k DEG R² metrics (per pair, and per drug in a chemical screen), comma-separated.")
@threads_option
@quadratic_option
def evaluate(pred: Path, real: Path, out: Path, pert_col: str | None, control_pert: str | None,
             celltype_col: str | None, profile: str, dataset: str | None, seed: int, model: str | None,
             reference_dir: Path | None, no_vcc: bool, cells_out: Path | None, deg_k: str, threads: int,
             quadratic: str) -> None:
    """Score predictions per (cell type, perturbation): VCC metrics through cell-eval, PerturBench
    metrics with rank partners, distribution and direction metrics; write long-form metrics.csv.
    Files from other tools are scored too: name their columns as for `cell-eval run`."""
    ks = comma_floats(deg_k)
    if not ks or any(k < 1 or k != int(k) for k in ks):
        raise InputError(f"--deg-k: expected comma-separated whole numbers of genes, got '{deg_k}'")
    for path in (pred, real):
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    from .. import io
    from ..evaluate import evaluate as run
    from ..evaluate.pairs import Columns

    dataset, model = dataset or real.stem, model or pred.stem
    columns = Columns(pert_col, control_pert, celltype_col)
    table = run(pred, real, dataset, seed, model, reference=reference_dir, threads=threads, quadratic=quadratic,
                with_vcc=not no_vcc, deg_k=tuple(int(k) for k in ks), columns=columns, profile=profile)
    if cells_out:
        from ..evaluate.cells import sample_cells

        io.write_h5ad(sample_cells(pred, real, dataset, seed, model, columns=columns), cells_out)
    io.write_csv(table, out, checksum=True)


@cli.command()
@click.argument("metrics", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for summary.csv, comparisons.csv, leaders.txt, figures/ and report.html.")
@click.option("--model-dir", "model_dirs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="A trained model folder whose train_log.csv to plot (repeatable).")
@click.option("--qc", "qc_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A dataset's qc.json (repeatable): its size and spec go into the provenance.")
@click.option("--run-info", type=click.Path(dir_okay=False, path_type=Path),
              help="The pipeline's run information (JSON: versions, commit, parameters, datasets).")
@click.option("--versions", "versions_file", type=click.Path(dir_okay=False, path_type=Path),
              help="software_versions.yml of the run's steps.")
@click.option("--pipeline-info", type=click.Path(file_okay=False, path_type=Path),
              help="Nextflow's pipeline_info folder, for time and memory per task.")
@click.option("--cells", "cell_samples", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A model's cell sample (`storm evaluate --cells-out`; repeatable): the map of real and predicted "
                   "cells.")
@click.option("--val-metrics", "val_metrics", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A sweep configuration's metrics on the validation pairs (repeatable): each swept model's "
                   "configuration is chosen on these.")
@click.option("--sweep-metric", default="pearson_delta", show_default=True,
              help="The validation metric that chooses a sweep's configuration (in its better direction).")
@click.option("--profile", default="full", show_default=True, type=click.Choice(PROFILES),
              help="The key metrics the report leads with (cell-eval's profiles).")
@click.option("--price-cpu-hour", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="USD per CPU-hour, to price each task's run time (the pipeline passes its --price_cpu_hour).")
@click.option("--price-gpu-hour", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="USD per GPU-hour, on top, for the tasks of --gpu-process.")
@click.option("--gpu-process", "gpu_processes", multiple=True,
              help="A process whose tasks held a GPU (repeatable; -profile gpu: TRAIN).")
@click.option("--verdict", "verdict_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The run's verdict.csv (`storm verdict`): each dataset's section opens with it.")
@click.option("--store", help="Also append the run to this results store (a folder or s3:// prefix; "
                              "`storm results` queries it).")
@click.option("--new-conditions", "new_conditions", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A table of predictions for new conditions (`storm predict --conditions`'s CSV; repeatable).")
def report(metrics: tuple[Path, ...], out_dir: Path, model_dirs: tuple[Path, ...], qc_files: tuple[Path, ...],
           run_info: Path | None, versions_file: Path | None, pipeline_info: Path | None,
           cell_samples: tuple[Path, ...], val_metrics: tuple[Path, ...], sweep_metric: str, profile: str,
           price_cpu_hour: float, price_gpu_hour: float, gpu_processes: tuple[str, ...], verdict_file: Path | None,
           store: str | None, new_conditions: tuple[Path, ...]) -> None:
    """Summarise metrics.csv files: summary.csv, paired comparisons, figures and report.html, opening
    with the run's provenance and closing with a glossary of the metrics."""
    from ..report import Provenance, build_report
    from ..report.cost import Prices, read_tasks

    provenance = Provenance.read(run_info, list(qc_files), versions_file)
    tasks = read_tasks(pipeline_info, Prices(price_cpu_hour, price_gpu_hour, gpu_processes))
    import pandas as pd

    verdicts = pd.read_csv(verdict_file, keep_default_na=False) if verdict_file else None
    build_report(list(metrics), out_dir, list(model_dirs), tasks, provenance, list(cell_samples),
                 list(val_metrics), sweep_metric, profile, verdicts, list(new_conditions))
    if store:
        from ..results import Store, run_tables

        run_id, tables = run_tables(list(metrics), list(model_dirs), provenance, pipeline_info, tasks)
        Store(store).append(run_id, tables)
        log.info("appended run %s (%d metric values) to the results store %s", tables["runs"]["run_name"].iloc[0],
                 len(tables["metrics"]), store)


@cli.command()
@click.argument("metrics", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="verdict.csv to write.")
@click.option("--val-metrics", "val_metrics", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A sweep configuration's metrics on the validation pairs (repeatable), as for `storm report`.")
@click.option("--sweep-metric", default="pearson_delta", show_default=True,
              help="The validation metric that chooses a sweep's configuration.")
@click.option("--plan", "plan_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The grid's plan.json: new conditions are predicted with one of its training runs.")
def verdict(metrics: tuple[Path, ...], out: Path, val_metrics: tuple[Path, ...], sweep_metric: str,
            plan_path: Path | None) -> None:
    """Per dataset: which model beats every baseline on most calibrated metrics (paired Wilcoxon
    over the scored pairs, Benjamini-Hochberg q < 0.05), that none does, or that too few pairs were
    held out for any test to tell; the fallback; and the training run that predicts new conditions
    (predict_with: the winner, else the fallback, of the plan's runs)."""
    from .. import io
    from ..report.build import shown_metrics
    from ..report.verdict import judge

    shown, choices = shown_metrics(list(metrics), list(val_metrics), sweep_metric)
    runs = None
    if plan_path:
        runs = {}
        for run in io.read_json(plan_path)["runs"]:
            runs.setdefault(run["group"], []).append(run["name"])
    table = judge(shown, runs, choices)
    io.write_csv(table, out)
    for row in table.itertuples():
        log.info("verdict on %s: %s", row.dataset, row.statement)


@cli.command("metrics")
@click.option("--markdown", is_flag=True, help="The registry's table as docs/metrics.md shows it, instead.")
def metrics_command(markdown: bool) -> None:
    """The metrics storm reports (its metric registry): which way each is better, what it measures
    and what it is blind to, who computes it, and the key metrics of each profile."""
    from .. import metrics

    if markdown:
        click.echo(metrics.markdown(), nl=False)
        return
    for m in metrics.METRICS:
        key = ",".join(m.key_in)
        click.echo(f"{m.name:30} {m.better or '-':7} {m.source:10} {key:18} {m.definition}")
