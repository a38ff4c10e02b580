"""A multi-GPU workstation without a GPU: tasks claim distinct GPUs from the list, a task waits
while all are held, and a GPU comes free when its task dies, however it dies."""

import os
import signal
import subprocess
import sys

CLAIM = ("import sys, time; from storm.gpus import claim_gpu; import os; "
         "print(claim_gpu(poll_seconds=0.1, timeout=float(sys.argv[1])), os.environ.get('CUDA_VISIBLE_DEVICES'), "
         "flush=True); time.sleep(60)")


def start(tmp_path, timeout: float, **env):
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(timeout)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "STORM_GPUS": "0,1", "STORM_GPU_LOCKS": str(tmp_path), **env})


def test_tasks_claim_distinct_gpus_and_a_killed_task_frees_its_own(tmp_path):
    first, second = start(tmp_path, 5), start(tmp_path, 5)
    try:
        mine = first.stdout.readline().split()
        assert mine[0] == mine[1]  # the claimed GPU is the only one it sees
        assert {mine[0], second.stdout.readline().split()[0]} == {"0", "1"}
        third = start(tmp_path, 0.3)  # both held: it waits, then gives up
        assert third.wait(30) != 0 and "no free GPU among 0,1 after 0s" in third.stderr.read()
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        fourth = start(tmp_path, 10)
        line = fourth.stdout.readline().split()
        fourth.kill()
        assert line == [mine[0], mine[0]]  # the killed task's GPU, free again
    finally:
        for proc in (first, second):
            proc.kill()


def test_a_schedulers_choice_is_left_alone(tmp_path):
    proc = start(tmp_path, 1, CUDA_VISIBLE_DEVICES="3")
    try:
        assert proc.stdout.readline().split() == ["None", "3"]
    finally:
        proc.kill()
