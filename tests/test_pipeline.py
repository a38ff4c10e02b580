"""The pipeline end to end on real Nextflow: the test profile, -resume, -stub-run, bad input."""

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest

from harness import REPO, nextflow_bin, run_pipeline, step

MODELS = ["control_mean", "context_mean", "linear_additive", "decoder_only", "state"]
SEEDS = ["seed0", "seed1"]


def test_outputs_laid_out(test_profile_run):
    out = test_profile_run.outdir
    for name in ("qc.json", "check.log", "validate.log", "prepare.log"):
        assert (out / "synthetic" / name).is_file(), name
    for seed in SEEDS:
        split = out / "synthetic" / seed
        for name in ("split.parquet", "pairs.csv", "summary.json", "state.toml", "state_tx_train.sh", "split.png",
                     "genes.csv", "real.h5ad", "split.log", "genes.log", "reference.log"):
            assert (split / name).is_file(), name
        assert not (split / "perturbench_split.csv").exists()  # the big export only when asked for
        real = ad.read_h5ad(split / "real.h5ad")  # written once per split, shared by every model
        assert list(real.var_names) == pd.read_csv(split / "genes.csv")["gene"].tolist()
        for model in MODELS:
            folder = split / model
            assert (folder / "model" / "model.json").is_file()
            assert {p.name for p in folder.glob("*.log")} == {"train.log", "predict.log", "evaluate.log"}
            assert not (folder / "real.h5ad").exists() and not (folder / "versions.yml").exists()
            metrics = pd.read_csv(folder / "metrics.csv")
            assert set(metrics["model"]) == {model} and {"pearson_delta", "vcc_score"} <= set(metrics["metric"])
            pred = ad.read_h5ad(folder / "pred.h5ad")
            assert list(pred.var_names) == list(real.var_names)
            cells = ad.read_h5ad(folder / "cells.h5ad")  # the report's map of real and predicted cells
            assert cells.uns["sample"]["model"] == model and list(cells.var_names) == list(real.var_names)
    assert (out / "synthetic" / "seed0" / "linear_additive" / "model" / "train_log.csv").is_file()
    report = out / "report"
    for name in ("report.html", "summary.csv", "comparisons.csv", "leaders.txt", "training_stability.csv"):
        assert (report / name).is_file()
    for name in ("synthetic_models.png", "synthetic_phenotypes_pearson_delta.png", "synthetic_cells.png",
                 "training_curves.png", "training_steps.png", "task_resources.png"):
        assert (report / "figures" / name).is_file()
    # the Lightning models log every step (state trains with arc-state's own trainer)
    assert set(pd.read_csv(report / "training_stability.csv")["model"]) == {"linear_additive", "decoder_only"}
    info = out / "pipeline_info"
    for prefix in ("execution_trace_", "execution_timeline_", "execution_report_"):
        assert list(info.glob(f"{prefix}*")), prefix


def test_task_logs_are_clean(test_profile_run):
    """Each task's log is beside its outputs, without the libraries' banners; what a task prints
    (Nextflow keeps it in .command.err) has each line once, in storm's format."""
    for log in test_profile_run.outdir.glob("synthetic/seed0/*/train.log"):
        text = log.read_text()
        assert "trained" in text and len(text.splitlines()) < 200, log
        for noise in ("Tip:", "GPU available", "srun", "litlogger", "cumulative FLOPs"):
            assert noise not in text, (log, noise)
    for row in test_profile_run.trace():
        if step(row) == "TRAIN":
            err = next((test_profile_run.cwd / "work").glob(row["hash"] + "*/.command.err")).read_text()
            assert "INFO: " not in err, row["name"]  # a library's own handler, printing a second copy
            lines = [line for line in err.splitlines() if line.strip()]
            assert not any(a == b for a, b in zip(lines, lines[1:])), row["name"]


def test_provenance_and_versions(test_profile_run):

    import yaml

    info = test_profile_run.outdir / "pipeline_info"
    params = json.loads((info / "params.json").read_text())
    assert params["input"] == "synthetic" and params["split_seeds"] == "0,1" and "help" not in params
    versions = yaml.safe_load((info / "software_versions.yml").read_text())
    steps = {"CHECK", "VALIDATE", "SPLIT", "PREPARE", "GENES", "REFERENCE", "TRAIN", "PREDICT", "EVALUATE", "VERDICT",
             "REPORT"}
    assert steps <= set(versions)
    assert "torch" in versions["TRAIN"] and "cell-eval" in versions["EVALUATE"] and "torch" not in versions["SPLIT"]
    page = (test_profile_run.outdir / "report" / "report.html").read_text()
    assert page.index("Provenance") < page.index("<h2>synthetic</h2>") < page.index("Glossary")
    for fact in ("Nextflow", "24.10", "storm synth", "n_top_genes", "cell-eval", "mean over seeds"):
        assert fact in page, fact
    assert "what it is blind to" in page and "discrimination_score_l1" in page.split("Glossary")[1]
    # the run's last words name the best model per key metric, beside the report's path
    assert "storm: best on synthetic: pearson_delta " in test_profile_run.output
    # and the verdict: whether a model beats every baseline (control_mean, context_mean), with n and its unit
    verdict = pd.read_csv(test_profile_run.outdir / "report" / "verdict.csv").iloc[0]
    assert verdict["verdict"] in {"winner", "none", "underpowered"} and verdict["n"] > 0
    assert f"storm: verdict on synthetic: {verdict['statement']}" in test_profile_run.output
    assert "<b>Verdict:</b>" in page
    assert "report: " in test_profile_run.output.splitlines()[-1]


def test_learned_models_beat_the_floor(test_profile_run):
    summary = pd.read_csv(test_profile_run.outdir / "report" / "summary.csv")
    pearson = summary[summary["metric"] == "pearson_delta"].set_index("model")["mean"]
    for model in ("context_mean", "linear_additive", "decoder_only", "state"):
        assert pearson[model] > pearson["control_mean"] + 0.1, model


def test_one_task_per_grid_cell(test_profile_run):
    processes = pd.Series([step(row) for row in test_profile_run.trace()]).value_counts()
    assert processes["CHECK"] == processes["VALIDATE"] == processes["PREPARE"] == 1
    assert processes["SPLIT"] == processes["GENES"] == len(SEEDS)
    for name in ("TRAIN", "PREDICT", "EVALUATE"):
        assert processes[name] == len(SEEDS) * len(MODELS)
    assert processes["REFERENCE"] == len(SEEDS)  # real cells, DE and baseline once per split
    assert processes["REPORT"] == 1


def test_resume_runs_no_task(test_profile_run):
    again = run_pipeline(test_profile_run.cwd, "-profile", "test", "-resume")
    assert again.result.returncode == 0, again.output[-3000:]
    rows = again.trace()
    assert rows and all(row["status"] == "CACHED" for row in rows), [r["name"] for r in rows if r["status"] != "CACHED"]
    assert len(rows) == len(test_profile_run.trace())


SWEEP = ["linear_additive@lr=1e-3", "linear_additive@lr=5e-2"]


def foreign_prediction(pred: Path, out: Path) -> Path:
    """storm's pred.h5ad as another tool writes one: its own column names and control label, genes
    in another order, no storm metadata."""
    adata = ad.read_h5ad(pred)
    obs = pd.DataFrame({"target_gene": adata.obs["perturbation"].astype(str).replace("control", "non-targeting"),
                        "celltype": adata.obs["cell_type"].astype(str)}, index=adata.obs_names)
    genes = list(adata.var_names[::-1])
    ad.AnnData(X=adata[:, genes].X, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(out)
    return out


@pytest.fixture(scope="module")
def sweep_run(test_profile_run, tmp_path_factory):
    """A second run, elsewhere, into the first run's store: seed 0 of the same data, context_mean,
    a sweep of linear_additive's learning rate, and the first run's context_mean prediction of
    seed 0 rewritten as another tool's (--predictions)."""
    cwd = tmp_path_factory.mktemp("sweep")
    pred = foreign_prediction(test_profile_run.outdir / "synthetic" / "seed0" / "context_mean" / "pred.h5ad",
                              cwd / "tool_pred.h5ad")
    (cwd / "predictions.csv").write_text("dataset,seed,model,path,pert_col,control_pert,celltype_col\n"
                                         f"synthetic,0,other_tool,{pred.name},target_gene,non-targeting,celltype\n")
    run = run_pipeline(cwd, "-profile", "test", "--split_seeds", "0", "--predictions", "predictions.csv",
                       "--models", "context_mean,linear_additive", "--store", str(test_profile_run.cwd / "storm-store"),
                       "--model_set", "linear_additive.max_epochs=15 linear_additive.lr=1e-3|5e-2")
    assert run.result.returncode == 0, run.output[-3000:]
    return run


def test_another_tool_s_predictions_score_beside_the_models(sweep_run, test_profile_run):
    """The foreign copy of context_mean's prediction scores exactly as context_mean did, in the
    same report."""
    theirs = pd.read_csv(sweep_run.outdir / "synthetic" / "seed0" / "other_tool" / "metrics.csv")
    ours = pd.read_csv(test_profile_run.outdir / "synthetic" / "seed0" / "context_mean" / "metrics.csv")
    pd.testing.assert_frame_equal(theirs.drop(columns="model"), ours.drop(columns="model"), atol=1e-9, rtol=1e-9)
    assert "other_tool" in set(pd.read_csv(sweep_run.outdir / "report" / "summary.csv")["model"])


def test_a_sweep_chooses_each_split_s_configuration_on_its_validation_pairs(sweep_run):
    trained = {row["tag"].split()[-1] for row in sweep_run.trace() if step(row) == "TRAIN"}
    assert trained == {"context_mean", *SWEEP}  # each configuration its own task
    choices = pd.read_csv(sweep_run.outdir / "report" / "sweeps.csv")
    assert set(choices["configuration"]) == set(SWEEP) and choices["chosen"].sum() == 1
    best = choices.loc[choices["val_mean"].idxmax()]
    assert best["chosen"] and best["val_pairs"] > 0
    val = pd.read_csv(sweep_run.outdir / "synthetic" / "seed0" / best["configuration"] / "val" / "metrics.csv")
    assert val.loc[val["metric"] == "pearson_delta", "value"].mean() == pytest.approx(best["val_mean"])
    # the report shows the chosen configuration's test metrics under the model's name, and only those
    summary = pd.read_csv(sweep_run.outdir / "report" / "summary.csv")
    assert set(summary["model"]) == {"context_mean", "linear_additive", "other_tool"}
    test = pd.read_csv(sweep_run.outdir / "synthetic" / "seed0" / best["configuration"] / "metrics.csv")
    shown = summary.set_index(["model", "metric"]).loc[("linear_additive", "pearson_delta"), "mean"]
    assert shown == pytest.approx(test.loc[test["metric"] == "pearson_delta", "value"].mean())
    page = (sweep_run.outdir / "report" / "report.html").read_text()
    assert "<h2>Sweeps</h2>" in page and all(name in page for name in SWEEP)


#: what a panel must show to count as drawn: more than this share of its pixels off its commonest colour
DRAWN = 0.005
IMAGES = """() => Array.from(document.images).map(img => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const context = canvas.getContext('2d');
    let off = 0;
    if (img.naturalWidth) {
        context.drawImage(img, 0, 0);
        const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data, counts = new Map();
        for (let i = 0; i < pixels.length; i += 4) {
            const key = pixels[i] << 16 | pixels[i + 1] << 8 | pixels[i + 2];
            counts.set(key, (counts.get(key) || 0) + 1);
        }
        off = 1 - Math.max(...counts.values()) / (pixels.length / 4);
    }
    return {alt: img.alt, complete: img.complete, width: img.naturalWidth, off: off};
})"""


def test_the_report_renders_in_a_browser(sweep_run):
    """report.html in headless Chromium: every image loads and draws something, every section has
    content, nothing fails in the page's console."""
    from playwright.sync_api import sync_playwright

    browser_bin = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    assert browser_bin, "no Chromium: `make test-deps` installs chromium-headless-shell"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_bin, args=["--no-sandbox"])
        page = browser.new_page()
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto((sweep_run.outdir / "report" / "report.html").as_uri())
        page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        images = page.evaluate(IMAGES)
        sections = page.evaluate("""() => Array.from(document.querySelectorAll('h2')).map(h => {
            let text = '', node = h.nextElementSibling;
            while (node && node.tagName !== 'H2') {
                text += node.innerText + (node.tagName === 'IMG' || node.querySelector('img') ? 'img' : '');
                                                   node = node.nextElementSibling; }
            return [h.innerText, text.trim().length]; })""")
        browser.close()
    assert len(images) >= 8 and not errors, errors
    for image in images:
        assert image["complete"] and image["width"] > 0, image["alt"]
        assert image["off"] > DRAWN, f"{image['alt']} is blank"
    titles = [title for title, _ in sections]
    for title in ("Provenance", "Sweeps", "synthetic", "Time and cost", "Glossary"):
        assert title in titles
    assert all(length > 0 for _, length in sections), sections


def test_two_runs_land_in_one_store(test_profile_run, sweep_run):
    """The sweep run went into the first run's store: the leaderboard ranks every model and
    configuration of both, counting a shared model's runs and splits once each, and tests each
    against the leader on the pairs both scored."""
    store = test_profile_run.cwd / "storm-store"  # the default: beside --outdir

    def results(*args):  # every command's table as CSV (export writes nothing else)
        csv = [] if args[0] == "export" else ["--csv"]
        done = subprocess.run([sys.executable, "-m", "storm", "results", *args, "--store", str(store), *csv],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return pd.read_csv(io.StringIO(done.stdout))

    assert len(results("runs")) == 2
    board = results("leaderboard", "--metric", "pearson_delta").set_index("model")
    assert set(board.index) == set(MODELS) | set(SWEEP) | {"other_tool"}
    assert board.loc["context_mean", "n_runs"] == 2 and board.loc["control_mean", "n_runs"] == 1
    assert board.loc["context_mean", "n_splits"] == len(SEEDS)  # seed 0 is one split, whichever run scored it
    assert board.loc["context_mean", "n_pairs"] > board.loc["control_mean", "n_pairs"]  # two runs' seed-0 pairs
    assert board["p_vs_leader"].notna().sum() == len(board) - 1
    tasks = results("export", "tasks")
    assert {"PERTURBATION:TRAIN", "PERTURBATION:EVALUATE", "PERTURBATION:REFERENCE"} <= set(tasks["process"])


def test_stub_run(tmp_path):
    """The whole grid as stubs, on a two-GPU workstation by configuration: every training task is
    told the GPUs it may claim one of (storm.gpus; the claim itself is tested in test_gpus)."""
    run = run_pipeline(tmp_path, "-profile", "test,gpu", "--local_gpus", "0,1", "-stub-run")
    assert run.result.returncode == 0, run.output[-3000:]
    assert (run.outdir / "report" / "report.html").exists()
    assert (run.outdir / "synthetic" / "seed1" / "linear_additive" / "metrics.csv").exists()
    trains = [row for row in run.trace() if step(row) == "TRAIN"]
    assert trains
    for row in trains:
        wrapper = next((tmp_path / "work").glob(f"{row['hash']}*/.command.run"))
        assert 'export STORM_GPUS="0,1"' in wrapper.read_text()


def test_bad_input_stops_at_validate(tmp_path):
    from storm import io
    from storm.synth import SynthConfig, make_synthetic

    data = tmp_path / "screen.h5ad"
    io.write_h5ad(make_synthetic(SynthConfig(n_genes=60, n_perturbations=4, n_cell_types=2, cells_per_pair=5,
                                             controls_per_cell_type=10)), data)
    run = run_pipeline(tmp_path, "--input", str(data), "--control_value", "non-targeting")
    assert run.result.returncode != 0
    assert "error: control value 'non-targeting' not found in obs column 'perturbation'" in run.output
    assert {step(row) for row in run.trace()} == {"CHECK", "VALIDATE"}
    assert not (run.outdir / "screen" / "seed0").exists()


def test_manual_strategy(tmp_path):
    holdout = tmp_path / "holdout.yaml"
    holdout.write_text("test:\n  cell_types: [CT3]\n")
    run = run_pipeline(tmp_path, "-profile", "test", "--split_strategy", "manual", "--manual_holdout", str(holdout),
                       "--split_seeds", "0", "--models", "control_mean,context_mean")
    assert run.result.returncode == 0, run.output[-3000:]
    folder = run.outdir / "synthetic" / "seed0_manual"
    pairs = pd.read_csv(folder / "pairs.csv")
    held = pairs[(pairs["split"] == "test") & (pairs["perturbation"] != "control")]
    assert set(held["cell_type"]) == {"CT3"}
    metrics = pd.read_csv(folder / "context_mean" / "metrics.csv")
    assert set(metrics["cell_type"]) == {"CT3"}




def test_loader_workflow_pilot(tmp_path):
    """The loader-strategy workflow on synthetic plates: one task per strategy, then the report."""
    strategies = ["streaming", "block_shuffling", "true_weighted"]
    run = run_pipeline(tmp_path, "-profile", "test", "--workflow", "loaders",
                       "--loader_strategies", ",".join(strategies))
    assert run.result.returncode == 0, run.output[-4000:]
    assert sorted(row["name"] for row in run.trace() if "LOADER_TRAIN" in row["name"]) == sorted(
        f"LOADERS:LOADER_TRAIN ({s})" for s in strategies)
    report = run.outdir / "loaders" / "report"
    table = pd.read_csv(report / "summary.csv")
    assert set(table["strategy"]) == set(strategies)
    assert set(table["task"]) == {"cell_line", "drug", "moa_broad", "moa_fine"}
    assert table["macro_f1"].between(0, 1).all()
    # plates are clustered by (cell line, drug): file order learns less than shuffled blocks
    mean_f1 = table.groupby("strategy")["macro_f1"].mean()
    assert mean_f1["block_shuffling"] > mean_f1["streaming"] + 0.05
    for figure in ("macro_f1_by_task.png", "training_curves.png", "time_by_strategy.png"):
        assert (report / figure).stat().st_size > 1000


def test_config_resolves_offline():
    out = subprocess.run([nextflow_bin(), "config", "-profile", "test", "-flat", str(REPO)],
                         capture_output=True, text=True, check=True).stdout
    assert "process.resourceLimits = [cpus:1, memory:'6 GB', time:'1h']" in out
    assert "params.input = 'synthetic'" in out
    assert "params.min_cells = 10" in out  # a default read from nextflow_schema.json
