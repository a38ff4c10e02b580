"""The container images: lint-clean, and built from exactly the pins CI tests."""

import re
import shutil
import subprocess

from harness import REPO

DOCKER = REPO / "docker"


def test_hadolint_clean():
    hadolint = shutil.which("hadolint") or str(REPO / ".venv" / "bin" / "hadolint")
    done = subprocess.run([hadolint, "--config", str(DOCKER / ".hadolint.yaml"), str(DOCKER / "Dockerfile"),
                           str(DOCKER / "Dockerfile.gpu")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_installs_the_ci_lock():
    text = (DOCKER / "Dockerfile").read_text()
    # the same constraints file the Makefile installs the venv with, the same Python minor version
    assert re.search(r"pip install -c /opt/storm/python/requirements\.lock /opt/storm/python", text)
    assert "COPY python/pyproject.toml python/requirements.lock" in text
    makefile = (REPO / "Makefile").read_text()
    assert "-c python/requirements.lock" in makefile
    assert re.search(r"FROM python:3\.11\.\d+-slim", text)
    assert re.search(r"^USER \d+$", text, re.M)  # not root
    assert "BASE_IMAGE" in (DOCKER / "Dockerfile.gpu").read_text()


def test_build_script_usage():
    done = subprocess.run([str(DOCKER / "build.sh"), "--nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "error: unknown option --nope" in done.stderr
