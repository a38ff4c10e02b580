"""The published models in the pipeline: each trains and predicts in its own environment, handed
over from the task's storm; a missing environment stops the run at CHECK."""

import json

import pandas as pd

from harness import REPO, run_pipeline, step

#: the published models and the package each one's model.json names
ZOO = {"scgen": "pertpy", "cpa": "cpa-tools", "biolord": "biolord", "cellot": "torch"}
ELSEWHERE = {"scgen", "cpa", "biolord"}  # those with an environment of their own (cellot runs in the core's)


#: budgets that only show the plumbing (each model's quality is test_zoo's business)
ZOO_BUDGETS = ("scgen.max_epochs=3 biolord.max_epochs=3 cellot.steps=30 cpa.max_epochs=3 "
               "cpa.check_val_every_n_epoch=1 cpa.plan_kwargs.n_epochs_pretrain_ae=1 "
               "cpa.plan_kwargs.n_epochs_adv_warmup=1 cpa.plan_kwargs.n_epochs_mixup_warmup=1")


#: a smaller screen than the test profile's: the plumbing needs no more
SMALL = "--n-genes 200 --n-perturbations 8 --cells-per-pair 20 --controls-per-cell-type 80"


def test_published_models_run_in_their_environments(tmp_path):
    """The test profile with the four published models: each trains and predicts in its own
    environment (handed over from the task's storm), records its package, and is scored and
    reported beside the baseline."""
    run = run_pipeline(tmp_path, "-profile", "test", "--split_seeds", "0", "--models", ",".join(["control_mean", *ZOO]),
                       "--model_set", ZOO_BUDGETS, "--synth_args", SMALL, "--n_top_genes", "100")
    assert run.result.returncode == 0, run.output[-5000:]
    split = run.outdir / "synthetic" / "seed0"
    for model, package in ZOO.items():
        meta = json.loads((split / model / "model" / "model.json").read_text())
        assert meta["versions"][package], model
        assert (split / model / "metrics.csv").is_file()
    summary = pd.read_csv(run.outdir / "report" / "summary.csv")
    scored = summary[summary["metric"] == "pearson_delta"].set_index("model")["mean"]
    assert set(scored.index) == {"control_mean", *ZOO} and scored.notna().all(), scored.to_dict()
    # the task called storm in the core venv; storm handed the models with their own environment over to it
    trained = set()
    for row in run.trace():
        if step(row) == "TRAIN":
            model = row["name"].split()[-1].rstrip(")")
            err = next((run.cwd / "work").glob(row["hash"] + "*/.command.err")).read_text()
            assert (f"handing over to {REPO}/.venv-{model}/bin/python" in err) == (model in ELSEWHERE), model
            trained.add(model)
    assert trained == {"control_mean", *ZOO}


def test_a_missing_environment_stops_the_run_at_check(tmp_path):
    """Without containers, CHECK finds a model whose environment is not installed where the tasks
    look (--envs_dir) and stops the run before any expensive step, naming the install command."""
    run = run_pipeline(tmp_path, "-profile", "test", "--models", "control_mean,biolord", "--envs_dir", str(tmp_path))
    assert run.result.returncode != 0
    assert "error: model 'biolord' runs in environment 'biolord'" in run.output
    assert "make install-env ENV=biolord" in run.output
    assert {step(row) for row in run.trace() if row["status"] != "ABORTED"} <= {"SYNTH", "CHECK"}
