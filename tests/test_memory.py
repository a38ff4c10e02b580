"""Memory requests under a real limit: every task runs in a memory cgroup of the size it asked for
(the kernel kills it past that, as SLURM's cgroups, AWS Batch and `docker run --memory` do), so a
run that completes shows each step fits the request sized from its data; a task given too little
is killed (exit 137), retried with more, and the run ends complete."""

import uuid
from pathlib import Path

import pytest

from harness import run_pipeline, step
from storm.report.trace import gigabytes

CGROUPS = Path("/sys/fs/cgroup/memory")
LIMITS = r"""
process {
    beforeScript = { ["cg=CGROUP/\$\$", "mkdir -p \$cg",
                      "echo ${task.memory.toBytes()} > \$cg/memory.limit_in_bytes",
                      "if [ -f \$cg/memory.memsw.limit_in_bytes ]; then echo ${task.memory.toBytes()} > " +
                      "\$cg/memory.memsw.limit_in_bytes; fi",
                      "echo \$\$ > \$cg/cgroup.procs"].join('; ') }
    withName: '.*:PREPARE' {
        memory = { task.attempt == 1 ? 64.MB : 2.GB * task.attempt }
    }
}
"""


@pytest.fixture
def cgroup():
    """A memory cgroup (v1) parent for this test's tasks, removed after it."""
    if not (CGROUPS / "memory.limit_in_bytes").is_file():
        pytest.skip("no cgroup v1 memory controller at /sys/fs/cgroup/memory (needed to enforce a limit)")
    parent = CGROUPS / f"storm-test-{uuid.uuid4().hex[:8]}"
    parent.mkdir()
    yield parent
    for child in sorted(parent.iterdir()):
        if child.is_dir():
            child.rmdir()
    parent.rmdir()


def test_each_task_fits_its_sized_request_and_one_killed_for_memory_is_retried_with_more(tmp_path, cgroup):
    # each task's shell moves itself into a cgroup limited to the task's memory before the step
    # starts (no swap here, and memsw capped too where it exists); PREPARE's first attempt asks
    # for 64 MB, less than the interpreter takes to import its packages
    (tmp_path / "limits.config").write_text(LIMITS.replace("CGROUP", str(cgroup)))
    run = run_pipeline(tmp_path, "-profile", "test", "--models", "control_mean,linear_additive", "--split_seeds", "0",
                       "-c", str(tmp_path / "limits.config"), timeout=1800)
    assert run.result.returncode == 0, run.output[-4000:]
    rows = run.trace()
    prepare = sorted((r for r in rows if step(r) == "PREPARE"), key=lambda r: int(r["attempt"]))
    assert [(r["attempt"], r["exit"], r["status"]) for r in prepare] == [("1", "137", "FAILED"),
                                                                         ("2", "0", "COMPLETED")]
    done = [r for r in rows if r["status"] == "COMPLETED"]
    assert {"VALIDATE", "PREPARE", "GENES", "REFERENCE", "TRAIN", "PREDICT", "EVALUATE"} <= {step(r) for r in done}
    for r in done:
        assert gigabytes(r["peak_rss"]) <= gigabytes(r["memory"]), r
    # the sized requests are the ones VALIDATE wrote for this dataset
    qc = next((tmp_path / "results").glob("*/qc.json"))
    assert '"memory"' in qc.read_text() and '"TRAIN_BACKED"' in qc.read_text()
    assert list((tmp_path / "results").glob("*/seed0*/linear_additive/metrics.csv"))
