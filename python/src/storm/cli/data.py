"""Commands that make, bring in, check and prepare a dataset: synth, import, velocity, validate,
subsample, prepare, genes."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..chem.screen import ScreenConfig
from ..errors import StormError
from ..genes import N_TOP_GENES
from ..resources import GB, TRAIN_MEMORY_BUDGET
from ..spec import DatasetSpec
from ..subsample import Sample
from ..synth import SynthConfig
from .base import (
    cli,
    comma_floats,
    comma_list,
    dataset_shards_option,
    default,
    log,
    prepared_option,
    spec_options,
)


@cli.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="h5ad file to write.")
@click.option("--seed", default=default(SynthConfig, "seed"), help="Random seed; the same seed gives the same data.")
@click.option("--n-genes", default=default(SynthConfig, "n_genes"), help="Genes (at least 50).")
@click.option("--n-cell-types", default=default(SynthConfig, "n_cell_types"), help="Cell types (at least 2).")
@click.option("--n-perturbations", default=default(SynthConfig, "n_perturbations"),
              help="Single perturbations (at least 2).")
@click.option("--n-combos", default=default(SynthConfig, "n_combos"),
              help="Dual perturbations A+B built from the singles.")
@click.option("--cells-per-pair", default=default(SynthConfig, "cells_per_pair"),
              help="Cells per (cell type, perturbation).")
@click.option("--controls-per-cell-type", default=default(SynthConfig, "controls_per_cell_type"),
              help="Control cells per cell type.")
@click.option("--n-batches", default=default(SynthConfig, "n_batches"), help="Batches.")
@click.option("--library-size", default=default(SynthConfig, "mean_library_size"),
              help="Mean counts per cell (fewer: sparser cells).")
@click.option("--chemical", is_flag=True, help="A drug screen instead: real molecules whose effects follow their "
              "structure, at several doses and times, in --n-cell-types cell lines (obs: drug, dose, time, "
              "cell_line, smiles).")
@click.option("--bulk", is_flag=True, help="--chemical: replicate bulk log-expression profiles (LINCS-like), "
                                           "--cells-per-pair of them per condition.")
@click.option("--n-drugs", default=default(ScreenConfig, "n_drugs"),
              help="--chemical: drugs (at least 2; storm ships 49).")
@click.option("--doses", default=default(ScreenConfig, "doses"), help="--chemical: doses in µM, comma-separated.")
@click.option("--time-course", is_flag=True, help="A time course instead: --n-perturbations stimuli at --times "
              "(default 10,14,19) in --n-cell-types cell types, cells moving along a known velocity field "
              "(obs: stimulus, time, cell_type; layers['velocity']).")
@click.option("--times", default=None, help="--chemical (default 24) or --time-course: times, comma-separated.")
def synth(out: Path, seed: int, n_genes: int, n_cell_types: int, n_perturbations: int, n_combos: int,
          cells_per_pair: int, controls_per_cell_type: int, n_batches: int, library_size: float, chemical: bool,
          bulk: bool, n_drugs: int, doses: str, time_course: bool, times: str | None) -> None:
    """Write a synthetic perturbation dataset (negative-binomial counts), a chemical screen or a
    time course. Perturbation screens of any size are written a block of cells at a time."""
    from .. import io
    from ..synth import SynthConfig, write_synthetic

    if chemical and time_course:
        raise StormError("--chemical and --time-course are two kinds of dataset: pick one")
    if time_course:
        from ..synth import TIME_COURSE_SPEC, TimeCourseConfig, make_time_course

        adata = make_time_course(TimeCourseConfig(
            n_genes=n_genes, n_cell_types=n_cell_types, n_stimuli=n_perturbations,
            times=comma_floats(times or "10,14,19"), cells_per_condition=cells_per_pair,
            controls_per_cell_type=controls_per_cell_type, seed=seed))
        io.write_h5ad(adata, out)
        log.info("wrote %s: %d cells x %d genes; its dataset spec: %s", out, adata.n_obs, adata.n_vars,
                 json.dumps(TIME_COURSE_SPEC))
        return
    times = times or "24"
    if chemical:
        from ..chem.screen import SCREEN_SPEC, ScreenConfig, make_screen

        adata = make_screen(ScreenConfig(n_genes=n_genes, n_cell_lines=n_cell_types, n_drugs=n_drugs,
                                         doses=comma_floats(doses), times=comma_floats(times),
                                         cells_per_condition=cells_per_pair,
                                         controls_per_cell_line=controls_per_cell_type, bulk=bulk, seed=seed))
        io.write_h5ad(adata, out)
        log.info("wrote %s: %d %s x %d genes; its dataset spec: %s", out, adata.n_obs, "wells" if bulk else "cells",
                 adata.n_vars, json.dumps(SCREEN_SPEC))
        return
    if n_genes < 50 or n_cell_types < 2 or n_perturbations < 2 or n_batches < 1:
        raise StormError("synth needs at least 50 genes, 2 cell types, 2 perturbations and 1 batch")
    if n_perturbations > n_genes:
        raise StormError("synth needs at least as many genes as perturbations (each targets a gene)")
    cfg = SynthConfig(n_genes=n_genes, n_cell_types=n_cell_types, n_perturbations=n_perturbations,
                      n_combos=n_combos, cells_per_pair=cells_per_pair,
                      controls_per_cell_type=controls_per_cell_type, n_batches=n_batches,
                      mean_library_size=library_size, seed=seed)
    screen = write_synthetic(cfg, out)
    log.info("wrote %s: %d cells x %d genes", out, len(screen.obs), cfg.n_genes)


@cli.command()
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="h5ad with layers 'spliced' and 'unspliced' (counts).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="h5ad to write: the input with layers['velocity'].")
@click.option("--n-neighbors", default=30, help="Neighbours the moments are taken over.")
@click.option("--n-pcs", default=30, help="Principal components the neighbours are found in.")
def velocity(input_path: Path, out: Path, n_neighbors: int, n_pcs: int) -> None:
    """RNA velocity with scVelo (its deterministic steady-state model) into layers['velocity'],
    which st's velocity loss reads (`--set velocity.enable=true`). X and the other layers are
    kept as they are."""
    from .. import io
    from ..velocity import compute_velocity

    adata = io.read_h5ad(input_path)
    compute_velocity(adata, n_neighbors=n_neighbors, n_pcs=n_pcs)
    io.write_h5ad(adata, out)
    log.info("wrote %s with layers['velocity']", out)


@cli.command("import")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A bulk table: LINCS GCT/GCTX, or a DataFrame of samples x (genes + metadata) in "
                   "parquet, pickle, CSV or TSV (sample ids in the first column).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="h5ad file to write.")
@click.option("--format", "fmt", default="auto",
              help="The input's format: gct, gctx, parquet, pickle, csv or tsv; auto goes by the file name.")
@click.option("--metadata", default="", help="DataFrames: columns that are sample metadata though they hold "
                                             "numbers (e.g. pert_dose,pert_time); other numeric columns are genes.")
@click.option("--genes", default="", help="DataFrames: the gene columns, comma-separated, or @FILE with one per "
                                          "line (default: every numeric column not in --metadata).")
@click.option("--var-names", default="", help="GCT/GCTX: name genes by this gene metadata field "
                                              "(e.g. pr_gene_symbol) instead of the row ids.")
def import_command(input_path: Path, out: Path, fmt: str, metadata: str, genes: str, var_names: str) -> None:
    """Convert a bulk expression table (e.g. LINCS L1000 signatures) to an h5ad that storm reads:
    samples become cells, with their metadata in obs; LINCS' -666 becomes a missing value."""
    from .. import io
    from ..bulk import import_table

    gene_list = (Path(genes[1:]).read_text().split() if genes.startswith("@") else comma_list(genes))
    adata = import_table(input_path, fmt, metadata=comma_list(metadata), genes=gene_list, var_names=var_names or None)
    io.write_h5ad(adata, out)
    log.info("wrote %s: %d samples x %d genes", out, adata.n_obs, adata.n_vars)


def memory_options(func):
    """What sizes the memory requests VALIDATE writes into qc.json."""
    func = click.option("--train-memory-budget", type=click.FloatRange(min=0, min_open=True),
                        default=TRAIN_MEMORY_BUDGET / GB, show_default=True,
                        help="GB of cells training may hold in memory (storm train's --memory-budget).")(func)
    return click.option("--n-top-genes", default=N_TOP_GENES, type=click.IntRange(min=1),
                        help="Genes each split keeps (GENES' --n-top-genes): what training and scoring hold "
                             "per cell.")(func)


def write_qc(qc: dict, out: Path, n_top_genes: int, train_memory_budget: float) -> None:
    """qc.json with, under "memory", the bytes each later step needs for its dataset."""
    from .. import io
    from ..resources import Sizes, requests

    io.write_json({**qc, "memory": requests(Sizes.from_qc(qc), n_top_genes, int(train_memory_budget * GB))}, out)


@cli.command()
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), help="h5ad to check.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="qc.json to write.")
@click.option("--dataset", default="", help="Dataset name recorded in qc.json (default: the file name).")
@memory_options
@spec_options
def validate(input_path: Path, out: Path, dataset: str, n_top_genes: int, train_memory_budget: float,
             spec: DatasetSpec) -> None:
    """Check a dataset against its spec, reading all of X in chunks; write qc.json (with the
    memory each later step needs for it, in bytes, under "memory"), or exit 2."""
    from ..validate import validate as run

    write_qc({"dataset": dataset or input_path.name.split(".")[0], **run(input_path, spec)}, out, n_top_genes,
             train_memory_budget)


@cli.command("combine-qc")
@click.option("--shard", "shard_qcs", required=True, multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A shard's qc.json (storm validate's); repeat it for each shard, in order.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="qc.json to write.")
@click.option("--dataset", required=True, help="The dataset's name, recorded in qc.json.")
@memory_options
def combine_qc(shard_qcs: tuple[Path, ...], out: Path, dataset: str, n_top_genes: int,
               train_memory_budget: float) -> None:
    """The qc.json of a sharded dataset from its shards' (counts summed, the genes and the scale
    checked the same), with the memory each later step needs for the whole dataset."""
    from .. import io
    from ..validate import combine

    write_qc({**combine([io.read_json(path) for path in shard_qcs]), "dataset": dataset}, out, n_top_genes,
             train_memory_budget)


@cli.command()
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), help="h5ad to sample.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="h5ad to write (the summary goes beside it as <name>.json).")
@click.option("--cell-types", default="", help="Keep only these cell types (comma-separated).")
@click.option("--max-cells-per-pair", type=click.IntRange(min=1), help="At most this many cells per (cell type, "
              "perturbation).")
@click.option("--max-controls-per-cell-type", type=click.IntRange(min=1), help="At most this many control cells per "
              "cell type.")
@click.option("--fraction", type=click.FloatRange(0, 1, min_open=True), help="This share of each (cell type, "
              "perturbation)'s cells, at least one.")
@click.option("--seed", default=default(Sample, "seed"), help="The same seed keeps the same cells.")
@dataset_shards_option
@spec_options
def subsample(input_path: Path, out: Path, cell_types: str, max_cells_per_pair: int | None,
              max_controls_per_cell_type: int | None, fraction: float | None, seed: int,
              dataset_shards: tuple[Path, ...], spec: DatasetSpec) -> None:
    """Keep some cell types and a seeded sample stratified by (cell type, perturbation), reading X
    by row, for a pilot on a slice of a big screen."""
    from .. import io
    from ..subsample import Sample
    from ..subsample import subsample as run

    sample = Sample(comma_list(cell_types), max_cells_per_pair, max_controls_per_cell_type, fraction, seed)
    summary = run(input_path, out, spec, sample, dataset_shards or None)
    io.write_json(summary, out.with_suffix(".json"))
    log.info("kept %s of %s cells", f"{summary['n_cells_kept']:,}", f"{summary['n_cells_input']:,}")


@cli.command()
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), help="Validated h5ad.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="prepared.h5ad to write.")
@click.option("--qc", "qc_json", type=click.Path(dir_okay=False, path_type=Path),
              help="storm validate's qc.json for this file: its scale is used instead of reading X twice.")
@click.option("--molecule-embeddings", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Chemical screens: a compound -> vector table (parquet, CSV or pickle) to use instead of "
                   "RDKit features of the spec's SMILES.")
@dataset_shards_option
@spec_options
def prepare(input_path: Path, out: Path, qc_json: Path | None, molecule_embeddings: Path | None,
            dataset_shards: tuple[Path, ...], spec: DatasetSpec) -> None:
    """Log-normalise (keeping counts) and write storm's canonical obs columns, once per dataset,
    a block of cells at a time; for a chemical screen, featurise its compounds once."""
    from .. import io
    from ..prepare import prepare_file

    scale = io.read_json(qc_json).get("scale") if qc_json else None
    prepare_file(input_path, out, spec, molecule_embeddings, scale, dataset_shards or None)


@cli.command()
@prepared_option
@click.option("--split", "split_csv", required=True, type=click.Path(path_type=Path),
              help="split.parquet (or a cell_id,split CSV).")
@click.option("--n-top-genes", default=N_TOP_GENES, type=click.IntRange(min=1), help="Highly variable genes to keep.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="genes.csv to write.")
def genes(prepared: tuple[Path, ...], split_csv: Path, n_top_genes: int, out: Path) -> None:
    """Choose a split's genes on its training cells only; write genes.csv."""
    from .. import io
    from ..genes import select_genes

    io.write_csv(select_genes(prepared, split_csv, n_top_genes), out, checksum=True)
