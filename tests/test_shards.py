"""A dataset stored as several h5ad files (shards, as Tahoe's plates) runs one task per shard up to
PREPARE and is read as one dataset after, never concatenated: the same split, sample, genes and
metrics as the same cells in one file, for a genetic and a chemical screen."""

import json
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from harness import run_pipeline, step
from storm import io

GENETIC = {"args": ["--n-genes", "80", "--n-cell-types", "3", "--n-perturbations", "6", "--cells-per-pair", "30",
                    "--controls-per-cell-type", "60"],
           "columns": "perturbation_key,cell_type_key,control_value,batch_key,split_strategy",
           "spec": "perturbation,cell_type,control,batch,transfer",
           "models": "control_mean,linear_additive", "model_set": "linear_additive.max_epochs=3"}
CHEMICAL = {"args": ["--chemical", "--n-genes", "80", "--n-cell-types", "2", "--n-drugs", "6", "--cells-per-pair",
                     "12", "--controls-per-cell-type", "40", "--doses", "0.1,1,10"],
            "columns": ("perturbation_key,cell_type_key,control_value,batch_key,dose_key,time_key,smiles_key,"
                        "split_strategy"),
            "spec": "drug,cell_line,DMSO,batch,dose,time,smiles,unseen_drug",
            "models": "control_mean,chemcpa", "model_set": "chemcpa.max_epochs=2"}


def _sheet(tmp_path, name: str, path: str, screen: dict):
    (tmp_path / f"{name}.csv").write_text(f"id,path,{screen['columns']}\nscreen,{path},{screen['spec']}\n")
    return tmp_path / f"{name}.csv"


def _outputs(run) -> dict:
    split = next((run.outdir / "screen").glob("seed0*"))
    metrics = pd.concat([pd.read_csv(p) for p in sorted(split.glob("*/metrics.csv"))], ignore_index=True)
    return {"split": pd.read_parquet(split / "split.parquet"), "genes": pd.read_csv(split / "genes.csv"),
            "metrics": metrics.sort_values(["model", "cell_type", "perturbation", "metric"], ignore_index=True)}


@pytest.mark.parametrize("screen", [GENETIC, CHEMICAL], ids=["genetic", "chemical"])
def test_three_shards_give_what_one_file_gives(tmp_path, screen):
    whole = tmp_path / "whole.h5ad"
    done = subprocess.run([sys.executable, "-m", "storm", "synth", "--out", str(whole), *screen["args"]],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    adata = ad.read_h5ad(whole)
    (tmp_path / "plates").mkdir()
    cuts = np.array_split(np.random.default_rng(0).permutation(adata.n_obs), 3)  # shards mix every group
    order = np.concatenate(cuts)
    io.write_h5ad(adata[order].copy(), whole)  # the one file holds the shards' cells in their order
    for number, rows in enumerate(cuts, start=1):
        io.write_h5ad(adata[rows].copy(), tmp_path / "plates" / f"plate{number}.h5ad")
    args = ["--split_seeds", "0", "--min_cells", "1", "--n_top_genes", "40", "--models", screen["models"],
            "--model_set", screen["model_set"], "--max_cells_per_pair", "10"]
    one = run_pipeline(tmp_path / "one", "--input", str(_sheet(tmp_path, "one", str(whole), screen)), *args,
                       timeout=1800)
    assert one.result.returncode == 0, one.output[-4000:]
    sharded = run_pipeline(tmp_path / "sharded", "--input",
                           str(_sheet(tmp_path, "sharded", str(tmp_path / "plates" / "plate*.h5ad"), screen)), *args,
                           timeout=1800)
    assert sharded.result.returncode == 0, sharded.output[-4000:]

    # one task per shard up to PREPARE, one per dataset after
    tasks = pd.Series([step(r) for r in sharded.trace()]).value_counts()
    assert tasks["SUBSAMPLE"] == tasks["VALIDATE"] == tasks["PREPARE"] == 3
    assert tasks["COMBINE_QC"] == tasks["SPLIT"] == tasks["GENES"] == 1
    qc = json.loads((sharded.outdir / "screen" / "qc.json").read_text())
    kept = sum(json.loads((sharded.outdir / "screen" / "shards" / f"plate{n}" / "subsample.json").read_text())
               ["n_cells_kept"] for n in (1, 2, 3))
    assert qc["n_cells"] == kept == json.loads((one.outdir / "screen" / "qc.json").read_text())["n_cells"]
    assert [s["dataset"] for s in qc["shards"]] == ["plate1", "plate2", "plate3"]

    a, b = _outputs(one), _outputs(sharded)
    pd.testing.assert_frame_equal(a["split"], b["split"])  # the same sample (caps on the dataset) and split
    pd.testing.assert_frame_equal(a["genes"], b["genes"])
    pd.testing.assert_frame_equal(a["metrics"].drop(columns="value"), b["metrics"].drop(columns="value"))
    np.testing.assert_allclose(a["metrics"]["value"], b["metrics"]["value"], rtol=1e-4, atol=1e-5)


def test_cell_ids_repeated_across_shards_are_refused(tmp_path):
    from storm.errors import InputError
    from storm.spec import DatasetSpec
    from storm.split.obs import read_split_obs
    from storm.synth import SynthConfig, make_synthetic

    adata = make_synthetic(SynthConfig(n_genes=60, n_perturbations=4, n_cell_types=2, cells_per_pair=5,
                                       controls_per_cell_type=10))
    for name, rows in (("a", slice(0, 30)), ("b", slice(20, 50))):
        io.write_h5ad(adata[rows].copy(), tmp_path / f"{name}.h5ad")
    with pytest.raises(InputError, match="is in a.h5ad and b.h5ad; cell ids must be unique across a dataset's shards"):
        read_split_obs([tmp_path / "a.h5ad", tmp_path / "b.h5ad"], DatasetSpec(), ["cell_type"])
