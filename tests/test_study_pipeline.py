"""The ST fine-tuning study from its params file, on a small synthetic time course: every variant
trains (or, zero-shot, does not) from one pretrained st on the same split, with whole time courses
held out, and the report compares their training."""

import json
import subprocess
import sys

import pandas as pd

from harness import REPO, run_pipeline

SPEC = json.dumps({"perturbation_key": "stimulus", "time_key": "time", "batch_key": None})
TUNED = ["st_lora", "st_lora_mhc", "st_lora_velocity", "st_lora_mhc_velocity"]


def storm(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "storm", "-q", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_st_finetune_study(tmp_path):
    course = tmp_path / "course.h5ad"
    storm("synth", "--time-course", "--out", str(course), "--n-genes", "100", "--n-perturbations", "4",
          "--n-cell-types", "3", "--cells-per-pair", "12", "--controls-per-cell-type", "60")
    # the pretrained model: an st trained on the same genes (here the same cells; a lab's would be another dataset)
    pre = tmp_path / "pretrain"
    storm("prepare", "--input", str(course), "--out", str(pre / "prepared.h5ad"), "--spec", SPEC)
    storm("split", "--input", str(course), "--out-dir", str(pre), "--spec", SPEC, "--min-cells", "5")
    storm("genes", "--prepared", str(pre / "prepared.h5ad"), "--split", str(pre / "seed0" / "split.parquet"),
          "--n-top-genes", "100", "--out", str(pre / "genes.csv"))
    storm("train", "--prepared", str(pre / "prepared.h5ad"), "--split", str(pre / "seed0" / "split.parquet"),
          "--genes", str(pre / "genes.csv"), "--model", "st", "--out-dir", str(pre / "st"),
          "--set", "min_steps=30", "--set", "cell_set_len=8", "--set", "hidden_dim=32", "--set", "logger=none")

    run = run_pipeline(tmp_path / "run", "-params-file", str(REPO / "conf" / "studies" / "st_finetune.yaml"),
                       "--input", str(course), "--perturbation_key", "stimulus", "--time_key", "time",
                       "--batch_key", "", "--split_seeds", "0", "--min_cells", "5", "--n_top_genes", "100",
                       "--split_args", "--whole-time-courses ",
                       "--model_set", f"st.init_from={pre / 'st'} st.min_steps=30 st.cell_set_len=8 st.hidden_dim=32",
                       timeout=1800)
    assert run.result.returncode == 0, run.output[-5000:]
    split = run.outdir / "course" / "seed0"
    for name in ["context_mean", "st_zero_shot", *TUNED]:
        metrics = pd.read_csv(split / name / "metrics.csv")
        assert set(metrics["model"]) == {name}
        assert metrics["perturbation"].str.startswith("(time course) ").any()  # courses held out whole
    meta = json.loads((split / "st_lora_mhc_velocity" / "model" / "model.json").read_text())
    assert (meta["model"], meta["name"]) == ("st", "st_lora_mhc_velocity")
    assert meta["config"]["lora"]["enable"] and meta["config"]["mhc"]["enable"] and meta["config"]["velocity"]["enable"]
    assert meta["config"]["min_steps"] == 30  # st's settings reach its variants
    lora = json.loads((split / "st_lora" / "model" / "model.json").read_text())["config"]
    assert lora["lora"]["enable"] and not lora["mhc"]["enable"] and not lora["velocity"]["enable"]
    assert not (split / "st_zero_shot" / "model" / "train_steps.csv").exists()  # zero-shot trains nothing
    assert list((split / "st_lora" / "model" / "tensorboard").glob("events.out.tfevents.*"))

    stability = pd.read_csv(run.outdir / "report" / "training_stability.csv")
    assert sorted(stability["model"]) == sorted(TUNED) and (stability["steps"] == 30).all()
    assert stability["loss_variance"].notna().all() and (stability["grad_norm_max"] > 0).all()
    assert "<h2>Training stability</h2>" in (run.outdir / "report" / "report.html").read_text()
