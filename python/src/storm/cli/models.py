"""Training and prediction: `storm train`, `storm predict`, and `storm models` (what is installed)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click
import yaml

from ..errors import InputError, StormError
from ..metrics import CELLS_PER_PAIR
from ..models.base import READS_CELLS
from ..resources import GB, TRAIN_MEMORY_BUDGET
from .base import cli, eval_split_option, log, parse_overrides, split_input_options


@cli.command()
@split_input_options
@click.option("--model", "model_name", required=True, help="Model name (see `storm models`).")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Model folder.")
@click.option("--seed", default=0, help="Training seed.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML of model config values over the model's defaults (`storm models --config M` shows them).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a model config value (repeatable, after --config); dots reach nested keys, "
                   "e.g. --set max_epochs=5 --set lora.rank=8.")
@click.option("--dataset", default="", help="Dataset name recorded in model.json.")
@click.option("--name", default="", help="The name it runs under, recorded in model.json (a variant's, e.g. st_lora; "
                                          "default: the model's).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where checkpoints go and training resumes from (default: <out-dir>/checkpoints); put it "
                   "outside the task folder so a retried task continues a killed one.")
@click.option("--memory-budget", type=click.FloatRange(min=0, min_open=True),
              default=TRAIN_MEMORY_BUDGET / GB, show_default=True,
              help="GB of cells training may hold in memory; past it, models that can read cells from disk do "
                   "(backed) and the others stop with an error.")
def train(prepared: tuple[Path, ...], split_csv: Path, genes_csv: Path, model_name: str, out_dir: Path, seed: int,
          config_file: Path | None, overrides: tuple[str, ...], dataset: str, name: str,
          checkpoint_dir: Path | None, memory_budget: float) -> None:
    """Train a model on a split's training cells; resume from the last checkpoint if one is there."""
    from ..gpus import check_driver, claim_gpu
    from ..models.config import flatten, read_config_file
    from ..train import train as run

    config = {**(flatten(read_config_file(config_file)) if config_file else {}), **parse_overrides(overrides)}
    claim_gpu(int(config.get("devices", 1)))
    if config.get("accelerator", "auto") != "cpu":
        check_driver()
    in_model_environment(model_name)
    meta = run(prepared, split_csv, genes_csv, model_name, out_dir, seed, config,
               dataset=dataset, checkpoint_dir=checkpoint_dir, name=name, memory_budget=int(memory_budget * GB))
    log.info("trained %s in %.1fs", meta["name"], meta["fit_seconds"])


def in_model_environment(model_name: str) -> None:
    """Go on here if the model's packages import here; else run this command in its environment."""
    from ..models import get_model_class
    from ..models.environments import hand_over, require

    cls = get_model_class(model_name)
    python = require(model_name, cls)
    if python is not None:
        log.info("%s runs in environment '%s': handing over to %s", model_name, cls.environment, python)
        hand_over(python, cls.environment, sys.argv[1:])


@cli.command()
@split_input_options
@click.option("--model-dir", "model_dirs", required=True, multiple=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Trained model folder (with --conditions, repeatable: one model's seeds).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="pred.h5ad to write (with --conditions: the new conditions' h5ad, a CSV beside it).")
@click.option("--seed", default=0, help="Seed of the control-cell draw (with --conditions: each model's own).")
@click.option("--conditions", "conditions_csv", type=click.Path(dir_okay=False, path_type=Path),
              help="Predict these conditions instead of the split's held-out pairs: a CSV of cell_type, perturbation "
                   "(and dose, time where the dataset has them), measured or not.")
@click.option("--cells", "n_cells", default=CELLS_PER_PAIR, show_default=True, type=click.IntRange(min=1),
              help="With --conditions: cells predicted per condition and model.")
@eval_split_option
def predict(prepared: tuple[Path, ...], split_csv: Path, genes_csv: Path, model_dirs: tuple[Path, ...], out: Path,
            seed: int, conditions_csv: Path | None, n_cells: int, eval_split: str) -> None:
    """Predict held-out pairs from held-out controls; write pred.h5ad. With --conditions, predict
    conditions no one measured from their cell type's controls: the predicted cells, the mean
    change per gene with its spread over the models given (seeds), the top up- and down-regulated
    genes, and flags on conditions unlike anything in training."""
    from ..train import trained_model_name

    for model_dir in model_dirs:
        in_model_environment(trained_model_name(model_dir))
    if conditions_csv:
        from ..new_conditions import predict_conditions

        table = predict_conditions(prepared, split_csv, genes_csv, list(model_dirs), conditions_csv, out,
                                   eval_split=eval_split, n_cells=n_cells)
        log.info("predicted %d condition(s) with %d model(s): %s and %s", len(table), len(model_dirs), out,
                 out.with_suffix(".csv"))
        return
    if len(model_dirs) > 1:
        raise InputError("--model-dir: one model folder, unless --conditions asks for new conditions")
    from ..predict import predict as run

    summary = run(prepared, split_csv, genes_csv, model_dirs[0], out, seed=seed, eval_split=eval_split)
    log.info("predicted %d pair(s), %d cells", summary["pairs"], summary["cells"])


@cli.command()
@click.option("--config", "show_config", metavar="MODEL", help="Print MODEL's default config as YAML instead.")
@click.option("--json", "as_json", is_flag=True, help="The table as JSON, keyed by model.")
@click.option("--environment", help="Only the models of this environment (core: storm's own).")
@click.option("--check", is_flag=True,
              help="Import each listed model's packages here (a container image's check); fail naming any that "
                   "does not import.")
def models(show_config: str | None, as_json: bool, environment: str | None, check: bool) -> None:
    """List the models: who implements each, the environment it runs in and whether that is
    installed here, what a retried training does, where it reads cells from at scale, and what the
    model is (or print one model's default config)."""
    from ..models import available_models, get_model_class
    from ..models.environments import import_error, status

    if show_config:
        click.echo(yaml.safe_dump(get_model_class(show_config).defaults, sort_keys=False).rstrip())
        return
    names = [n for n in available_models() if environment in (None, get_model_class(n).environment)]
    if not names:
        raise InputError(f"no model runs in environment '{environment}'")
    if check:
        failed = {name: error for name in names if (error := import_error(get_model_class(name)))}
        for name in names:
            click.echo(f"{name}: {'fails: ' + failed[name] if name in failed else 'imports'}")
        if failed:
            raise StormError(f"{len(failed)} model(s) do not import here: {', '.join(failed)}")
        return
    header = ("model", "family", "environment", "installed", "resume", "cells", "what it is")
    rows = [header]
    for name in names:
        cls = get_model_class(name)
        paragraph = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        doc = re.split(r"(?<!et al)\. ", paragraph)[0].rstrip(".")  # the first sentence ('et al.' does not end one)
        rows.append((name, cls.family, cls.environment, status(cls), cls.resume, READS_CELLS[cls.reads_cells], doc))
    if as_json:
        click.echo(json.dumps({row[0]: dict(zip(header[1:], row[1:])) for row in rows[1:]}, indent=2))
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
