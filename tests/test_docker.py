"""The Dockerfiles and the build script, checked without building: hadolint-clean, written to
install exactly the lock CI installs and tests, and an image per model environment."""

import os
import re
import shutil
import subprocess

from harness import REPO

DOCKER = REPO / "docker"


def test_hadolint_clean():
    hadolint = shutil.which("hadolint") or str(REPO / ".venv" / "bin" / "hadolint")
    files = [str(DOCKER / name) for name in ("Dockerfile", "Dockerfile.gpu", "Dockerfile.state", "Dockerfile.env")]
    done = subprocess.run([hadolint, "--config", str(DOCKER / ".hadolint.yaml"), *files],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_installs_the_ci_lock():
    text = (DOCKER / "Dockerfile").read_text()
    # the same constraints file the Makefile installs the venv with, the same Python minor version
    lock = r"-c /opt/storm/python/requirements\.lock"
    assert re.search(rf'pip install \$\{{PIP_OPTIONS\}} {lock} "/tmp/deps\[pipeline\]"', text)
    assert re.search(rf'--no-deps {lock} "/opt/storm/python\[pipeline\]"', text)
    assert "COPY python/pyproject.toml python/requirements.lock" in text
    makefile = (REPO / "Makefile").read_text()
    assert "-c python/requirements.lock" in makefile
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11\.\d+-slim", text, re.M)
    assert re.search(r"^USER \d+$", text, re.M)  # not root
    assert "BASE_IMAGE" in (DOCKER / "Dockerfile.gpu").read_text()


def test_state_image_adds_the_state_extra_from_the_same_lock():
    text = (DOCKER / "Dockerfile.state").read_text()
    install = (r'pip install --no-cache-dir \$\{PIP_OPTIONS\} -c /opt/storm/python/requirements\.lock '
               r'"/opt/storm/python\[state\]"')
    assert re.search(install, text)
    # the lock pins what the extra brings, as CI's venv (the test extra includes storm[state]) has it
    lock = (REPO / "python" / "requirements.lock").read_text()
    assert re.search(r"^arc-state==\d", lock, re.M) and re.search(r"^peft==\d", lock, re.M)
    assert re.search(r"^USER 1000$", text, re.M)


def test_build_script_builds_an_image_per_model_environment(tmp_path):
    """Every python/envs/<environment>.lock becomes storm-<environment>, the image the pipeline gives
    that environment's models, built on the GPU image with its lock. A stand-in `docker` records
    the calls (no engine runs here)."""
    calls = tmp_path / "calls"
    fake = tmp_path / "docker"
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = subprocess.run([str(DOCKER / "build.sh"), "--registry", "reg", "--tag", "7"], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    builds = [line for line in calls.read_text().splitlines() if line.startswith("build")]
    environments = sorted(p.stem for p in (REPO / "python" / "envs").glob("*.lock"))
    assert environments
    for environment in environments:
        tail = (f"--build-arg BASE_IMAGE=reg/storm-gpu:7 --build-arg ENVIRONMENT={environment} "
                f"-t reg/storm-{environment}:7 .")
        assert any(line.startswith("build --quiet -f docker/Dockerfile.env ") and line.endswith(tail)
                   for line in builds), builds
    text = (DOCKER / "Dockerfile.env").read_text()
    install = r'--no-deps -r "/opt/storm/python/envs/\$\{ENVIRONMENT\}\.lock"'
    assert re.search(r"pip install --no-cache-dir \$\{PIP_OPTIONS\} " + install, text)
    # the venvs are built from the same lock the same way
    assert '--no-deps -r "$lock"' in (REPO / "tools" / "install-env").read_text()


def test_build_script_usage():
    done = subprocess.run([str(DOCKER / "build.sh"), "--nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "error: unknown option --nope" in done.stderr
