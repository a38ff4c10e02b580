import os
import socket
import subprocess
import sys
import time

import pytest

from harness import SECRET, Run, run_pipeline

#: the longest test files (CI's --durations), started first: the test workers take whole files in
#: collection order (`--no-loadscope-reorder`), so a long one left for last runs alone while the
#: other worker idles
LONGEST_FIRST = ("containers/test_containers.py", "test_pipeline.py", "test_interface.py", "test_faults.py",
                 "test_real_data.py", "test_study_pipeline.py", "test_environments.py", "test_zoo.py",
                 "test_shards.py", "test_predict_new.py")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        path = item.path.as_posix()
        return next((i for i, name in enumerate(LONGEST_FIRST) if path.endswith("/" + name)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: a file's tests keep their order


@pytest.fixture(scope="session")
def test_profile_run(tmp_path_factory) -> Run:
    """One run of `-profile test`, shared by the tests that read its outputs."""
    run = run_pipeline(tmp_path_factory.mktemp("test_profile"), "-profile", "test")
    assert run.result.returncode == 0, run.output[-5000:]
    return run


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """A local S3-compatible server (moto) on 127.0.0.1; boto3 and the storm CLI reach it through
    AWS_ENDPOINT_URL, with throwaway credentials."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    # AWS's managed policies (the Batch and ECS roles) exist in moto only when asked for
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=log, env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"})
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_DEFAULT_REGION": "us-east-1"}
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    proc.terminate()
    proc.wait(timeout=10)
