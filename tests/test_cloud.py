"""AWS parts against moto in server mode on 127.0.0.1, which emulates S3, IAM, Batch and ECR: setup
and teardown, mirror, sync (interrupted and resumed), s3:// inputs, and no credentials anywhere.
moto applies Batch's state changes at once; `AsyncBatch` below holds teardown to AWS's real,
asynchronous rules. No job runs on Batch here."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import pandas as pd
import pytest

from harness import SECRET, run_pipeline, step


def storm(*args, env=None):
    return subprocess.run([sys.executable, "-m", "storm", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_setup_is_idempotent_and_teardown_spares_untagged(moto_server, tmp_path):
    iam = boto3.client("iam")
    iam.create_role(RoleName="someone-elses-role", AssumeRolePolicyDocument="{}")
    first = storm("aws", "setup", "--deployment", "lab", "--bucket", "lab-bucket", "--out", tmp_path / "aws.config")
    assert first.returncode == 0, first.stderr[-2000:]
    from storm.models.environments import images

    # bucket, 3 roles, instance profile, 2 compute envs, 2 queues, and a repository per image build.sh builds
    assert f"created {9 + len(images())}:" in first.stdout
    found = boto3.client("ecr").describe_repositories()["repositories"]
    assert {r["repositoryName"] for r in found} == {f"storm-lab/{image}" for image in images()}
    assert "storm-state" in images() and "storm-biolord" in images()
    registry = found[0]["repositoryUri"].rsplit("/", 1)[0]
    assert f"docker/build.sh --registry {registry} --push" in first.stdout
    config = (tmp_path / "aws.config").read_text()
    assert "aws_cpu_queue = 'storm-lab-cpu'" in config and "aws_bucket = 'lab-bucket'" in config
    second = storm("aws", "setup", "--deployment", "lab", "--bucket", "lab-bucket", "--out", tmp_path / "aws.config")
    assert second.returncode == 0 and "no change" in second.stdout
    rules = boto3.client("s3").get_bucket_lifecycle_configuration(Bucket="lab-bucket")["Rules"]
    assert rules[0]["Filter"]["Prefix"] == "work/"
    policy = iam.get_role_policy(RoleName="storm-lab-job-role", PolicyName="storm-lab-job-role-bucket")
    resources = json.dumps(policy["PolicyDocument"])
    assert "arn:aws:s3:::lab-bucket" in resources and "*\"" not in resources.replace("lab-bucket/*\"", "")
    down = storm("aws", "teardown", "--deployment", "lab", "--bucket", "lab-bucket")
    assert down.returncode == 0, down.stderr[-2000:]
    assert f"deleted {8 + len(images())}:" in down.stdout  # everything but the bucket, which keeps its data
    assert iam.get_role(RoleName="someone-elses-role")
    assert boto3.client("batch").describe_job_queues()["jobQueues"] == []
    boto3.client("s3").head_bucket(Bucket="lab-bucket")


def _tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}


def test_mirror_round_trip_is_byte_identical(moto_server, tmp_path):
    boto3.client("s3").create_bucket(Bucket="data")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.h5ad").write_bytes(os.urandom(20 * 1024 * 1024))  # multipart
    (src / "sub" / "b.csv").write_text("x,y\n1,2\n")
    up = storm("mirror", src, "s3://data/datasets/demo")
    assert up.returncode == 0, up.stderr[-2000:]
    down = storm("mirror", "s3://data/datasets/demo", tmp_path / "back")
    assert down.returncode == 0, down.stderr[-2000:]
    assert _tree(tmp_path / "back") == _tree(src)


def test_interrupted_sync_resumes(moto_server, tmp_path):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="res")
    s3.put_object(Bucket="res", Key="results/other-run/keep.txt", Body=b"theirs")
    results = tmp_path / "results"
    for i in range(6):
        (results / f"seed{i}").mkdir(parents=True)
        (results / f"seed{i}" / "pred.h5ad").write_bytes(os.urandom(12 * 1024 * 1024))
    proc = subprocess.Popen([sys.executable, "-m", "storm", "sync", str(results), "s3://res/results/run1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        listing = s3.list_objects_v2(Bucket="res", Prefix="results/run1/seed")
        if listing.get("KeyCount", 0) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {o["Key"]: (o["ETag"], o["LastModified"])
             for o in s3.list_objects_v2(Bucket="res", Prefix="results/run1/seed").get("Contents", [])}
    assert 0 < len(first) < 6, "the sync should have been interrupted part way"
    # an interrupted sync never looks complete
    assert not s3.list_objects_v2(Bucket="res", Prefix="results/run1/manifest.json").get("KeyCount")
    time.sleep(1.1)  # S3 times objects to the second: a re-upload would show a later LastModified
    again = storm("sync", results, "s3://res/results/run1")
    assert again.returncode == 0, again.stderr[-2000:]
    # what the first run uploaded is skipped, not sent again
    assert f", {len(first)} already there unchanged and skipped" in again.stdout, again.stdout
    assert {key: (o["ETag"], o["LastModified"]) for o in s3.list_objects_v2(Bucket="res", Prefix="results/run1/seed")
            ["Contents"] if (key := o["Key"]) in first} == first
    manifest = json.loads(s3.get_object(Bucket="res", Key="results/run1/manifest.json")["Body"].read())
    assert set(manifest["files"]) == set(_tree(results))
    for rel, meta in manifest["files"].items():
        body = s3.get_object(Bucket="res", Key=f"results/run1/{rel}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == meta["sha256"] == _tree(results)[rel]
    assert s3.get_object(Bucket="res", Key="results/other-run/keep.txt")["Body"].read() == b"theirs"
    all_keys = {o["Key"] for o in s3.list_objects_v2(Bucket="res")["Contents"]}
    assert all(k.startswith("results/run1/") or k == "results/other-run/keep.txt" for k in all_keys)
    # another results folder may not write into this run's prefix
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("x")
    refused = storm("sync", other, "s3://res/results/run1")
    assert refused.returncode == 2 and "another run's results" in refused.stderr
    assert b"report/report.html" in s3.get_object(Bucket="res", Key="results/run1/index.html")["Body"].read()


def test_split_reads_s3_and_no_credentials_leak(moto_server, tmp_path):
    small_h5ad = tmp_path / "small.h5ad"
    assert storm("synth", "--out", small_h5ad, "--n-genes", "60", "--n-perturbations", "4",
                 "--n-cell-types", "2", "--cells-per-pair", "12", "--controls-per-cell-type", "20").returncode == 0
    boto3.client("s3").create_bucket(Bucket="obs")
    boto3.client("s3").upload_file(str(small_h5ad), "obs", "datasets/small.h5ad")
    done = storm("split", "--input", "s3://obs/datasets/small.h5ad", "--out-dir", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "seed0" / "split.parquet").is_file()
    setup = storm("aws", "setup", "--deployment", "leak", "--bucket", "leak-bucket", "--out", tmp_path / "aws.config")
    written = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size < 5e6]
    for text in [done.stdout, done.stderr, setup.stdout, setup.stderr, *written]:
        assert SECRET not in text


def test_pipeline_syncs_results_when_it_ends(moto_server, tmp_path):
    """--sync_to: after the report, a SYNC task uploads the results (the report from REPORT's own
    task) and STORE_PUSH the run's store beside them; both are steps of the trace."""
    boto3.client("s3").create_bucket(Bucket="runs")
    run = run_pipeline(tmp_path, "-profile", "test", "--split_seeds", "0", "--models", "control_mean",
                       "--sync_to", "s3://runs/results/run1")
    assert run.result.returncode == 0, run.output[-3000:]
    s3 = boto3.client("s3")
    manifest = json.loads(s3.get_object(Bucket="runs", Key="results/run1/manifest.json")["Body"].read())
    assert {"report/report.html", "report/summary.csv", "pipeline_info/software_versions.yml"} <= set(manifest["files"])
    page = s3.get_object(Bucket="runs", Key="results/run1/report/report.html")["Body"].read()
    assert page == (run.outdir / "report" / "report.html").read_bytes()
    store = s3.list_objects_v2(Bucket="runs", Prefix="results/storm-store/runs/")
    assert store.get("KeyCount", 0) >= 1
    assert {"SYNC", "STORE_PUSH"} <= {step(row) for row in run.trace()}


def test_results_store_pushed_to_s3_reads_the_same(moto_server, tmp_path):
    """A local store pushed to S3 answers the same leaderboard there; a run appended straight to
    the S3 store shows up at the next query, a second push copies only what is new."""
    boto3.client("s3").create_bucket(Bucket="lab")
    metrics = tmp_path / "metrics.csv"
    rows = [{"dataset": "d", "seed": 0, "model": model, "cell_type": "A", "perturbation": f"P{i}",
             "metric": "pearson_delta", "value": level + 0.01 * i} for model, level in (("a", 0.2), ("b", 0.6))
            for i in range(6)]
    pd.DataFrame(rows).to_csv(metrics, index=False)
    local, remote = tmp_path / "store", "s3://lab/storm-store"
    assert storm("results", "add", metrics, "--store", local, "--run-name", "one").returncode == 0
    pushed = storm("results", "push", remote, "--store", local)
    assert pushed.returncode == 0 and "file(s) copied" in pushed.stdout, pushed.stderr
    board = [storm("results", "leaderboard", "--csv", "--store", where).stdout for where in (local, remote)]
    assert board[0] == board[1] and board[0].splitlines()[1].split(",")[3] == "b"
    # a file the local copy holds that S3 no longer has (an older write, another store) is dropped
    cache = Path(tempfile.gettempdir()) / "storm-store-cache" / "lab" / "storm-store" / "runs"
    run_file = next(cache.glob("*.parquet"))
    (cache / "gone.parquet").write_bytes(run_file.read_bytes().replace(b"one", b"old"))
    assert storm("results", "add", metrics, "--store", remote, "--run-name", "two").returncode == 0
    listed = storm("results", "runs", "--csv", "--store", remote).stdout
    assert "two" in listed and len(listed.strip().splitlines()) == 3 and not (cache / "gone.parquet").exists()
    again = storm("results", "push", remote, "--store", local)
    assert again.stdout.startswith(f"{remote}: 1 file(s)")  # only the run's commit row again


class AsyncBatch:
    """AWS Batch's asynchronous rules, which moto does not enforce: an update leaves a resource
    UPDATING for a few describes, a queue is deleted only DISABLED and settled and takes a few
    describes to go, and a compute environment is deleted only DISABLED, settled and with no queue."""

    LAG = 3

    def __init__(self):
        tags = {"storm:deployment": "lab"}
        self.queues = {n: {"jobQueueName": n, "state": "ENABLED", "status": "VALID", "tags": tags, "lag": 0,
                           "computeEnvironmentOrder": [{"computeEnvironment": n}]} for n in ("q-cpu", "q-gpu")}
        self.envs = {n: {"computeEnvironmentName": n, "state": "ENABLED", "status": "VALID", "tags": tags, "lag": 0}
                     for n in ("q-cpu", "q-gpu")}

    @staticmethod
    def _tick(items):
        for item in items:
            if item["lag"]:
                item["lag"] -= 1
                if not item["lag"]:
                    item["status"] = "DELETED" if item["status"] == "DELETING" else "VALID"
        return [{k: v for k, v in i.items() if k != "lag"} for i in items]

    def describe_job_queues(self, jobQueues=None):
        return {"jobQueues": self._tick([q for n, q in self.queues.items() if not jobQueues or n in jobQueues])}

    def describe_compute_environments(self, computeEnvironments=None):
        return {"computeEnvironments": self._tick([e for n, e in self.envs.items()
                                                   if not computeEnvironments or n in computeEnvironments])}

    def update_job_queue(self, jobQueue, state):
        self.queues[jobQueue].update(state=state, status="UPDATING", lag=self.LAG)

    def update_compute_environment(self, computeEnvironment, state):
        self.envs[computeEnvironment].update(state=state, status="UPDATING", lag=self.LAG)

    def delete_job_queue(self, jobQueue):
        queue = self.queues[jobQueue]
        assert (queue["state"], queue["status"]) == ("DISABLED", "VALID"), f"deleting {queue}"
        queue.update(status="DELETING", lag=self.LAG)

    def delete_compute_environment(self, computeEnvironment):
        env = self.envs[computeEnvironment]
        assert (env["state"], env["status"]) == ("DISABLED", "VALID"), f"deleting {env}"
        users = [q for q in self.queues.values() if q["status"] != "DELETED"
                 and computeEnvironment in {o["computeEnvironment"] for o in q["computeEnvironmentOrder"]}]
        assert not users, f"{computeEnvironment} still has queues {users}"
        del self.envs[computeEnvironment]


def test_teardown_waits_for_batch_as_aws_requires():
    from storm.cloud.aws import _delete_batch
    from storm.errors import StormError

    batch = AsyncBatch()
    removed = _delete_batch(batch, "lab", poll=0)
    assert sorted(removed) == ["batch compute environment q-cpu", "batch compute environment q-gpu",
                               "batch job queue q-cpu", "batch job queue q-gpu"]
    assert not batch.envs and all(q["status"] == "DELETED" for q in batch.queues.values())

    stuck = AsyncBatch()
    stuck.LAG = 10 ** 6  # a queue that never settles: a clear error, nothing deleted out of order
    with pytest.raises(StormError, match="batch job queue q-cpu .disabling. did not settle"):
        _delete_batch(stuck, "lab", poll=0, timeout=0)
