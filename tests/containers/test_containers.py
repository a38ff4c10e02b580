"""storm's images for real: `make images` builds every one and checks it by running commands in it
(here, on one test worker while the other runs the rest of the suite); then three are pushed to a
registry on localhost by docker/build.sh, pulled back by the pipeline by digest, and every task of
a run inside them gives the report the same run without containers gives."""

import json
import shutil
import socket
import subprocess
import time

import pandas as pd
import pytest

from harness import REPO, run_pipeline

VERSION = next(line.split('"')[1] for line in (REPO / "python" / "pyproject.toml").read_text().splitlines()
               if line.startswith("version = "))
#: the grid: a baseline, a Lightning model, and a published model in its own environment's image
MODELS = "control_mean,linear_additive,biolord"
SETTINGS = ("--split_seeds", "0", "--models", MODELS, "--n_top_genes", "100",
            "--model_set", "linear_additive.max_epochs=5 biolord.max_epochs=3",
            "--synth_args", "--n-genes 200 --n-perturbations 8 --cells-per-pair 20 --controls-per-cell-type 80")


#: what `make images` builds: storm's images and one per model environment
IMAGES = ["storm", "storm-gpu", "storm-state"] + [f"storm-{lock.stem}" for lock in
                                                 sorted((REPO / "python" / "envs").glob("*.lock"))]


@pytest.fixture(scope="module")
def built_images() -> str:
    """`make images`, as a user runs it: the engine, the wheel folder, the base, every image, the checks."""
    made = subprocess.run(["make", "-C", str(REPO), "images"], check=False, capture_output=True, text=True)
    assert made.returncode == 0, (made.stdout + made.stderr)[-5000:]
    return made.stdout


def test_every_image_is_built_and_passes_its_checks(built_images):
    checked = {line.split()[0].rsplit("/", 1)[-1].split(":")[0] for line in built_images.splitlines()
               if " ok: " in line and "(commit " in line}
    assert checked == set(IMAGES), built_images[-3000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registry(tmp_path):
    """Debian's docker-registry (the reference registry) on localhost, as ECR serves AWS Batch."""
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(json.dumps({"version": 0.1, "log": {"level": "error"}, "http": {"addr": f"127.0.0.1:{port}"},
                                  "storage": {"filesystem": {"rootdirectory": str(tmp_path / "blobs")}}}))
    server = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    server.terminate()
    server.wait()
    shutil.rmtree(tmp_path / "blobs", ignore_errors=True)  # gigabytes of pushed layers


def docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=False, capture_output=True, text=True)


def summary(run) -> pd.DataFrame:
    return pd.read_csv(run.outdir / "report" / "summary.csv").set_index(["model", "metric"])


def test_pipeline_in_images_pulled_from_a_registry(built_images, registry, tmp_path):
    digests = tmp_path / "digests.txt"
    build = [str(REPO / "docker" / "build.sh"), "--registry", registry, "--wheels", str(REPO / ".wheels"),
             "--only", "storm,gpu,biolord", "--push", "--digests", str(digests)]
    pushed = subprocess.run(build, check=False, capture_output=True, text=True, cwd=REPO)
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    images = [f"{registry}/{name}:{VERSION}" for name in ("storm", "storm-gpu", "storm-biolord")]
    assert all(f"pushed {image}" in pushed.stdout for image in images), pushed.stdout
    pinned = digests.read_text().split()
    assert len(pinned) == 3 and all(ref.startswith(f"{registry}/storm") and "@sha256:" in ref for ref in pinned)
    # gone from here, by tag and by digest: the run has to pull them, as AWS Batch pulls from ECR
    assert docker("rmi", *images).returncode == 0
    for ref in pinned:
        docker("rmi", ref)
    assert all(docker("image", "inspect", ref).returncode != 0 for ref in (images[0], pinned[0]))

    plain = run_pipeline(tmp_path / "plain", "-profile", "test", *SETTINGS)
    assert plain.result.returncode == 0, plain.output[-3000:]
    # pinned by digest, as a run should use exactly the images built
    contained = run_pipeline(tmp_path / "docker", "-profile", "test,docker", "--container_registry", registry,
                             "--container_digests", str(digests), *SETTINGS)
    assert contained.result.returncode == 0, contained.output[-3000:]
    # pulled back by digest: storm's for every step, biolord's for its TRAIN and PREDICT
    assert all(docker("image", "inspect", ref).returncode == 0 for ref in (pinned[0], pinned[2]))

    # every task in its image, biolord's TRAIN and PREDICT in its environment's, under hard limits
    commands = [path.read_text() for path in (tmp_path / "docker" / "work").glob("*/*/.command.run")]
    assert commands and all(f"{registry}/storm@sha256:" in text or f"{registry}/storm-biolord@sha256:" in text
                            for text in commands)
    assert len([text for text in commands if f"{registry}/storm-biolord@sha256:" in text]) == 2
    assert all("--memory-swap" in text for text in commands if "docker run" in text)

    # the same splits, and the same metrics within what threads change in training
    splits = [path.relative_to(plain.outdir) for path in plain.outdir.glob("synthetic/seed0/**/pairs.csv")]
    assert splits
    for path in splits:
        assert (plain.outdir / path).read_text() == (contained.outdir / path).read_text(), path
    plain_summary, contained_summary = summary(plain), summary(contained)
    assert plain_summary.index.equals(contained_summary.index)
    gap = (plain_summary["mean"] - contained_summary["mean"]).abs()
    baseline = gap.index.get_level_values("model") == "control_mean"
    assert gap[baseline].max() < 1e-5, gap[baseline].sort_values().tail()
    assert gap[~baseline].max() < 0.05, gap[~baseline].sort_values().tail()
