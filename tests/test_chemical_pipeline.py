"""A bulk chemical screen through the pipeline: unseen doses, a molecule-reading model, the
metrics of means per condition and per drug, and no single-cell metric asked of bulk profiles."""

import subprocess
import sys

import pandas as pd

from harness import run_pipeline

SHEET = """id,path,perturbation_key,cell_type_key,control_value,batch_key,dose_key,time_key,smiles_key,split_strategy
screen,{path},drug,cell_line,DMSO,batch,dose,time,smiles,unseen_dose
"""


def test_bulk_screen_with_unseen_doses(tmp_path):
    screen = tmp_path / "screen.h5ad"
    done = subprocess.run([sys.executable, "-m", "storm", "synth", "--chemical", "--bulk", "--out", str(screen),
                           "--n-genes", "80", "--n-cell-types", "2", "--n-drugs", "12", "--cells-per-pair", "2",
                           "--controls-per-cell-type", "8", "--doses", "0.1,1,3,10"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (tmp_path / "sheet.csv").write_text(SHEET.format(path=screen))
    run = run_pipeline(tmp_path, "--input", str(tmp_path / "sheet.csv"), "--split_seeds", "0", "--min_cells", "1",
                       "--n_top_genes", "80", "--models", "control_mean,chemcpa", "--model_set", "chemcpa.max_epochs=3",
                       "--split_args", "--heldout-doses 1,3", timeout=1800)
    assert run.result.returncode == 0, run.output[-5000:]
    split = run.outdir / "screen" / "seed0_unseen_dose"
    assert "bulk profiles, no DE" in (split / "reference.log").read_text()  # no DE tests on bulk profiles
    metrics = pd.read_csv(split / "chemcpa" / "metrics.csv")
    names = set(metrics["metric"])
    assert {"pearson_delta", "top50_deg_r2", "drug_top100_deg_r2", "dose_response_error"} <= names
    assert not names & {"overlap_at_N", "pearson_edistance", "energy_distance_pca"}
    drugs = metrics[metrics["perturbation"].str.startswith("(drug) ") & (metrics["metric"] == "dose_response_error")]
    # a curve where both held-out doses of a drug fell in the test split (val takes some)
    assert drugs["value"].notna().any()
    assert "Bulk profiles." in (run.outdir / "report" / "report.html").read_text()
