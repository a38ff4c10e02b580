"""The pipeline on a real SLURM cluster (slurmctld + slurmd + munged on localhost), and the
resolved configuration of the cluster and container profiles."""

import json
import re
import subprocess

import pytest

from harness import REPO, nextflow_bin, run_pipeline, step

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """Start a single-node cluster; yield the environment its clients need; stop it."""
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([str(CLUSTER), "start", str(state)], capture_output=True, text=True)
    logs = "".join(p.read_text(errors="replace")[-2000:] for p in state.glob("*.log"))
    assert started.returncode == 0, started.stderr + logs
    yield {"SLURM_CONF": str(state / "slurm.conf")}, state
    subprocess.run([str(CLUSTER), "stop", str(state)], check=False)


def test_every_task_runs_as_a_slurm_job(slurm, tmp_path):
    env, state = slurm
    run = run_pipeline(tmp_path, "-profile", "test,slurm", "--split_seeds", "0",
                       "--models", "control_mean,linear_additive", "--slurm_poll_interval", "1 sec", env=env)
    assert run.result.returncode == 0, run.output[-4000:]
    rows = run.trace()
    job_ids = [row["native_id"] for row in rows]
    assert len(rows) >= 10 and all(re.fullmatch(r"\d+", j) for j in job_ids), job_ids
    completed = set(re.findall(r"JobId=(\d+) .*?JobState=COMPLETED", (state / "jobcomp.log").read_text()))
    assert set(job_ids) <= completed  # SLURM's own record of finished jobs lists every task
    assert (run.outdir / "report" / "report.html").is_file()


def flat_config(*profiles: str) -> str:
    return subprocess.run([nextflow_bin(), "config", "-profile", ",".join(profiles), "-flat", str(REPO)],
                          capture_output=True, text=True, check=True).stdout


def test_slurm_profile_values():
    out = flat_config("slurm")
    assert "process.executor = 'slurm'" in out
    assert "executor.queueSize = 100" in out and "executor.submitRateLimit = '10/1min'" in out
    assert "process.resourceLimits = [cpus:32, memory:'256 GB', time:'3d']" in out
    # jobs find the model environments beside storm (by default; a shared filesystem) or in --envs_dir
    assert f"env.STORM_ENVS_DIR = '{REPO}'" in out


def test_slurm_gpu_singularity_values():
    out = flat_config("slurm", "gpu", "singularity")
    assert "singularity.enabled = true" in out and "singularity.autoMounts = true" in out
    # the run's GPUs (its `devices`, one unless it trains on several)
    assert "process.'withLabel:process_gpu'.accelerator = { meta.resources?.devices ?: 1 }" in out
    assert '"--gres=gpu:${meta.resources?.devices ?: 1}"' in out  # SLURM ignores accelerator: the GPUs come from --gres
    assert "'--nv'" in out
    assert "ext.image = 'storm-gpu'" in out
    assert "process.container = { image(task.ext.image ?: 'storm') }" in out


def test_docker_profile_limits_memory_and_cpus_hard():
    """Nextflow passes --memory and --cpu-shares (a weight); the docker profile adds swap equal to the
    memory and --cpus, and runs tasks as the launching user."""
    out = flat_config("docker")
    assert "docker.runOptions = '-u $(id -u):$(id -g)'" in out
    assert '"--memory-swap ${task.memory.toMega()}m --cpus ${task.cpus}"' in out


#: the processes that train (label process_gpu): the benchmark's, and new conditions' (--predict_conditions)
TRAINING = ("PERTURBATION:TRAIN", "PERTURBATION:TRAIN_NEW")


def test_container_image_per_step(tmp_path):
    """`nextflow inspect` resolves each step's container under the docker and gpu profiles."""
    out = subprocess.run([nextflow_bin(), "inspect", str(REPO / "main.nf"), "-profile", "test,docker,gpu",
                          "--container_registry", "reg.example"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    images = {p["name"]: p["container"] for p in json.loads(out.stdout[out.stdout.index("{"):])["processes"]}
    # withName: TRAIN finds the workflow's; training for new conditions is training too
    assert {images[p] for p in TRAINING} == {"reg.example/storm-gpu:0.1.0"}
    assert {images[p] for p in images if p not in TRAINING} == {"reg.example/storm:0.1.0"}


def test_images_pinned_by_digest(tmp_path):
    """--container_digests (what `docker/build.sh --push --digests` writes) pins each image it
    names; the others keep their tag; a line that is not a digest reference stops the run."""
    digest = {name: f"reg.example/{name}@sha256:{str(i) * 64}" for i, name in enumerate(["storm", "storm-gpu"])}
    (tmp_path / "digests.txt").write_text("\n".join(digest.values()) + "\n")

    def inspect(*args):
        return subprocess.run([nextflow_bin(), "inspect", str(REPO / "main.nf"), "-profile", "test,docker,gpu",
                               "--container_registry", "reg.example", *args], cwd=tmp_path, capture_output=True,
                              text=True)

    out = inspect("--container_digests", "digests.txt")
    assert out.returncode == 0, out.stderr[-2000:]
    images = {p["name"]: p["container"] for p in json.loads(out.stdout[out.stdout.index("{"):])["processes"]}
    assert {images[p] for p in TRAINING} == {digest["storm-gpu"]}
    assert {images[p] for p in images if p not in TRAINING} == {digest["storm"]}
    (tmp_path / "bad.txt").write_text("reg.example/storm:latest\n")
    out = inspect("--container_digests", "bad.txt")
    assert out.returncode != 0
    assert "--container_digests: 'reg.example/storm:latest' is not REGISTRY/NAME@sha256:" in out.stdout + out.stderr


def test_apptainer_runs_the_same_images_on_hpc(tmp_path):
    """-profile slurm,gpu,apptainer: every step in the images Docker runs (Nextflow pulls them as
    docker:// URIs), converted once into --container_cache_dir, the GPU passed with --nv."""
    out = subprocess.run([nextflow_bin(), "inspect", str(REPO / "main.nf"), "-profile", "test,slurm,gpu,apptainer",
                          "--container_registry", "reg.example"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    images = {p["name"]: p["container"] for p in json.loads(out.stdout[out.stdout.index("{"):])["processes"]}
    assert {images[p] for p in TRAINING} == {"reg.example/storm-gpu:0.1.0"}
    assert {images[p] for p in images if p not in TRAINING} == {"reg.example/storm:0.1.0"}
    config = flat_config("slurm", "gpu", "apptainer")
    assert "apptainer.enabled = true" in config and "apptainer.cacheDir = null" in config  # Nextflow's own unless given
    assert "'--nv'" in config and "task.accelerator" in config


def test_awsbatch_profile_values(tmp_path):
    from storm.cloud.aws import config_text

    setup = tmp_path / "aws.config"
    setup.write_text(config_text({"aws_region": "eu-west-1", "aws_bucket": "lab-bucket",
                                  "aws_cpu_queue": "storm-lab-cpu", "aws_gpu_queue": "storm-lab-gpu"}))
    out = subprocess.run([nextflow_bin(), "-c", str(setup), "config", "-profile", "awsbatch,gpu", "-flat", str(REPO)],
                         capture_output=True, text=True, check=True).stdout
    assert "process.executor = 'awsbatch'" in out
    assert "workDir = 's3://lab-bucket/work'" in out
    assert "process.queue = { params.aws_cpu_queue }" in out and "params.aws_cpu_queue = 'storm-lab-cpu'" in out
    assert "aws.region = 'eu-west-1'" in out
    assert "aws.batch.maxSpotAttempts = 3" in out and "cliPath" not in out  # only when asked
    # Batch reads accelerator, not --gpus
    assert "process.'withLabel:process_gpu'.accelerator = { meta.resources?.devices ?: 1 }" in out
    assert "2147483647" in out  # a reclaimed spot host is retried
    assert "process.container = { image(task.ext.image ?: 'storm') }" in out


def test_each_model_trains_and_predicts_in_its_environments_image(tmp_path):
    """TRAIN and PREDICT of a model run in its environment's image, storm-<environment>
    (`storm models` names it), unless params.model_images names another; the core's models in the
    step's usual image. A stub run of the docker profile with the engine off: the trace records them."""
    extra = tmp_path / "no-engine.config"
    extra.write_text("docker.enabled = false\ntrace.fields = 'name,container'\n")
    run = run_pipeline(tmp_path, "-profile", "test,docker", "-c", str(extra), "-stub-run", "--models",
                       "control_mean,state,cpa,scgen,biolord,cellot", "--model_images", "biolord=lab/biolord-gpu",
                       "--container_registry", "reg.example", "--container_tag", "9")
    assert run.result.returncode == 0, run.output[-3000:]
    images = {(step(row), row["name"].split()[-1].rstrip(")")): row["container"]
              for row in run.trace() if step(row) in ("TRAIN", "PREDICT")}
    expected = {"control_mean": "storm", "cellot": "storm", "state": "storm-state", "cpa": "storm-cpa",
                "scgen": "storm-scgen", "biolord": "lab/biolord-gpu"}
    assert images == {(step, model): f"reg.example/{image}:9" for step in ("TRAIN", "PREDICT")
                      for model, image in expected.items()}
