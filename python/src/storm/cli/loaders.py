"""`storm loaders synth|train|report`: the loader-strategy benchmark."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from .base import cli, log, parse_overrides


@cli.group()
def loaders() -> None:
    """The loader-strategy benchmark: a multi-task linear classifier trained once per strategy."""


@loaders.command("synth")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for plates.")
@click.option("--plates", default=3, help="Plate files (the last is the natural test plate).")
@click.option("--cells-per-plate", default=2000, help="Cells per plate.")
@click.option("--genes", default=500, help="Genes.")
@click.option("--seed", default=0, help="Random seed.")
@click.option("--gzip", is_flag=True, help="Write X gzip-compressed (anndata's compression='gzip').")
def loaders_synth(out_dir: Path, plates: int, cells_per_plate: int, genes: int, seed: int, gzip: bool) -> None:
    """Write Tahoe-shaped plates: CSR counts clustered by (cell line, drug), MoA labels."""
    from ..loaderbench.synth import PlateConfig, write_plates

    if plates < 2 or min(cells_per_plate, genes) < 1:
        raise click.BadParameter("need at least 2 plates, 1 cell per plate and 1 gene")
    paths = write_plates(PlateConfig(plates, cells_per_plate, genes, seed=seed), out_dir, "gzip" if gzip else None)
    click.echo("\n".join(map(str, paths)))


@loaders.command("train")
@click.option("--train", "train_files", multiple=True, required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Training h5ad file (repeatable), e.g. one per plate.")
@click.option("--test", "test_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Held-out h5ad file the classifier is scored on.")
@click.option("--tasks", required=True, help="Comma-separated obs columns to classify, e.g. cell_line,drug.")
@click.option("--config", "preset", default="pilot", help="Preset (pilot, full) or a YAML file of the same keys.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value (repeatable), e.g. --set strategy=random --set block_size=4.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for metrics.csv, train_log.csv and summary.json.")
def loaders_train(train_files: tuple[Path, ...], test_file: Path, tasks: str, preset: str,
                  overrides: tuple[str, ...], out_dir: Path) -> None:
    """Train the multi-task classifier with one loading strategy; score macro-F1 on the test file."""
    from ..loaderbench.classifier import load_config, run

    config = load_config(preset, parse_overrides(overrides))
    for path in (*train_files, test_file):
        if not path.is_file():
            raise InputError(f"no such file: {path}")
    summary = run(list(train_files), test_file, [t for t in tasks.split(",") if t], config, out_dir)
    log.info("%s: %.1fs training, %.0f cells/s", summary["strategy"], summary["train_seconds"],
             summary["cells_per_second"])


@loaders.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Report folder.")
def loaders_report(results: tuple[Path, ...], out_dir: Path) -> None:
    """Gather strategy runs: summary.csv, macro-F1 per task, training curves, time per strategy."""
    from ..loaderbench.report import build

    table = build(list(results), out_dir)
    click.echo(table.to_string(index=False))
