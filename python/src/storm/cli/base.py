"""The `storm` group and what its commands share: the dataset spec and split-input options, small
parsers, and the entry point that turns every input error into one `error:` line (exit 2)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
from pathlib import Path

import click

from .. import __commit__, __version__
from ..errors import Interrupted, StormError
from ..spec import DatasetSpec

log = logging.getLogger("storm")


_versions_file: list[Path] = []  # written by main() when the step succeeded


def spec_options(func):
    """The dataset spec: whole, as JSON (``--spec``, how the pipeline passes it), or key by key."""
    defaults = DatasetSpec()
    options = [
        click.option("--spec", "spec_json", metavar="JSON",
                     help="The whole dataset spec as a JSON object (keys: "
                          f"{', '.join(DatasetSpec.__dataclass_fields__)}); excludes the options below."),
        click.option("--perturbation-key", help=f"obs column holding each cell's perturbation "
                                                f"[default: {defaults.perturbation_key}]"),
        click.option("--cell-type-key", help="obs column holding the cell type (what perturbations transfer "
                                             f"across) [default: {defaults.cell_type_key}]"),
        click.option("--control-value", help=f"value of the perturbation column marking control cells "
                                             f"[default: {defaults.control_value}]"),
        click.option("--batch-key", help=f"obs column holding the batch; empty for a single batch "
                                         f"[default: {defaults.batch_key}]"),
        click.option("--combo-delimiter", help=f"separator of combined perturbations (A+B) "
                                               f"[default: {defaults.combo_delimiter}]"),
    ]
    for option in reversed(options):
        func = option(func)

    @functools.wraps(func)
    def wrapper(spec_json, perturbation_key, cell_type_key, control_value, batch_key, combo_delimiter, **kwargs):
        keys = {"perturbation_key": perturbation_key, "cell_type_key": cell_type_key,
                "control_value": control_value, "batch_key": batch_key, "combo_delimiter": combo_delimiter}
        given = {k: v for k, v in keys.items() if v is not None}
        if spec_json is not None:
            if given:
                raise StormError(f"--spec excludes --{next(iter(given)).replace('_', '-')}: give the whole spec "
                                 f"in --spec, or the keys one by one")
            spec = DatasetSpec.from_json(spec_json)
        else:
            spec = DatasetSpec(**given)
        return func(spec=spec, **kwargs)

    return wrapper


def parse_overrides(pairs: tuple[str, ...]) -> dict:
    """``key=value`` pairs to a dict; values are parsed as YAML (numbers, booleans, strings)."""
    from ..models.config import parse_value

    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise StormError(f"--set expects key=value, got '{pair}'")
        config[key.strip()] = parse_value(value, f"--set {pair}")
    return config


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="storm",
                      message="%(prog)s %(version)s" + (f" (commit {__commit__})" if __commit__ else ""))
@click.option("-q", "--quiet", is_flag=True, help="Only log warnings and errors.")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the log to this file (the pipeline publishes it beside the step's outputs).")
@click.option("--versions-file", type=click.Path(dir_okay=False, path_type=Path),
              help="When the step succeeds, write the versions of what it ran (YAML) here.")
def cli(quiet: bool, log_file: Path | None, versions_file: Path | None) -> None:
    """storm: train and benchmark single-cell perturbation-response models.

    Each subcommand is one step of the pipeline (files in, files out); `nextflow run main.nf`
    runs them all over datasets x seeds x models.
    """
    from ..allocators import return_freed_memory
    from ..logs import setup

    setup(logging.WARNING if quiet else logging.INFO, log_file)
    return_freed_memory()
    _versions_file[:] = [versions_file] if versions_file else []


def default(cls, name: str):
    """The default of a dataclass field: an option that feeds the field shows and takes it, so the
    default has one home. A tuple comes out comma-separated, as such options are written."""
    spec = cls.__dataclass_fields__[name]
    value = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if isinstance(value, tuple) else value


def comma_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise StormError(f"expected comma-separated numbers, got '{text}'") from exc


def comma_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


#: a prepared dataset: one file, or a sharded dataset's prepared shards in order (repeated)
prepared_option = click.option("--prepared", required=True, multiple=True, type=click.Path(path_type=Path),
                               help="prepared.h5ad; a sharded dataset's prepared shards, in order: repeat it.")


#: a step that runs once per shard and still needs the dataset's cells (a subsample's draws, the
#: compounds of a chemical screen) reads every shard's obs
dataset_shards_option = click.option(
    "--dataset-shards", multiple=True, type=click.Path(path_type=Path),
    help="When --input is one shard of a sharded dataset: every shard, in order (repeat it); what applies to the "
         "dataset (caps, draws, the compounds) is decided on all of them.")


def split_input_options(func):
    for option in reversed([
        prepared_option,
        click.option("--split", "split_csv", required=True, type=click.Path(path_type=Path),
                     help="split.parquet (or a cell_id,split CSV)."),
        click.option("--genes", "genes_csv", required=True, type=click.Path(path_type=Path),
                     help="genes.csv of the split (`storm genes`)."),
    ]):
        func = option(func)
    return func


def eval_split_option(func):
    return click.option("--eval-split", default="test", type=click.Choice(["val", "test"]),
                        help="Split to predict and score.")(func)


def threads_option(func):
    return click.option("--threads", default=1, help="Threads for differential expression.")(func)


def quadratic_option(func):
    return click.option("--quadratic", default="auto", type=click.Choice(["auto", "on", "off"]),
                        help="Metrics quadratic in cells (pearson_edistance): auto skips them above "
                             "20,000 cells.")(func)


def main(argv: list[str] | None = None) -> None:
    """Entry point: a usage or input error is one `error: ...` line and exit status 2; a signal
    that stopped training exits 128 + its number (schedulers retry those); a traceback is a bug."""
    from ..numba_cache import use_cache_dir

    use_cache_dir()
    try:
        with cli.make_context("storm", list(sys.argv[1:] if argv is None else argv)) as ctx:
            cli.invoke(ctx)
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except StormError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Interrupted as exc:
        click.echo(f"interrupted: {exc}", err=True)
        sys.exit(128 + exc.signum)  # as a shell reports a signal, so schedulers retry it
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    if _versions_file:
        from ..versions import write_versions

        write_versions(_versions_file[0])
