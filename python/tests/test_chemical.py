"""Chemical screens: a synthetic screen of real molecules, conditions (compound at dose and time)
as storm's perturbations, and the splits that hold out unseen drugs or unseen doses."""

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from storm.chem.molecules import scaffolds
from storm.chem.screen import SCREEN_SPEC, ScreenConfig, make_screen
from storm.predict import predict, write_real
from storm.spec import DatasetSpec, parse_condition
from storm.train import train
from training_inputs import check_prediction, pearson_delta, prepare_split

SPEC = json.dumps(SCREEN_SPEC)


@pytest.fixture(scope="module")
def screen(tmp_path_factory):
    """Every shipped drug at three doses in two cell lines, written by `storm synth --chemical`."""
    import subprocess
    import sys

    path = tmp_path_factory.mktemp("screen") / "screen.h5ad"
    done = subprocess.run([sys.executable, "-m", "storm", "synth", "--chemical", "--out", str(path), "--n-drugs", "49",
                           "--n-genes", "100", "--n-cell-types", "2", "--cells-per-pair", "10",
                           "--controls-per-cell-type", "60", "--doses", "0.1,1,10"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return path


def held_out(out_dir) -> pd.DataFrame:
    pairs = pd.read_csv(next(out_dir.glob("seed*/pairs.csv")))
    pairs = pairs[pairs["perturbation"] != "DMSO"]
    parts = pd.DataFrame([parse_condition(p) for p in pairs["perturbation"]], columns=["compound", "dose", "time"],
                         index=pairs.index)
    return pd.concat([pairs, parts], axis=1)


def test_structure_sets_the_effect_and_conditions_label_dose_and_time(screen, run_cli, tmp_path):
    adata = ad.read_h5ad(screen)
    treated = adata.obs["drug"] != "DMSO"
    assert (adata.obs.loc[treated, "smiles"] != "").all() and (adata.obs.loc[~treated, "smiles"] == "").all()
    assert adata.obs.groupby("drug", observed=True)["dose"].nunique().drop("DMSO").eq(3).all()
    done = run_cli("validate", "--input", str(screen), "--out", str(tmp_path / "qc.json"), "--spec", SPEC)
    assert done.returncode == 0, done.stderr
    done = run_cli("prepare", "--input", str(screen), "--out", str(tmp_path / "p.h5ad"), "--spec", SPEC)
    assert done.returncode == 0, done.stderr
    obs = ad.read_h5ad(tmp_path / "p.h5ad", backed="r").obs
    row = obs[obs["drug"] == "imatinib"].iloc[0]
    assert row["perturbation"] == f"imatinib|dose={row['dose']:g}|time=24" and row["compound"] == "imatinib"
    assert (obs.loc[obs["drug"] == "DMSO", "perturbation"] == "DMSO").all()
    assert obs["perturbation"].nunique() == 49 * 3 + 1


def test_similar_molecules_have_similar_effects():
    """Statins differ by a methyl group; their effects correlate far more than unrelated drugs'."""
    adata = make_screen(ScreenConfig(n_drugs=49, n_genes=200, n_cell_lines=1, doses=(10.0,), bulk=True,
                                     cells_per_condition=4, bulk_noise=0.05))
    means = pd.DataFrame(adata.X, index=adata.obs["drug"].astype(str)).groupby(level=0).mean()
    shift = means - means.loc["DMSO"]
    related = np.corrcoef(shift.loc["simvastatin"], shift.loc["lovastatin"])[0, 1]
    unrelated = np.corrcoef(shift.loc["simvastatin"], shift.loc["metformin"])[0, 1]
    assert related > 0.7 and related > unrelated + 0.4


@pytest.mark.parametrize("groups", ["compound", "scaffold"])
def test_unseen_drug_holds_out_whole_compounds(screen, run_cli, tmp_path, groups):
    done = run_cli("split", "--input", str(screen), "--out-dir", str(tmp_path), "--strategy", "unseen_drug",
                   "--compound-groups", groups, "--heldout-fraction", "0.3", "--spec", SPEC)
    assert done.returncode == 0, done.stderr
    pairs = held_out(tmp_path)
    train, held = pairs[pairs["split"] == "train"], pairs[pairs["split"] != "train"]
    assert set(held["split"]) == {"val", "test"}
    assert not set(held["compound"]) & set(train["compound"])
    assert held.groupby("compound")["cell_type"].nunique().eq(2).all()  # in every cell line
    if groups == "scaffold":
        smiles = ad.read_h5ad(screen, backed="r").obs.drop_duplicates("drug").set_index("drug")["smiles"].astype(str)
        scaffold = scaffolds(smiles.drop("DMSO"))
        held_scaffolds = set(scaffold[sorted(set(held["compound"]))])
        assert not held_scaffolds & set(scaffold[sorted(set(train["compound"]))])
    assert (tmp_path / next(tmp_path.glob("seed*")).name / "split.png").is_file()


def test_unseen_dose_holds_out_doses_seen_at_others(screen, run_cli, tmp_path):
    done = run_cli("split", "--input", str(screen), "--out-dir", str(tmp_path / "top"), "--strategy", "unseen_dose",
                   "--spec", SPEC)
    assert done.returncode == 0, done.stderr
    pairs = held_out(tmp_path / "top")
    held, train = pairs[pairs["split"] != "train"], pairs[pairs["split"] == "train"]
    assert len(held) and (held["dose"] == 10).all()
    seen = set(zip(train["cell_type"], train["compound"]))
    assert all((line, compound) in seen for line, compound in zip(held["cell_type"], held["compound"]))
    done = run_cli("split", "--input", str(screen), "--out-dir", str(tmp_path / "mid"), "--strategy", "unseen_dose",
                   "--heldout-doses", "1", "--spec", SPEC)
    assert done.returncode == 0, done.stderr
    assert (held_out(tmp_path / "mid").query("split != 'train'")["dose"] == 1).all()


def test_chemical_splits_need_their_columns(screen, run_cli, small_h5ad, tmp_path):
    genetic = json.dumps({"batch_key": "batch"})
    done = run_cli("split", "--input", str(small_h5ad), "--out-dir", str(tmp_path), "--strategy", "unseen_dose",
                   "--spec", genetic)
    assert done.returncode == 2 and "unseen_dose needs doses: set the dataset spec's dose_key" in done.stderr
    done = run_cli("split", "--input", str(screen), "--out-dir", str(tmp_path), "--strategy", "unseen_drug",
                   "--compound-groups", "scaffold", "--spec", json.dumps({**SCREEN_SPEC, "smiles_key": None}))
    assert done.returncode == 2 and "scaffold groups need SMILES" in done.stderr
    adata = ad.read_h5ad(screen)
    adata.obs["drug"] = adata.obs["drug"].astype(str).replace({"aspirin": "asp|irin"})
    adata.write_h5ad(tmp_path / "piped.h5ad")
    done = run_cli("validate", "--input", str(tmp_path / "piped.h5ad"), "--out", str(tmp_path / "qc.json"),
                   "--spec", SPEC)
    assert done.returncode == 2 and "perturbation 'asp|irin' holds '|'" in done.stderr



def test_molecule_features_predict_drugs_never_trained_on(tmp_path):
    """On unseen drugs a one-hot model can only fall back to the control; the same network fed
    the molecule (with chemCPA's learned dose response) predicts their effects from structure."""
    adata = make_screen(ScreenConfig(n_genes=120, n_cell_lines=2, n_drugs=40, doses=(1.0, 10.0),
                                     cells_per_condition=10, controls_per_cell_line=80))
    files = prepare_split(adata, tmp_path, n_top_genes=120, spec=DatasetSpec(**SCREEN_SPEC),
                          strategy="unseen_drug", heldout_fraction=0.3)
    scores = {}
    for encoder in ("onehot", "molecule"):
        out = tmp_path / encoder
        meta = train(*files, "linear_additive", out / "model", seed=0,
                     config={"accelerator": "cpu", "molecule.encoder": encoder})
        predict(*files, out / "model", out / "pred" / "pred.h5ad", seed=0)
        write_real(*files, out / "pred" / "real.h5ad")
        check_prediction(out / "pred", meta["genes"])
        scores[encoder] = pearson_delta(out / "pred", control="DMSO")
    assert scores["molecule"] > scores["onehot"] + 0.15, scores


@pytest.mark.parametrize("name,budget,floor", [("chemcpa", {"min_steps": 300, "patience": 3}, 0.3),
                                               ("transigen", {"min_steps": 300, "patience": 3}, 0.3),
                                               ("multidcp", {"patience": 3}, 0.15),
                                               ("flow_matching", {"min_steps": 300, "patience": 3, "hidden_dim": 128,
                                                                  "ode_steps": 8}, 0.15)])
def test_chemical_models_predict_drugs_never_trained_on(tmp_path, name, budget, floor):
    """chemCPA, TranSiGen, MultiDCP and flow matching read the molecule: on unseen drugs they predict the
    direction of the change, where a one-hot model scores about zero (the test above)."""
    adata = make_screen(ScreenConfig(n_genes=120, n_cell_lines=2, n_drugs=40, doses=(1.0, 10.0),
                                     cells_per_condition=10, controls_per_cell_line=80))
    files = prepare_split(adata, tmp_path, n_top_genes=120, spec=DatasetSpec(**SCREEN_SPEC),
                          strategy="unseen_drug", heldout_fraction=0.3)
    meta = train(*files, name, tmp_path / "model", seed=0, config={"accelerator": "cpu", **budget})
    predict(*files, tmp_path / "model", tmp_path / "pred" / "pred.h5ad", seed=0)
    write_real(*files, tmp_path / "pred" / "real.h5ad")
    check_prediction(tmp_path / "pred", meta["genes"])
    assert pearson_delta(tmp_path / "pred", control="DMSO") > floor


def test_prepare_takes_molecule_embeddings_from_a_table(screen, run_cli, tmp_path):
    drugs = sorted(set(ad.read_h5ad(screen, backed="r").obs["drug"].astype(str)) - {"DMSO"})
    table = pd.DataFrame(np.random.default_rng(0).normal(size=(len(drugs), 5)), index=drugs)
    table.columns = [f"e{i}" for i in range(5)]
    table.to_parquet(tmp_path / "kpgt.parquet")
    out = tmp_path / "p.h5ad"
    done = run_cli("prepare", "--input", str(screen), "--out", str(out), "--spec", SPEC,
                   "--molecule-embeddings", str(tmp_path / "kpgt.parquet"))
    assert done.returncode == 0, done.stderr
    stored = ad.read_h5ad(out).uns["storm"]["molecules"]
    assert list(stored["columns"]) == list(table.columns)
    np.testing.assert_allclose(stored["features"], table.loc[list(stored["compounds"])].to_numpy(), rtol=1e-6)
    table.drop(index="imatinib").to_parquet(tmp_path / "short.parquet")
    done = run_cli("prepare", "--input", str(screen), "--out", str(tmp_path / "q.h5ad"), "--spec", SPEC,
                   "--molecule-embeddings", str(tmp_path / "short.parquet"))
    assert done.returncode == 2 and "have no row in short.parquet, e.g. 'imatinib'" in done.stderr
    assert not (tmp_path / "q.h5ad").exists()


def test_bulk_screen_unseen_doses_from_compound_identity(tmp_path):
    """A bulk screen with compound ids and no structures (as a LINCS plate): the dose stays a
    number beside the compound's one-hot, so held-out doses of seen drugs are predicted (a
    one-hot of whole labels knows nothing of them), and evaluation keeps to the metrics of means,
    per condition and per drug, with a note in the report."""
    from storm.evaluate import build_reference, evaluate
    from storm.report import build_report

    adata = make_screen(ScreenConfig(n_genes=100, n_cell_lines=2, n_drugs=20, doses=(0.1, 1.0, 3.0, 10.0), bulk=True,
                                     cells_per_condition=3, controls_per_cell_line=12))
    del adata.obs["smiles"]
    spec = DatasetSpec(**{k: v for k, v in SCREEN_SPEC.items() if k != "smiles_key"})
    files = prepare_split(adata, tmp_path, n_top_genes=100, spec=spec, strategy="unseen_dose", min_cells=1,
                          heldout_doses=(1.0, 3.0))  # two held-out doses: a curve to score
    metrics = []
    for encoder in ("onehot", "auto"):
        out = tmp_path / encoder
        train(*files, "linear_additive", out / "model", seed=0,
              config={"accelerator": "cpu", "molecule.encoder": encoder, "min_steps": 300})
        predict(*files, out / "model", out / "pred.h5ad", seed=0)
        write_real(*files, out / "real.h5ad")
        build_reference(out / "real.h5ad", out / "reference", threads=1)
        table = evaluate(out / "pred.h5ad", out / "real.h5ad", "bulk", 0, encoder, reference=out / "reference")
        metrics.append(table)
        assert not list((out / "reference").glob("*_real_de.csv"))  # no DE tests on bulk profiles
    table = pd.concat(metrics)
    names = set(table["metric"])
    assert {"pearson_delta", "top20_deg_r2", "top100_deg_r2", "drug_top50_deg_r2", "dose_response_error"} <= names
    assert not names & {"overlap_at_N", "pearson_edistance", "energy_distance_pca", "clustering_agreement"}
    drugs = table[table["perturbation"].str.startswith("(drug) ")]
    assert drugs["perturbation"].str.endswith("|time=24").all()
    score = table[table["metric"] == "pearson_delta"].groupby("model")["value"].mean()
    assert score["auto"] > 0.5 and score["auto"] > score["onehot"] + 0.3, score
    error = table[table["metric"] == "dose_response_error"].groupby("model")["value"].mean()
    assert error["auto"] < error["onehot"], error
    paths = []
    for model, frame in table.groupby("model"):
        paths.append(tmp_path / f"{model}.csv")
        frame.to_csv(paths[-1], index=False)
    build_report(paths, tmp_path / "report")
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Bulk profiles." in page and "dose_response_error" in page
