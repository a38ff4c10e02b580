"""`storm results runs|leaderboard|compare|export|push|add`: the results store."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from .base import cli


@cli.group()
def results() -> None:
    """Query the results store every run appends to (DuckDB over Parquet; a folder or s3:// prefix):
    runs, a leaderboard over all runs, two runs compared, any table as CSV."""


def _store_option(func):
    return click.option("--store", default="storm-store", show_default=True, envvar="STORM_STORE", show_envvar=True,
                        help="The store: a folder or s3://bucket/prefix (the pipeline's --store).")(func)


def _csv_option(func):
    return click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of an aligned table.")(func)


def _open_store(location: str):
    from ..results import Store

    store = Store(location)
    if not store.remote and not (Path(location) / "runs").is_dir():
        raise InputError(f"no results store at {location}: a pipeline run makes one (--store), or `storm results add`")
    return store


def _print_table(table, as_csv: bool) -> None:
    import pandas as pd

    if as_csv:
        click.echo(table.to_csv(index=False), nl=False)
    elif table.empty:
        click.echo("(nothing)")
    else:
        with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                               "display.float_format", "{:.4g}".format):
            click.echo(table.to_string(index=False))


@results.command("runs")
@_store_option
@_csv_option
def results_runs(store: str, as_csv: bool) -> None:
    """Every run in the store, newest first: its datasets, models, seeds and number of values."""
    from ..results.queries import runs

    _print_table(runs(_open_store(store)), as_csv)


@results.command("leaderboard")
@_store_option
@click.option("--dataset", help="Only this dataset [default: every dataset].")
@click.option("--metric", "metrics", multiple=True,
              help="A metric to rank on (repeatable) [default: the report's key metrics].")
@_csv_option
def results_leaderboard(store: str, dataset: str | None, metrics: tuple[str, ...], as_csv: bool) -> None:
    """Models ranked per dataset and metric over every run: mean ± sd over splits, and a paired
    Wilcoxon test against the leader on the held-out pairs both scored on the same splits."""
    from ..metrics import key_metrics
    from ..results.queries import leaderboard

    _print_table(leaderboard(_open_store(store), list(metrics or key_metrics()), dataset), as_csv)


@results.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@_store_option
@click.option("--metric", "metrics", multiple=True, help="Only this metric (repeatable).")
@_csv_option
def results_compare(run_a: str, run_b: str, store: str, metrics: tuple[str, ...], as_csv: bool) -> None:
    """Two runs (names, or the start of their ids) side by side on what both scored."""
    from ..results.queries import compare

    _print_table(compare(_open_store(store), run_a, run_b, list(metrics) or None), as_csv)


@results.command("export")
@click.argument("table", default="metrics")
@_store_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="CSV file to write [default: stdout].")
def results_export(table: str, store: str, out: Path | None) -> None:
    """A table of the store as CSV (metrics, runs, models, datasets, tasks, versions): its committed rows."""
    from .. import io
    from ..results.queries import export

    frame = export(_open_store(store), table)
    if out:
        io.write_csv(frame, out)
    else:
        click.echo(frame.to_csv(index=False), nl=False)


@results.command("push")
@click.argument("destination")
@_store_option
def results_push(destination: str, store: str) -> None:
    """Copy a local store to s3://bucket/prefix for collaborators (what it lacks; runs last), who
    query it there with `storm results ... --store s3://...` or DuckDB."""
    click.echo(f"{destination}: {_open_store(store).push(destination)} file(s) copied")


@results.command("add")
@click.argument("metrics", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@_store_option
@click.option("--run-name", help="The run's name in the store [default: a new id].")
def results_add(metrics: tuple[Path, ...], store: str, run_name: str | None) -> None:
    """Append metrics.csv files (`storm evaluate`'s, from anywhere) to the store as one run."""
    from ..report import Provenance
    from ..results import Store, run_tables

    run_id, tables = run_tables(list(metrics), [], Provenance(), run_name=run_name)
    Store(store).append(run_id, tables)
    click.echo(f"{store}: run {tables['runs']['run_name'].iloc[0]} ({run_id[:8]}), {len(tables['metrics'])} values")
