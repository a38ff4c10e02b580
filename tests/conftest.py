import pytest

from harness import Run, run_pipeline


@pytest.fixture(scope="session")
def test_profile_run(tmp_path_factory) -> Run:
    """One run of `-profile test`, shared by the tests that read its outputs."""
    run = run_pipeline(tmp_path_factory.mktemp("test_profile"), "-profile", "test")
    assert run.result.returncode == 0, run.output[-5000:]
    return run
