"""The `storm` command: one subcommand per pipeline step. Each is thin: it parses options,
calls the library and writes files. Input errors print one `error: ...` line and exit 2."""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from pathlib import Path

import click
import yaml

from . import __version__
from .errors import InputError, Interrupted, StormError
from .spec import METRIC_PROFILES, SPLIT_EXPORTS, SPLIT_STRATEGIES, DatasetSpec

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
    from .models.config import parse_value

    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise StormError(f"--set expects key=value, got '{pair}'")
        config[key.strip()] = parse_value(value, f"--set {pair}")
    return config


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="storm")
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
    from .logs import setup

    setup(logging.WARNING if quiet else logging.INFO, log_file)
    _versions_file[:] = [versions_file] if versions_file else []


@cli.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="h5ad file to write.")
@click.option("--seed", default=0, help="Random seed; the same seed gives the same data.")
@click.option("--n-genes", default=600, help="Genes (at least 50).")
@click.option("--n-cell-types", default=4, help="Cell types (at least 2).")
@click.option("--n-perturbations", default=24, help="Single perturbations (at least 2).")
@click.option("--n-combos", default=0, help="Dual perturbations A+B built from the singles.")
@click.option("--cells-per-pair", default=40, help="Cells per (cell type, perturbation).")
@click.option("--controls-per-cell-type", default=240, help="Control cells per cell type.")
@click.option("--n-batches", default=2, help="Batches.")
@click.option("--chemical", is_flag=True, help="A drug screen instead: real molecules whose effects follow their "
              "structure, at several doses and times, in --n-cell-types cell lines (obs: drug, dose, time, "
              "cell_line, smiles).")
@click.option("--bulk", is_flag=True, help="--chemical: replicate bulk log-expression profiles (LINCS-like), "
                                           "--cells-per-pair of them per condition.")
@click.option("--n-drugs", default=32, help="--chemical: drugs (at least 2; storm ships 49).")
@click.option("--doses", default="0.1,1,10", help="--chemical: doses in µM, comma-separated.")
@click.option("--time-course", is_flag=True, help="A time course instead: --n-perturbations stimuli at --times "
              "(default 10,14,19) in --n-cell-types cell types, cells moving along a known velocity field "
              "(obs: stimulus, time, cell_type; layers['velocity']).")
@click.option("--times", default=None, help="--chemical (default 24) or --time-course: times, comma-separated.")
def synth(out: Path, seed: int, n_genes: int, n_cell_types: int, n_perturbations: int, n_combos: int,
          cells_per_pair: int, controls_per_cell_type: int, n_batches: int, chemical: bool, bulk: bool,
          n_drugs: int, doses: str, time_course: bool, times: str | None) -> None:
    """Write a synthetic perturbation dataset (negative-binomial counts), a chemical screen or a
    time course."""
    from . import io
    from .synth import SynthConfig, make_synthetic

    if chemical and time_course:
        raise StormError("--chemical and --time-course are two kinds of dataset: pick one")
    if time_course:
        from .synth import TIME_COURSE_SPEC, TimeCourseConfig, make_time_course

        adata = make_time_course(TimeCourseConfig(
            n_genes=n_genes, n_cell_types=n_cell_types, n_stimuli=n_perturbations,
            times=_floats(times or "10,14,19"), cells_per_condition=cells_per_pair,
            controls_per_cell_type=controls_per_cell_type, seed=seed))
        io.write_h5ad(adata, out)
        log.info("wrote %s: %d cells x %d genes; its dataset spec: %s", out, adata.n_obs, adata.n_vars,
                 json.dumps(TIME_COURSE_SPEC))
        return
    times = times or "24"
    if chemical:
        from .chem.screen import SCREEN_SPEC, ScreenConfig, make_screen

        adata = make_screen(ScreenConfig(n_genes=n_genes, n_cell_lines=n_cell_types, n_drugs=n_drugs,
                                         doses=_floats(doses), times=_floats(times), cells_per_condition=cells_per_pair,
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
                      controls_per_cell_type=controls_per_cell_type, n_batches=n_batches, seed=seed)
    adata = make_synthetic(cfg)
    io.write_h5ad(adata, out)
    log.info("wrote %s: %d cells x %d genes", out, adata.n_obs, adata.n_vars)


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
    from . import io
    from .velocity import compute_velocity

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
    from . import io
    from .bulk import import_table

    gene_list = (Path(genes[1:]).read_text().split() if genes.startswith("@") else _names(genes))
    adata = import_table(input_path, fmt, metadata=_names(metadata), genes=gene_list, var_names=var_names or None)
    io.write_h5ad(adata, out)
    log.info("wrote %s: %d samples x %d genes", out, adata.n_obs, adata.n_vars)


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
        from .grid import plan

        try:
            configs = json.loads(model_configs) if model_configs else {}
        except ValueError as exc:
            raise InputError(f"--model-configs is not valid JSON: {exc}") from exc
        if not isinstance(configs, dict):
            raise InputError("--model-configs must be a JSON mapping of model to its settings")
        return func(runs=plan(_names(models), model_set, configs, model_images), **kwargs)

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
@spec_options
@click.argument("split_args", nargs=-1, type=click.UNPROCESSED)
def check(input_path: Path, runs: list, plan_path: Path | None, require_environments: bool,
          sweep_metric: str | None, spec: DatasetSpec, split_args: tuple[str, ...]) -> None:
    """Check what can be checked without reading X, in seconds: the dataset's columns and
    embeddings, every run of the grid and its settings, and `storm split` options given after `--`.

    The pipeline runs this before any expensive step, so a typo costs seconds, not a whole run.
    """
    from .check import check_dataset, check_models
    from .grid import write_plan

    if sweep_metric:
        from .report.sweeps import check_metric

        check_metric(sweep_metric)
    keys = check_dataset(input_path, spec)
    check_models(runs, spec, keys, require_environments)
    if split_args:
        ctx = split.make_context("storm split", ["--input", str(input_path), "--out-dir", ".", *split_args])
        _split_params(spec, input_path, **{k: v for k, v in ctx.params.items() if k in _SPLIT_OPTIONS})
    if plan_path:
        write_plan(runs, plan_path)
    log.info("%s: spec, %d run(s) and split options check out", input_path, len(runs))


@cli.command("plan")
@grid_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write plan.json here.")
def plan_command(runs: list, out: Path | None) -> None:
    """The training runs a grid makes, without data: each run's name, model, environment and
    settings (what CHECK writes to plan.json, less the checks that need the dataset)."""
    from .grid import write_plan

    for run in runs:
        settings = " ".join(f"{key}={value}" for key, value in run.settings.items())
        click.echo(f"{run.name}\t{run.model}\t{run.environment}\t{settings}")
    if out:
        write_plan(runs, out)


@cli.command()
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), help="h5ad to check.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="qc.json to write.")
@click.option("--dataset", default="", help="Dataset name recorded in qc.json (default: the file name).")
@spec_options
def validate(input_path: Path, out: Path, dataset: str, spec: DatasetSpec) -> None:
    """Check a dataset against its spec, reading all of X in chunks; write qc.json, or exit 2."""
    from . import io
    from .validate import validate as run

    io.write_json({"dataset": dataset or input_path.name.split(".")[0], **run(input_path, spec)}, out)


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
@click.option("--seed", default=0, help="The same seed keeps the same cells.")
@spec_options
def subsample(input_path: Path, out: Path, cell_types: str, max_cells_per_pair: int | None,
              max_controls_per_cell_type: int | None, fraction: float | None, seed: int, spec: DatasetSpec) -> None:
    """Keep some cell types and a seeded sample stratified by (cell type, perturbation), reading X
    by row, for a pilot on a slice of a big screen."""
    from . import io
    from .subsample import Sample
    from .subsample import subsample as run

    sample = Sample(_names(cell_types), max_cells_per_pair, max_controls_per_cell_type, fraction, seed)
    summary = run(input_path, out, spec, sample)
    io.write_json(summary, out.with_suffix(".json"))
    log.info("kept %s of %s cells", f"{summary['n_cells_kept']:,}", f"{summary['n_cells_input']:,}")


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise StormError(f"expected comma-separated numbers, got '{text}'") from exc


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


@cli.command()
@click.option("--input", "input_path", required=True,
              help="Where to read obs: an h5ad (its obs group only), a parquet or a CSV/TSV table; local or s3://.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Parent folder; the split goes into <out-dir>/seed<N>[_<strategy>].")
@click.option("--seed", default=0, help="The same seed gives the same split.")
@click.option("--strategy", default="transfer", type=click.Choice(SPLIT_STRATEGIES),
              help="transfer: hold perturbations out in some covariates; combo/combo_inverse: hold out "
                   "combinations (or singles); zeroshot: whole cell types; unseen_drug: whole compounds; "
                   "unseen_dose: doses of compounds seen at other doses; manual: what --manual-holdout names; "
                   "file: an existing cell_id,split CSV.")
@click.option("--covariate-keys", default="", help="Comma-separated covariate columns; the first is the cell "
              "type. Default: the cell type column.")
@click.option("--min-cells", default=10, help="Pairs with fewer cells stay in training.")
@click.option("--min-controls", default=3, help="Cell types with fewer controls keep all their pairs in training.")
@click.option("--max-heldout-fraction-per-covariate", default=0.3,
              help="transfer: at most this share of a covariate's perturbations is held out.")
@click.option("--max-heldout-covariates", default=1, help="transfer: held-out covariates per perturbation.")
@click.option("--min-train-covariates", default=1,
              help="A held-out perturbation stays in training in at least this many other covariates (0: no rule).")
@click.option("--heldout-fraction", default=0.5,
              help="combo/combo_inverse: share of eligible pairs held out; unseen_drug: share of compound groups.")
@click.option("--compound-groups", default="compound", type=click.Choice(["compound", "scaffold"]),
              help="unseen_drug: hold out compounds one by one, or with every compound of the same Bemis-Murcko "
                   "scaffold (needs the spec's smiles_key).")
@click.option("--heldout-doses", default="", help="unseen_dose: the doses to hold out, comma-separated "
                                                  "(default: each compound's highest).")
@click.option("--whole-time-courses", is_flag=True,
              help="transfer: hold a compound out in a cell type at all its time points (needs the spec's time_key).")
@click.option("--test-fraction", default=0.5, help="Share of held-out pairs (or cell types) sent to test, not val.")
@click.option("--control-fractions", default="0.7,0.15,0.15",
              help="train,val,test shares of each cell type's controls.")
@click.option("--zeroshot-cell-types", default="", help="zeroshot: comma-separated cell types to hold out.")
@click.option("--n-zeroshot", default=1, help="zeroshot: cell types drawn by the seed when none are named.")
@click.option("--manual-holdout", type=click.Path(path_type=Path), help="manual: YAML or CSV of holdouts.")
@click.option("--split-file", type=click.Path(path_type=Path),
              help="file: a cell_id,split CSV (header optional; PerturBench's) or a storm split.parquet.")
@click.option("--export", "exports", multiple=True, type=click.Choice(SPLIT_EXPORTS),
              help="Also write what reproduces the split in another tool (repeatable): state (cell-load's "
                   "state.toml and a `state tx train` command, state_tx_train.sh), perturbench "
                   "(perturbench_split.csv and perturbench_experiment.yaml).")
@click.option("--dataset-name", default="", help="Dataset name in the exports (default: the input's file name).")
@click.option("--dataset-path", default="", help="Dataset path in the exports (default: the input path).")
@click.option("--check", "check_only", is_flag=True,
              help="Only check the options, the columns they name and the holdout or split file; split nothing.")
@spec_options
def split(input_path: str, out_dir: Path, seed: int, exports: tuple[str, ...], dataset_name: str, dataset_path: str,
          check_only: bool, spec: DatasetSpec, **options) -> None:
    """Split cells at the (covariates, perturbation) pair level, reading only obs.

    Writes split.parquet (every cell's split), pairs.csv, summary.json and split.png, and the
    --export files, after checking every invariant (a violation is an error).
    """
    from .split import make_split, write_split
    from .split.obs import read_split_obs

    remote = input_path.startswith("s3://")
    if remote:  # run outside Nextflow's staging: fetch it ourselves
        from .cloud.s3 import fetch

        input_path = str(fetch(input_path))
    params, holdouts = _split_params(spec=spec, input_path=Path(input_path), seed=seed, **options)
    if check_only:
        log.info("split options check out")
        return
    obs = read_split_obs(Path(input_path), spec, params.covariate_keys)
    result = make_split(obs, params, **holdouts)
    default_name = input_path.rstrip("/").rsplit("/", 1)[-1].split(".")[0]
    default_path = input_path if remote else str(Path(input_path).resolve())
    write_split(result, obs.cell_ids, out_dir / result.name, params.covariate_keys, spec,
                dataset_name or default_name, dataset_path or default_path, seed, list(exports))
    click.echo(result.name)


#: the split command's options that shape the split (what `storm check` checks)
_SPLIT_OPTIONS = {"strategy", "covariate_keys", "min_cells", "min_controls", "max_heldout_fraction_per_covariate",
                  "max_heldout_covariates", "min_train_covariates", "heldout_fraction", "test_fraction",
                  "control_fractions", "zeroshot_cell_types", "n_zeroshot", "manual_holdout", "split_file",
                  "compound_groups", "heldout_doses", "whole_time_courses"}


def _split_params(spec: DatasetSpec, input_path: Path, seed: int = 0, **options):
    """Split parameters from the split command's options, checked with everything they refer to
    (columns, the holdout or split file) without splitting; returns them and the holdout files."""
    from .split import SplitParams, check_split_inputs

    params = SplitParams(
        spec=spec, covariate_keys=_names(options["covariate_keys"]), strategy=options["strategy"], seed=seed,
        min_cells=options["min_cells"], min_controls=options["min_controls"],
        max_heldout_fraction_per_covariate=options["max_heldout_fraction_per_covariate"],
        max_heldout_covariates=options["max_heldout_covariates"],
        min_train_covariates=options["min_train_covariates"], heldout_fraction=options["heldout_fraction"],
        test_fraction=options["test_fraction"], control_fractions=_floats(options["control_fractions"]),
        zeroshot_covariates=_names(options["zeroshot_cell_types"]), n_zeroshot=options["n_zeroshot"],
        compound_groups=options["compound_groups"], heldout_doses=_floats(options["heldout_doses"]),
        whole_time_courses=options["whole_time_courses"],
    )
    holdouts = {"manual_holdout": options["manual_holdout"], "split_file": options["split_file"]}
    check_split_inputs(params, input_path, **holdouts)
    return params, holdouts


@cli.command()
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), help="Validated h5ad.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="prepared.h5ad to write.")
@click.option("--molecule-embeddings", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Chemical screens: a compound -> vector table (parquet, CSV or pickle) to use instead of "
                   "RDKit features of the spec's SMILES.")
@spec_options
def prepare(input_path: Path, out: Path, molecule_embeddings: Path | None, spec: DatasetSpec) -> None:
    """Log-normalise (keeping counts) and write storm's canonical obs columns, once per dataset;
    for a chemical screen, featurise its compounds once."""
    from . import io
    from .prepare import prepare as run

    io.write_h5ad(run(io.read_h5ad(input_path), spec, molecule_embeddings), out)


def _split_options(func):
    for option in reversed([
        click.option("--prepared", required=True, type=click.Path(path_type=Path), help="prepared.h5ad."),
        click.option("--split", "split_csv", required=True, type=click.Path(path_type=Path),
                     help="split.parquet (or a cell_id,split CSV)."),
        click.option("--genes", "genes_csv", required=True, type=click.Path(path_type=Path),
                     help="genes.csv of the split (`storm genes`)."),
    ]):
        func = option(func)
    return func


@cli.command()
@click.option("--prepared", required=True, type=click.Path(path_type=Path), help="prepared.h5ad.")
@click.option("--split", "split_csv", required=True, type=click.Path(path_type=Path),
              help="split.parquet (or a cell_id,split CSV).")
@click.option("--n-top-genes", default=2000, type=click.IntRange(min=1), help="Highly variable genes to keep.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="genes.csv to write.")
def genes(prepared: Path, split_csv: Path, n_top_genes: int, out: Path) -> None:
    """Choose a split's genes on its training cells only; write genes.csv."""
    from . import io
    from .genes import select_genes

    io.write_csv(select_genes(prepared, split_csv, n_top_genes), out, checksum=True)


@cli.command()
@_split_options
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
def train(prepared: Path, split_csv: Path, genes_csv: Path, model_name: str, out_dir: Path, seed: int,
          config_file: Path | None, overrides: tuple[str, ...], dataset: str, name: str,
          checkpoint_dir: Path | None) -> None:
    """Train a model on a split's training cells; resume from the last checkpoint if one is there."""
    from .gpus import claim_gpu
    from .models.config import flatten, read_config_file
    from .train import train as run

    claim_gpu()
    _in_model_environment(model_name)
    config = {**(flatten(read_config_file(config_file)) if config_file else {}), **parse_overrides(overrides)}
    meta = run(prepared, split_csv, genes_csv, model_name, out_dir, seed, config,
               dataset=dataset, checkpoint_dir=checkpoint_dir, name=name)
    log.info("trained %s in %.1fs", meta["name"], meta["fit_seconds"])


def _in_model_environment(model_name: str) -> None:
    """Go on here if the model's packages import here; else run this command in its environment."""
    from .models import get_model_class
    from .models.environments import hand_over, require

    cls = get_model_class(model_name)
    python = require(model_name, cls)
    if python is not None:
        log.info("%s runs in environment '%s': handing over to %s", model_name, cls.environment, python)
        hand_over(python, cls.environment, sys.argv[1:])


def _eval_split_option(func):
    return click.option("--eval-split", default="test", type=click.Choice(["val", "test"]),
                        help="Split to predict and score.")(func)


@cli.command()
@_split_options
@click.option("--model-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Trained model folder.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="pred.h5ad to write.")
@click.option("--seed", default=0, help="Seed of the control-cell draw.")
@_eval_split_option
def predict(prepared: Path, split_csv: Path, genes_csv: Path, model_dir: Path, out: Path, seed: int,
            eval_split: str) -> None:
    """Predict held-out pairs from held-out controls; write pred.h5ad."""
    from .predict import predict as run
    from .train import trained_model_name

    _in_model_environment(trained_model_name(model_dir))
    summary = run(prepared, split_csv, genes_csv, model_dir, out, seed=seed, eval_split=eval_split)
    log.info("predicted %d pair(s), %d cells", summary["pairs"], summary["cells"])


def _threads_option(func):
    return click.option("--threads", default=1, help="Threads for differential expression.")(func)


def _quadratic_option(func):
    return click.option("--quadratic", default="auto", type=click.Choice(["auto", "on", "off"]),
                        help="Metrics quadratic in cells (pearson_edistance): auto skips them above "
                             "20,000 cells.")(func)


@cli.command()
@_split_options
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for real.h5ad and reference/ (real DE tables, the baseline's metrics).")
@_eval_split_option
@_threads_option
@_quadratic_option
def reference(prepared: Path, split_csv: Path, genes_csv: Path, out_dir: Path, eval_split: str, threads: int,
              quadratic: str) -> None:
    """Once per split, what every model's evaluation shares: the real held-out cells (real.h5ad),
    their differential expression and the cell-mean baseline's metrics."""
    from .evaluate import build_reference
    from .predict import write_real

    summary = write_real(prepared, split_csv, genes_csv, out_dir / "real.h5ad", eval_split=eval_split)
    log.info("real.h5ad: %d pair(s), %d cells", summary["pairs"], summary["cells"])
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
@click.option("--profile", default="full", show_default=True, type=click.Choice(METRIC_PROFILES),
              help="cell-eval's metric profile (cell-eval's --profile); storm's own metrics come with each.")
@click.option("--dataset", help="Dataset name for the table [default: the real file's name].")
@click.option("--seed", default=0, show_default=True, type=int, help="Split seed for the table.")
@click.option("--model", help="Model name for the table [default: the pred file's name].")
@click.option("--reference", "reference_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder from `storm reference` for the same real.h5ad: reuses its DE, adds vcc_score.")
@click.option("--no-vcc", is_flag=True, help="Skip the cell-eval (VCC) metrics.")
@click.option("--cells-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a small sample of predicted, real and control cells here (the report's cell map).")
@click.option("--deg-k", default="20,50,100", show_default=True,
              help="The k of the top-k DEG R² metrics (per pair, and per drug in a chemical screen), comma-separated.")
@_threads_option
@_quadratic_option
def evaluate(pred: Path, real: Path, out: Path, pert_col: str | None, control_pert: str | None,
             celltype_col: str | None, profile: str, dataset: str | None, seed: int, model: str | None,
             reference_dir: Path | None, no_vcc: bool, cells_out: Path | None, deg_k: str, threads: int,
             quadratic: str) -> None:
    """Score predictions per (cell type, perturbation): VCC metrics through cell-eval, PerturBench
    metrics with rank partners, distribution and direction metrics; write long-form metrics.csv.
    Files from other tools are scored too: name their columns as for `cell-eval run`."""
    ks = _floats(deg_k)
    if not ks or any(k < 1 or k != int(k) for k in ks):
        raise InputError(f"--deg-k: expected comma-separated whole numbers of genes, got '{deg_k}'")
    for path in (pred, real):
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    from . import io
    from .evaluate import evaluate as run
    from .evaluate.pairs import Columns

    dataset, model = dataset or real.stem, model or pred.stem
    columns = Columns(pert_col, control_pert, celltype_col)
    table = run(pred, real, dataset, seed, model, reference=reference_dir, threads=threads, quadratic=quadratic,
                with_vcc=not no_vcc, deg_k=tuple(int(k) for k in ks), columns=columns, profile=profile)
    if cells_out:
        from .evaluate.cells import sample_cells

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
@click.option("--profile", default="full", show_default=True, type=click.Choice(METRIC_PROFILES),
              help="The key metrics the report leads with (cell-eval's profiles).")
@click.option("--price-cpu-hour", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="USD per CPU-hour, to price each task's run time (the pipeline passes its --price_cpu_hour).")
@click.option("--price-gpu-hour", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="USD per GPU-hour, on top, for the tasks of --gpu-process.")
@click.option("--gpu-process", "gpu_processes", multiple=True,
              help="A process whose tasks held a GPU (repeatable; -profile gpu: TRAIN).")
@click.option("--store", help="Also append the run to this results store (a folder or s3:// prefix; "
                              "`storm results` queries it).")
def report(metrics: tuple[Path, ...], out_dir: Path, model_dirs: tuple[Path, ...], qc_files: tuple[Path, ...],
           run_info: Path | None, versions_file: Path | None, pipeline_info: Path | None,
           cell_samples: tuple[Path, ...], val_metrics: tuple[Path, ...], sweep_metric: str, profile: str,
           price_cpu_hour: float, price_gpu_hour: float, gpu_processes: tuple[str, ...], store: str | None) -> None:
    """Summarise metrics.csv files: summary.csv, paired comparisons, figures and report.html, opening
    with the run's provenance and closing with a glossary of the metrics."""
    from .report import Provenance, build_report
    from .report.cost import Prices, read_tasks

    provenance = Provenance.read(run_info, list(qc_files), versions_file)
    tasks = read_tasks(pipeline_info, Prices(price_cpu_hour, price_gpu_hour, gpu_processes))
    build_report(list(metrics), out_dir, list(model_dirs), tasks, provenance, list(cell_samples),
                 list(val_metrics), sweep_metric, profile)
    if store:
        from .results import Store, run_tables

        run_id, tables = run_tables(list(metrics), list(model_dirs), provenance, pipeline_info, tasks)
        Store(store).append(run_id, tables)
        log.info("appended run %s (%d metric values) to the results store %s", tables["runs"]["run_name"].iloc[0],
                 len(tables["metrics"]), store)


@cli.command()
@click.argument("source")
@click.argument("destination")
def mirror(source: str, destination: str) -> None:
    """Copy a dataset folder to s3://bucket/datasets/... or back, with a sha256 manifest; unchanged
    files are skipped, so an interrupted copy resumes when run again."""
    from .cloud.transfer import mirror as run

    click.echo(f"{destination}: {run(source, destination)}")


@cli.command()
@click.argument("results", type=click.Path(file_okay=False, path_type=Path))
@click.argument("destination")
def sync(results: Path, destination: str) -> None:
    """Upload a results folder to s3://bucket/results/<run-id>/ for collaborators: manifest.json
    (sha256, size), index.html, unchanged files skipped, never into another run's prefix."""
    from .cloud.transfer import sync as run

    click.echo(f"{destination.rstrip('/')}/: {run(results, destination)} (index.html lists them)")


@cli.group()
def aws() -> None:
    """Create or remove the AWS resources storm runs on (AWS Batch, S3, IAM, ECR)."""


def _deployment_options(func):
    for option in reversed([
        click.option("--deployment", required=True, help="Name of this deployment (tags and names its resources)."),
        click.option("--region", default="us-east-1", help="AWS region."),
        click.option("--bucket", required=True, help="S3 bucket for work/, results/ and datasets/."),
    ]):
        func = option(func)
    return func


@aws.command("setup")
@_deployment_options
@click.option("--cpu-instance-types", default="optimal", help="Comma-separated instance types (spot).")
@click.option("--gpu-instance-types", default="g5.xlarge,g5.2xlarge", help="Comma-separated GPU instance types.")
@click.option("--max-vcpus", default=256, help="Ceiling of each compute environment.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default="aws.config",
              help="Nextflow config with the run parameters (use with -c).")
def aws_setup(deployment: str, region: str, bucket: str, cpu_instance_types: str, gpu_instance_types: str,
              max_vcpus: int, out: Path) -> None:
    """Create what is missing; a second run changes nothing and says so."""
    from . import io
    from .cloud.aws import Deployment, config_text, setup

    params, report = setup(Deployment(deployment, region, bucket, _names(cpu_instance_types),
                                      _names(gpu_instance_types), max_vcpus))
    with io.atomic_path(out) as tmp:
        tmp.write_text(config_text(params))
    if report.created:
        click.echo(f"created {len(report.created)}: " + "; ".join(report.created))
    else:
        click.echo("no change: every resource already exists")
    click.echo(f"run with: nextflow run main.nf -profile awsbatch -c {out} ...")


@aws.command("teardown")
@_deployment_options
@click.option("--delete-bucket", is_flag=True, help="Also empty and delete the bucket (its results are lost).")
def aws_teardown(deployment: str, region: str, bucket: str, delete_bucket: bool) -> None:
    """Delete the resources tagged with this deployment, nothing else."""
    from .cloud.aws import Deployment, teardown

    removed = teardown(Deployment(deployment, region, bucket), delete_bucket=delete_bucket)
    click.echo(f"deleted {len(removed)}: " + ("; ".join(removed) or "nothing"))


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
    from .loaderbench.synth import PlateConfig, write_plates

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
    from .loaderbench.classifier import load_config, run

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
    from .loaderbench.report import build

    table = build(list(results), out_dir)
    click.echo(table.to_string(index=False))


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
    from .results import Store

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
    from .results.queries import runs

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
    from .report.build import KEY_METRICS
    from .results.queries import leaderboard

    _print_table(leaderboard(_open_store(store), list(metrics or KEY_METRICS), dataset), as_csv)


@results.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@_store_option
@click.option("--metric", "metrics", multiple=True, help="Only this metric (repeatable).")
@_csv_option
def results_compare(run_a: str, run_b: str, store: str, metrics: tuple[str, ...], as_csv: bool) -> None:
    """Two runs (names, or the start of their ids) side by side on what both scored."""
    from .results.queries import compare

    _print_table(compare(_open_store(store), run_a, run_b, list(metrics) or None), as_csv)


@results.command("export")
@click.argument("table", default="metrics")
@_store_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="CSV file to write [default: stdout].")
def results_export(table: str, store: str, out: Path | None) -> None:
    """A table of the store as CSV (metrics, runs, models, datasets, tasks, versions): its committed rows."""
    from . import io
    from .results.queries import export

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
    from .report import Provenance
    from .results import Store, run_tables

    run_id, tables = run_tables(list(metrics), [], Provenance(), run_name=run_name)
    Store(store).append(run_id, tables)
    click.echo(f"{store}: run {tables['runs']['run_name'].iloc[0]} ({run_id[:8]}), {len(tables['metrics'])} values")


@cli.command()
@click.option("--config", "show_config", metavar="MODEL", help="Print MODEL's default config as YAML instead.")
@click.option("--json", "as_json", is_flag=True, help="The table as JSON, keyed by model.")
def models(show_config: str | None, as_json: bool) -> None:
    """List the models: who implements each, the environment it runs in and whether that is
    installed here, what a retried training does, and what the model is (or print one model's
    default config)."""
    from .models import available_models, get_model_class
    from .models.environments import status

    if show_config:
        click.echo(yaml.safe_dump(get_model_class(show_config).defaults, sort_keys=False).rstrip())
        return
    header = ("model", "family", "environment", "installed", "resume", "what it is")
    rows = [header]
    for name in available_models():
        cls = get_model_class(name)
        paragraph = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        doc = re.split(r"(?<!et al)\. ", paragraph)[0].rstrip(".")  # the first sentence ('et al.' does not end one)
        rows.append((name, cls.family, cls.environment, status(cls), cls.resume, doc))
    if as_json:
        click.echo(json.dumps({row[0]: dict(zip(header[1:], row[1:])) for row in rows[1:]}, indent=2))
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


def main(argv: list[str] | None = None) -> None:
    """Entry point: a usage or input error is one `error: ...` line and exit status 2; a signal
    that stopped training exits 128 + its number (schedulers retry those); a traceback is a bug."""
    from .numba_cache import use_cache_dir

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
        from .versions import write_versions

        write_versions(_versions_file[0])
