"""Runs the real pipeline with the project's Nextflow runtime."""

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the secret key the S3 tests hand boto3; it must never show up in any output
SECRET = "storm-test-secret-key-0123456789"


def nextflow_bin() -> str:
    """The Nextflow to test with: $NEXTFLOW, the one `make install` wrote, or one on PATH."""
    for candidate in (os.environ.get("NEXTFLOW"), REPO / ".venv" / "bin" / "nextflow", shutil.which("nextflow")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.fail("no nextflow found: run `make install` (or set NEXTFLOW)")


def step(row: dict) -> str:
    """A trace row's step: its process's simple name (``PERTURBATION:TRAIN (tag)`` -> ``TRAIN``)."""
    return row["name"].split(" (")[0].rsplit(":", 1)[-1]


class Run:
    def __init__(self, cwd: Path, result: subprocess.CompletedProcess):
        self.cwd, self.result = cwd, result
        self.output = result.stdout + result.stderr

    @property
    def outdir(self) -> Path:
        return self.cwd / "results"

    def trace(self) -> list[dict]:
        """Rows of this run's trace (the newest trace file)."""
        traces = sorted((self.outdir / "pipeline_info").glob("execution_trace_*.txt"))
        with open(traces[-1]) as fh:
            return list(csv.DictReader(fh, delimiter="\t"))


def pipeline_cmd(*args: str) -> list[str]:
    """The command line of a pipeline run into ./results."""
    return [nextflow_bin(), "run", str(REPO / "main.nf"), "-ansi-log", "false", "--outdir", "results", *args]


def run_pipeline(cwd: Path, *args: str, timeout: int = 900, env: dict | None = None) -> Run:
    cwd.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(pipeline_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    return Run(cwd, result)

