"""The grid and the cheap checks: `storm check` (CHECK: the dataset's columns, every run of the
grid, the split options; writes plan.json) and `storm plan` (the runs, without data)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from ..errors import InputError
from ..spec import DatasetSpec
from .base import cli, comma_list, log, spec_options
from .split import SPLIT_SHAPE_OPTIONS, split, split_params


def grid_options(func):
    """The experiment grid as the pipeline's parameters give it (storm.grid reads them)."""
    options = [
        click.option("--models", default="", help="Comma-separated models; `name=model` runs a variant of a model "
                                                  "under its own name."),
        click.option("--model-set", default="", metavar="TEXT",
                     help="Settings as `model.key=value` items separated by spaces (quotes and brackets keep an "
                          "item whole); a value `a|b` sweeps the key."),
        click.option("--model-configs", default="", metavar="JSON",
                     help="Settings as a JSON mapping of model (or variant) to its keys; --model-set applies over it."),
        click.option("--model-images", default="", help="`model=image,...`: images other than the environment's."),
    ]
    for option in reversed(options):
        func = option(func)

    @functools.wraps(func)
    def wrapper(models, model_set, model_configs, model_images, **kwargs):
        from ..grid import plan

        try:
            configs = json.loads(model_configs) if model_configs else {}
        except ValueError as exc:
            raise InputError(f"--model-configs is not valid JSON: {exc}") from exc
        if not isinstance(configs, dict):
            raise InputError("--model-configs must be a JSON mapping of model to its settings")
        return func(runs=plan(comma_list(models), model_set, configs, model_images), **kwargs)

    return wrapper


@cli.command()
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="h5ad file (a folder is an error; X is read in chunks).")
@grid_options
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the checked grid here (plan.json: the runs the pipeline trains).")
@click.option("--require-environments", is_flag=True,
              help="Each model's environment must be installed here (runs without containers).")
@click.option("--sweep-metric", help="The metric that will choose a sweep's configuration: it needs a direction.")
@click.option("--predict-conditions", "conditions_csv", type=click.Path(path_type=Path),
              help="Conditions to predict (cell_type, perturbation[, dose, time][, dataset]): each must be one a "
                   "model trained on this data can represent.")
@click.option("--predict-models", default="", help="With --predict-conditions: the runs of the grid that predict them "
                                                   "(default: the verdict's choice).")
@click.option("--dataset-name", default="dataset", show_default=True,
              help="This dataset's id (the conditions table's dataset column names it).")
@click.option("--molecules", is_flag=True, help="Compounds are seen through molecule features (--molecule_embeddings).")
@click.option("--conditions-data", "conditions_data", multiple=True, type=click.Path(path_type=Path),
              help="A sharded dataset's shards, in order (repeatable): the conditions are read from all of them "
                   "[default: --input].")
@click.option("--conditions-out", type=click.Path(file_okay=False, path_type=Path),
              help="With --predict-conditions: write this dataset's requested.csv and holdout.csv (the requested "
                   "conditions the data measures, held out of training) here.")
@spec_options
@click.argument("split_args", nargs=-1, type=click.UNPROCESSED)
def check(input_path: Path, runs: list, plan_path: Path | None, require_environments: bool,
          sweep_metric: str | None, conditions_csv: Path | None, predict_models: str, dataset_name: str,
          molecules: bool, conditions_data: tuple[Path, ...], conditions_out: Path | None, spec: DatasetSpec,
          split_args: tuple[str, ...]) -> None:
    """Check what can be checked without reading X, in seconds: the dataset's columns and
    embeddings, every run of the grid and its settings, `storm split` options given after `--`,
    and the conditions --predict-conditions asks of this dataset.

    The pipeline runs this before any expensive step, so a typo costs seconds, not a whole run.
    """
    from ..check import check_dataset, check_models
    from ..grid import write_plan

    if sweep_metric:
        from ..report.sweeps import check_metric

        check_metric(sweep_metric)
    keys = check_dataset(input_path, spec)
    check_models(runs, spec, keys, require_environments)
    if split_args:
        ctx = split.make_context("storm split", ["--input", str(input_path), "--out-dir", ".", *split_args])
        split_params(spec, input_path, **{k: v for k, v in ctx.params.items() if k in SPLIT_SHAPE_OPTIONS})
    if conditions_csv:
        _check_requested(conditions_csv, list(conditions_data) or input_path, spec, dataset_name,
                         molecules or bool(spec.smiles_key), comma_list(predict_models), runs, conditions_out)
    if plan_path:
        write_plan(runs, plan_path)
    log.info("%s: spec, %d run(s) and split options check out", input_path, len(runs))


def _check_requested(conditions_csv: Path, dataset, spec: DatasetSpec, dataset_name: str, molecules: bool,
                     predict_models: list[str], runs: list, out: Path | None) -> None:
    from .. import io
    from ..new_conditions import requested_conditions

    names = [run.name for run in runs]
    unknown = [m for m in predict_models if m not in names]
    if unknown:
        raise InputError(f"--predict_models: '{unknown[0]}' is not a run of the grid ({', '.join(names)})")
    table, holdout = requested_conditions(conditions_csv, dataset, spec, dataset_name, molecules)
    if out and len(table):
        out.mkdir(parents=True, exist_ok=True)
        io.write_csv(table, out / "requested.csv")
        io.write_csv(holdout, out / "holdout.csv")


@cli.command("plan")
@grid_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write plan.json here.")
def plan_command(runs: list, out: Path | None) -> None:
    """The training runs a grid makes, without data: each run's name, model, environment and
    settings (what CHECK writes to plan.json, less the checks that need the dataset)."""
    from ..grid import write_plan

    for run in runs:
        settings = " ".join(f"{key}={value}" for key, value in run.settings.items())
        click.echo(f"{run.name}\t{run.model}\t{run.environment}\t{settings}")
    if out:
        write_plan(runs, out)
