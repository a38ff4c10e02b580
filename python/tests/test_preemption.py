"""A training process killed mid-run (SIGTERM, as a scheduler or a spot reclaim sends) leaves a
usable checkpoint; the retried task, in a fresh folder, resumes from it and ends with exactly the
weights of a run that was never interrupted."""

import hashlib
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
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

    straight = subprocess.run(train_cmd(prepared_split, tmp_path / "straight", tmp_path / "straight_ckpt"),
                              capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert weights_digest(tmp_path / "attempt2") == weights_digest(tmp_path / "straight")
    # the log covers both attempts, no epoch lost or repeated, and early stopping (its patience
    # counter travels in the checkpoint) ends at the same epoch as the uninterrupted run
    logs = [pd.read_csv(tmp_path / run / "train_log.csv") for run in ("attempt2", "straight")]
    assert logs[0]["epoch"].tolist() == list(range(len(logs[0]))) == logs[1]["epoch"].tolist()
    assert saved_epoch < len(logs[0]) - 1


def test_another_config_never_resumes_a_run(prepared_split, tmp_path):
    shared = tmp_path / "checkpoints"
    for epochs in ("2", "3"):
        cmd = train_cmd(prepared_split, tmp_path / f"run{epochs}", shared)
        cmd[cmd.index("max_epochs=60")] = f"max_epochs={epochs}"
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "resuming from" not in done.stderr
    assert len(list(shared.iterdir())) == 2  # one folder per run key, nothing overwritten


def _trained(prepared_split, tmp_path, epochs="4"):
    """A finished short run and its checkpoint folder."""
    shared = tmp_path / "checkpoints"
    cmd = train_cmd(prepared_split, tmp_path / "first", shared)
    cmd[cmd.index("max_epochs=60")] = f"max_epochs={epochs}"
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (ckpt,) = shared.iterdir()
    return cmd, ckpt


@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped"])
def test_a_damaged_last_checkpoint_is_set_aside(prepared_split, tmp_path, damage):
    """An empty, truncated or changed last.ckpt is named, kept aside as last.ckpt.damaged, and
    training resumes from the newest intact epoch checkpoint to the same weights; never an
    'aborted' signal exit, never a traceback, and the next attempt does not trip on it again."""
    cmd, ckpt = _trained(prepared_split, tmp_path)
    last = ckpt / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes({"empty": b"", "truncated": data[: len(data) // 2],
                      "flipped": data[:-10] + bytes(b ^ 1 for b in data[-10:])}[damage])
    again = subprocess.run([*cmd[:cmd.index("--out-dir") + 1], str(tmp_path / "again"),
                            *cmd[cmd.index("--out-dir") + 2:]], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Traceback" not in again.stderr and "aborted" not in again.stderr
    assert f"checkpoint {last} is damaged" in again.stderr and "resuming from" in again.stderr
    assert (ckpt / "last.ckpt.damaged").read_bytes() != data  # kept for a look, not deleted
    assert weights_digest(tmp_path / "again") == weights_digest(tmp_path / "first")


def test_every_checkpoint_damaged_starts_over(prepared_split, tmp_path):
    cmd, ckpt = _trained(prepared_split, tmp_path, epochs="2")
    before = weights_digest(tmp_path / "first")
    for path in ckpt.glob("*.ckpt"):
        path.write_bytes(b"")
    (tmp_path / "first" / "weights.pt").unlink()
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "no intact checkpoint" in again.stderr and "resuming from" not in again.stderr
    assert weights_digest(tmp_path / "first") == before  # trained again from the start, to the same weights
    assert pd.read_csv(tmp_path / "first" / "train_log.csv")["epoch"].tolist() == [0, 1]


def test_two_attempts_never_train_into_one_folder(prepared_split, tmp_path):
    """An attempt still running (say, orphaned when Nextflow was killed) holds the run's lock: a
    new attempt stops with one clear line naming it, before touching a checkpoint."""
    shared = tmp_path / "checkpoints"
    first = subprocess.Popen(train_cmd(prepared_split, tmp_path / "first", shared),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 1800  # a safety net: a busy machine may take minutes to get there
        while time.time() < deadline and first.poll() is None and not list(shared.glob("*/last.ckpt")):
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)  # paused, alive, holding its lock: however fast it would finish
        assert first.poll() is None and list(shared.glob("*/last.ckpt")), "the first attempt wrote no checkpoint"
        second = subprocess.run(train_cmd(prepared_split, tmp_path / "second", shared), capture_output=True,
                                text=True)
        assert second.returncode == 2
        line = second.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: pid {first.pid} on ") and "is still training into" in line, line
        assert not (tmp_path / "second" / "model.json").exists()
    finally:
        first.kill()
        first.wait()
    # the kernel released the killed holder's lock: the next attempt resumes
    third = subprocess.run(train_cmd(prepared_split, tmp_path / "third", shared), capture_output=True, text=True)
    assert third.returncode == 0 and "resuming from" in third.stderr, third.stderr[-2000:]


def test_run_key_follows_content_not_name_or_size(prepared_split, tmp_path):
    """A retry resumes only its own run: the checkpoint key changes with the data's content even at
    the same size, and stays when the same content sits elsewhere (another task's work folder)."""
    import shutil

    from storm import io
    from storm.train import run_key

    prepared, split_csv, genes_csv = prepared_split
    key = run_key(prepared, split_csv, genes_csv, "linear_additive", 0, {"lr": 0.01})
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for path in (split_csv, genes_csv):
        shutil.copy(path, moved / path.name)
        shutil.copy(str(path) + io.CHECKSUM_SUFFIX, moved / (path.name + io.CHECKSUM_SUFFIX))
    assert run_key(prepared, moved / split_csv.name, moved / genes_csv.name, "linear_additive", 0,
                   {"lr": 0.01}) == key
    text = (moved / split_csv.name).read_text()
    flipped = text.replace(",train", ",tmp__", 1).replace(",test", ",train", 1).replace(",tmp__", ",test", 1)
    assert len(flipped) == len(text) and flipped != text
    (moved / split_csv.name).write_text(flipped)
    io.write_checksum(moved / split_csv.name)
    assert (moved / split_csv.name).stat().st_size == split_csv.stat().st_size
    assert run_key(prepared, moved / split_csv.name, moved / genes_csv.name, "linear_additive", 0,
                   {"lr": 0.01}) != key
