"""Faults injected into real runs: tasks and Nextflow itself killed (SIGTERM, SIGKILL) at random
points drawn from a seeded RNG, then -resume; and a cached output truncated behind storm's back.
Nothing is lost: the resumed grid ends with the uninterrupted run's results."""

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness import pipeline_cmd, run_pipeline, step

MAX_STEPS = 240


def grid(models: str = "linear_additive,state") -> list[str]:
    return ["-profile", "test", "--split_seeds", "0", "--models", models,
            "--model_set", f"linear_additive.max_epochs=40 state.max_steps={MAX_STEPS}"]


ARGS = grid()
MODEL = Path("results/synthetic/seed0")


def storm_tasks(cwd: Path, model: str = "") -> list[int]:
    """PIDs of the `storm train` processes (of ``model``, if given) working in ``cwd``'s work folder."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if b"storm" in b" ".join(cmd) and b"train" in cmd and (not model or model.encode() in cmd) and \
                    os.readlink(proc / "cwd").startswith(str(cwd / "work")):
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


def wait_for(condition, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def weights(folder: Path) -> str:
    state = torch.load(folder / "weights.pt", weights_only=True)["state_dict"]
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode() + state[key].numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    run = run_pipeline(tmp_path_factory.mktemp("straight"), *ARGS, timeout=1800)
    assert run.result.returncode == 0, run.output[-4000:]
    return run


def test_killed_tasks_and_nextflow_resume_to_the_same_results(straight, tmp_path):
    """Four faults at moments drawn from a seeded RNG, in two interrupted runs and a final -resume:
    each model's training task killed after it checkpointed (SIGTERM as a scheduler sends, SIGKILL
    as the OOM killer does; which model gets which is drawn), and, once that task's retry is under
    way, Nextflow itself killed: SIGTERM first (it stops its tasks), SIGKILL last (its tasks run on
    as orphans, so nothing would be left to kill after it). The first run holds linear_additive
    alone, so State is still to train in the second however fast the first goes (the grid grows
    with -resume, as users grow theirs)."""
    rng = np.random.default_rng(2026)
    task_signals = [signal.SIGTERM, signal.SIGKILL][:: rng.choice([1, -1])]
    phases = zip([("linear_additive", "linear_additive"), ("state", "linear_additive,state")], task_signals,
                 [signal.SIGTERM, signal.SIGKILL])
    checkpoints = tmp_path / "checkpoints" / "synthetic" / "seed0"
    for (model, models), task_sig, nxf_sig in phases:
        log = open(tmp_path / f"fault-{model}-{task_sig.name}-nextflow-{nxf_sig.name}.log", "w")
        nxf = subprocess.Popen(pipeline_cmd(*grid(models), "-resume"), cwd=tmp_path, stdout=log, stderr=log)
        # the task, after its first checkpoint so the retry has one to resume
        assert wait_for(lambda: any((checkpoints / model).rglob("last.ckpt")) and storm_tasks(tmp_path, model)
                        or nxf.poll() is not None)
        time.sleep(rng.uniform(0.2, 2.0))
        victims = storm_tasks(tmp_path, model)
        assert victims and nxf.poll() is None, f"{model} finished before it could be killed"
        for pid in victims:
            os.kill(pid, task_sig)
        # then Nextflow, while the retry trains
        assert wait_for(lambda: set(storm_tasks(tmp_path, model)) - set(victims) or nxf.poll() is not None)
        time.sleep(rng.uniform(0.2, 2.0))
        assert nxf.poll() is None, f"the run finished before Nextflow could be killed ({model} retried)"
        os.kill(nxf.pid, nxf_sig)
        nxf.wait(timeout=1800)
        # Nextflow killed outright leaves its tasks running: they finish (or fail) on their own,
        # and a resume started meanwhile would be refused by their checkpoint lock
        assert wait_for(lambda: not storm_tasks(tmp_path), timeout=900)
    logs = "".join(p.read_text() for p in tmp_path.glob("fault-*.log"))
    assert "exit status (143)" in logs and "exit status (137)" in logs  # both tasks were hit and retried
    final = run_pipeline(tmp_path, *ARGS, "-resume", timeout=1800)
    assert final.result.returncode == 0, final.output[-4000:]

    # linear_additive: the same weights and metrics as the run that was never interrupted
    assert weights(tmp_path / MODEL / "linear_additive" / "model") == \
        weights(straight.cwd / MODEL / "linear_additive" / "model")
    # (its rank and flags compare it with the run's other models, and state is not promised the same
    # weights after a kill)
    ours, theirs = (pd.read_csv(cwd / "results" / "report" / "summary.csv").set_index(["model", "metric"])
                    .drop(columns=["rank", "flag"]) for cwd in (tmp_path, straight.cwd))
    pd.testing.assert_frame_equal(ours.loc["linear_additive"], theirs.loc["linear_additive"])
    # state: what it promises after a kill, it keeps: every step trained, metrics for every pair
    ckpt = torch.load(tmp_path / MODEL / "state" / "model" / "state" / "model.ckpt", weights_only=False)
    assert ckpt["global_step"] == MAX_STEPS
    assert "resuming from" in (tmp_path / MODEL / "state" / "train.log").read_text()
    scored = [pd.read_csv(cwd / MODEL / "state" / "metrics.csv").set_index(["cell_type", "perturbation", "metric"])
              .index.sort_values() for cwd in (tmp_path, straight.cwd)]
    assert scored[0].equals(scored[1])  # every pair scored on every metric, as in the uninterrupted run
    print("state pearson_delta after faults / straight:", ours.loc[("state", "pearson_delta"), "mean"],
          theirs.loc[("state", "pearson_delta"), "mean"])


def test_a_truncated_cached_output_names_its_task(straight):
    """real.h5ad truncated in its work folder after REFERENCE finished: the next task that reads it
    names the file and the folder to delete; deleting it and resuming makes it again."""
    reference = next(row for row in straight.trace() if step(row) == "REFERENCE")
    folder = next((straight.cwd / "work").glob(reference["hash"] + "*"))
    real = folder / "real.h5ad"
    real.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    grown = grid("linear_additive,state,control_mean")
    broken = run_pipeline(straight.cwd, *grown, "-resume")
    assert broken.result.returncode != 0
    assert "real.h5ad was changed or truncated after it was written" in broken.output
    assert f"made by the Nextflow task in {folder}" in broken.output and f"rm -r '{folder}'" in broken.output
    subprocess.run(["rm", "-r", str(folder)], check=True)
    fixed = run_pipeline(straight.cwd, *grown, "-resume")
    assert fixed.result.returncode == 0, fixed.output[-4000:]
    assert "REFERENCE" in {step(row) for row in fixed.trace() if row["status"] == "COMPLETED"}
