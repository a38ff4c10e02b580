"""A training process killed mid-run (SIGTERM, as a scheduler or a spot reclaim sends) leaves a
usable checkpoint; the retried task, in a fresh folder, resumes from it and ends with exactly the
weights of a run that was never interrupted."""

import hashlib
import signal
import subprocess
import sys
import time

import pandas as pd
import torch

CONFIG = ["--set", "max_epochs=60", "--set", "batch_size=8", "--set", "accelerator=cpu"]


def train_cmd(prepared_split, out_dir, ckpt_dir):
    prepared, split_csv, genes_csv = prepared_split
    return [sys.executable, "-m", "storm", "train", "--prepared", str(prepared), "--split", str(split_csv),
            "--genes", str(genes_csv), "--model", "linear_additive", "--seed", "0", "--out-dir", str(out_dir),
            "--checkpoint-dir", str(ckpt_dir), *CONFIG]


def weights_digest(model_dir) -> str:
    state = torch.load(model_dir / "weights.pt", weights_only=True)["state_dict"]
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode() + state[key].cpu().numpy().tobytes())
    return digest.hexdigest()


def test_killed_training_resumes_to_the_same_weights(prepared_split, tmp_path):
    shared = tmp_path / "checkpoints"  # the folder every attempt of the task sees
    proc = subprocess.Popen(train_cmd(prepared_split, tmp_path / "attempt1", shared),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        logs = list(shared.glob("*/train_log.csv"))
        if logs and len(pd.read_csv(logs[0])) >= 3:
            break
        time.sleep(0.02)
    (ckpt,) = shared.iterdir()  # one run key
    assert proc.poll() is None, "training ended before it could be killed"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM  # a signal exit, which Nextflow retries
    assert not (tmp_path / "attempt1" / "model.json").exists()  # nothing looks finished
    saved_epoch = torch.load(ckpt / "last.ckpt", weights_only=False)["epoch"]  # it loads: the file is whole
    assert 1 <= saved_epoch < 59  # an epoch-boundary checkpoint from the middle of training
    assert not list(ckpt.glob(".*tmp*"))  # no half-written checkpoint left behind

    retry = subprocess.run(train_cmd(prepared_split, tmp_path / "attempt2", shared), capture_output=True, text=True)
    assert retry.returncode == 0, retry.stderr[-2000:]
    assert "resuming from" in retry.stderr
    epochs = pd.read_csv(tmp_path / "attempt2" / "train_log.csv")["epoch"].tolist()
    assert epochs == list(range(60))  # the log covers both attempts, no epoch lost or repeated

    straight = subprocess.run(train_cmd(prepared_split, tmp_path / "straight", tmp_path / "straight_ckpt"),
                              capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert weights_digest(tmp_path / "attempt2") == weights_digest(tmp_path / "straight")


def test_another_config_never_resumes_a_run(prepared_split, tmp_path):
    shared = tmp_path / "checkpoints"
    for epochs in ("2", "3"):
        cmd = train_cmd(prepared_split, tmp_path / f"run{epochs}", shared)
        cmd[cmd.index("max_epochs=60")] = f"max_epochs={epochs}"
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "resuming from" not in done.stderr
    assert len(list(shared.iterdir())) == 2  # one folder per run key, nothing overwritten
