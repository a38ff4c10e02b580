"""`storm split`: cells to train / val / test at the (covariates, perturbation) pair level."""

from __future__ import annotations

from pathlib import Path

import click

from ..spec import SPLIT_EXPORTS, DatasetSpec
from ..split.core import SplitParams
from ..split.strategies import STRATEGIES, describe_strategies
from .base import cli, comma_floats, comma_list, default, log, spec_options


@cli.command()
@click.option("--input", "inputs", required=True, multiple=True,
              help="Where to read obs: an h5ad (its obs group only), a parquet or a CSV/TSV table; local or s3://. "
                   "A sharded dataset: repeat it for each shard, in order.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Parent folder; the split goes into <out-dir>/seed<N>[_<strategy>].")
@click.option("--seed", default=default(SplitParams, "seed"), help="The same seed gives the same split.")
@click.option("--strategy", default=default(SplitParams, "strategy"), type=click.Choice(list(STRATEGIES)),
              help=f"What is held out: {describe_strategies()}.")
@click.option("--covariate-keys", default="", help="Comma-separated covariate columns; the first is the cell "
              "type. Default: the cell type column.")
@click.option("--min-cells", default=default(SplitParams, "min_cells"), help="Pairs with fewer cells stay in training.")
@click.option("--min-controls", default=default(SplitParams, "min_controls"),
              help="Cell types with fewer controls keep all their pairs in training.")
@click.option("--max-heldout-fraction-per-covariate",
              default=default(SplitParams, "max_heldout_fraction_per_covariate"),
              help="transfer: at most this share of a covariate's perturbations is held out.")
@click.option("--max-heldout-covariates", default=default(SplitParams, "max_heldout_covariates"),
              help="transfer: held-out covariates per perturbation.")
@click.option("--min-train-covariates", default=default(SplitParams, "min_train_covariates"),
              help="A held-out perturbation stays in training in at least this many other covariates (0: no rule).")
@click.option("--heldout-fraction", default=default(SplitParams, "heldout_fraction"),
              help="combo/combo_inverse: share of eligible pairs held out; unseen_drug: share of compound groups.")
@click.option("--compound-groups", default=default(SplitParams, "compound_groups"),
              type=click.Choice(["compound", "scaffold"]),
              help="unseen_drug: hold out compounds one by one, or with every compound of the same Bemis-Murcko "
                   "scaffold (needs the spec's smiles_key).")
@click.option("--heldout-doses", default="", help="unseen_dose: the doses to hold out, comma-separated "
                                                  "(default: each compound's highest).")
@click.option("--whole-time-courses", is_flag=True,
              help="transfer: hold a compound out in a cell type at all its time points (needs the spec's time_key).")
@click.option("--test-fraction", default=default(SplitParams, "test_fraction"),
              help="Share of held-out pairs (or cell types) sent to test, not val.")
@click.option("--control-fractions", default=default(SplitParams, "control_fractions"),
              help="train,val,test shares of each cell type's controls.")
@click.option("--zeroshot-cell-types", default="", help="zeroshot: comma-separated cell types to hold out.")
@click.option("--n-zeroshot", default=default(SplitParams, "n_zeroshot"),
              help="zeroshot: cell types drawn by the seed when none are named.")
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
@click.option("--name-only", is_flag=True,
              help="Only print the folder the split goes into (seed<N>[_<strategy>]); read nothing.")
@spec_options
def split(inputs: tuple[str, ...], out_dir: Path, seed: int, exports: tuple[str, ...], dataset_name: str,
          dataset_path: str, check_only: bool, name_only: bool, spec: DatasetSpec, **options) -> None:
    """Split cells at the (covariates, perturbation) pair level, reading only obs.

    Writes split.parquet (every cell's split), pairs.csv, summary.json and split.png, and the
    --export files, after checking every invariant (a violation is an error).
    """
    from ..split import make_split, split_name, write_split
    from ..split.obs import read_split_obs

    if name_only:
        click.echo(split_name(options["strategy"], seed))
        return
    remote = inputs[0].startswith("s3://")
    if remote:  # run outside Nextflow's staging: fetch them ourselves
        from ..cloud.s3 import fetch

        paths = [fetch(path) for path in inputs]
    else:
        paths = [Path(path) for path in inputs]
    params, holdouts = split_params(spec=spec, input_path=paths, seed=seed, **options)
    if check_only:
        log.info("split options check out")
        return
    obs = read_split_obs(paths, spec, params.covariate_keys)
    result = make_split(obs, params, **holdouts)
    default_name = inputs[0].rstrip("/").rsplit("/", 1)[-1].split(".")[0]
    default_path = ",".join(inputs) if remote else ",".join(str(p.resolve()) for p in paths)
    write_split(result, obs.cell_ids, out_dir / result.name, params.covariate_keys, spec,
                dataset_name or default_name, dataset_path or default_path, seed, list(exports))
    click.echo(result.name)


#: the split command's options that shape the split (what `storm check` checks)
SPLIT_SHAPE_OPTIONS = {"strategy", "covariate_keys", "min_cells", "min_controls", "max_heldout_fraction_per_covariate",
                  "max_heldout_covariates", "min_train_covariates", "heldout_fraction", "test_fraction",
                  "control_fractions", "zeroshot_cell_types", "n_zeroshot", "manual_holdout", "split_file",
                  "compound_groups", "heldout_doses", "whole_time_courses"}


def split_params(spec: DatasetSpec, input_path: Path | list[Path], seed: int = 0, **options):
    """Split parameters from the split command's options, checked with everything they refer to
    (columns, the holdout or split file) without splitting; returns them and the holdout files."""
    from ..split import SplitParams, check_split_inputs

    params = SplitParams(
        spec=spec, covariate_keys=comma_list(options["covariate_keys"]), strategy=options["strategy"], seed=seed,
        min_cells=options["min_cells"], min_controls=options["min_controls"],
        max_heldout_fraction_per_covariate=options["max_heldout_fraction_per_covariate"],
        max_heldout_covariates=options["max_heldout_covariates"],
        min_train_covariates=options["min_train_covariates"], heldout_fraction=options["heldout_fraction"],
        test_fraction=options["test_fraction"], control_fractions=comma_floats(options["control_fractions"]),
        zeroshot_covariates=comma_list(options["zeroshot_cell_types"]), n_zeroshot=options["n_zeroshot"],
        compound_groups=options["compound_groups"], heldout_doses=comma_floats(options["heldout_doses"]),
        whole_time_courses=options["whole_time_courses"],
    )
    holdouts = {"manual_holdout": options["manual_holdout"], "split_file": options["split_file"]}
    check_split_inputs(params, input_path, **holdouts)
    return params, holdouts
