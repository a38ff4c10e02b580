"""The pipeline on real data: PerturBench's development subset of Norman et al. 2019 (K562, CRISPRa
combinations) and McFaline-Figueroa et al. 2023 (CRISPRi in three glioblastoma lines), read from
../shared/data (see its README). One samplesheet, two datasets cut from one file by cell type, each
with the split its study calls for, one report; the learned models and the additive baseline must
beat control_mean."""

import json

import pandas as pd
import pytest

from harness import REPO, run_pipeline

DEVEL = REPO.parent / "shared" / "data" / "perturbench_devel.h5ad"
MODELS = ["control_mean", "context_mean", "additive", "perturbed_mean", "matching_mean", "linear_additive",
          "latent_additive"]


@pytest.fixture(scope="module")
def devel_run(tmp_path_factory):
    assert DEVEL.is_file(), f"the shared real data is missing: {DEVEL}"
    cwd = tmp_path_factory.mktemp("devel")
    (cwd / "samples.csv").write_text(
        "id,path,cell_types,split_strategy\n"
        f"mcfaline23_gbm,{DEVEL},A172;T98G;U87MG,transfer\n"
        f"norman19_k562,{DEVEL},k562,combo\n")
    run = run_pipeline(cwd, "--input", "samples.csv", "--batch_key", "none", "--split_seeds", "0",
                       "--models", ",".join(MODELS), timeout=3600)
    assert run.result.returncode == 0, run.output[-4000:]
    return run


def test_each_study_is_split_as_it_calls_for(devel_run):
    gbm = json.loads((devel_run.outdir / "mcfaline23_gbm" / "seed0" / "summary.json").read_text())
    k562 = json.loads((devel_run.outdir / "norman19_k562" / "seed0_combo" / "summary.json").read_text())
    assert gbm["strategy"] == "transfer" and gbm["pairs_per_split"]["test"] > 0
    assert k562["strategy"] == "combo" and k562["pairs_per_split"]["test"] > 0
    held = pd.read_csv(devel_run.outdir / "norman19_k562" / "seed0_combo" / "pairs.csv")
    held = held[(held["split"] == "test") & (held["perturbation"] != "control")]
    assert held["perturbation"].str.contains("+", regex=False).all()
    qc = json.loads((devel_run.outdir / "mcfaline23_gbm" / "qc.json").read_text())
    assert qc["cells_per_cell_type"].keys() == {"A172", "T98G", "U87MG"} and qc["scale"] == "log"


def test_learned_models_beat_control_mean(devel_run):
    summary = pd.read_csv(devel_run.outdir / "report" / "summary.csv")
    pearson = summary[summary["metric"] == "pearson_delta"].set_index(["dataset", "model"])["mean"]
    for dataset in ("mcfaline23_gbm", "norman19_k562"):
        floor = pearson[(dataset, "control_mean")]
        assert pearson[(dataset, "latent_additive")] > floor + 0.3, dataset
    assert pearson[("norman19_k562", "linear_additive")] > pearson[("norman19_k562", "control_mean")] + 0.3


def test_additive_baseline_adds_measured_singles(devel_run):
    """On K562 every held-out combination's singles were trained in K562: the additive baseline
    uses them, no fallback, and clears control_mean as the learned models do; on the glioblastoma
    transfer split each held-out perturbation is measured only in the other lines, so it falls back."""
    rules = pd.read_csv(devel_run.outdir / "norman19_k562" / "seed0_combo" / "additive" / "model" / "rules.csv")
    assert len(rules) and not rules["rule"].str.contains("fallback").any(), rules
    gbm = pd.read_csv(devel_run.outdir / "mcfaline23_gbm" / "seed0" / "additive" / "model" / "rules.csv")
    assert gbm["rule"].str.contains("fallback").all(), gbm
    summary = pd.read_csv(devel_run.outdir / "report" / "summary.csv")
    pearson = summary[summary["metric"] == "pearson_delta"].set_index(["dataset", "model"])["mean"]
    assert pearson[("norman19_k562", "additive")] > pearson[("norman19_k562", "control_mean")] + 0.3
