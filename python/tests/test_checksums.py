"""Checksum sidecars guard storm's own cached outputs; a user's own file that they edited is theirs."""

import json

import anndata as ad
import pytest

from storm import io
from storm.errors import InputError


def edit(path):
    """What a user does to a screen storm synth wrote: rename a column with anndata, write it back."""
    adata = ad.read_h5ad(path)
    adata.obs = adata.obs.rename(columns={"perturbation": "gene"})
    adata.write_h5ad(path)


def test_a_user_s_edited_file_is_hashed_again_with_a_warning(small_h5ad, caplog):
    old = json.loads((small_h5ad.parent / "data.h5ad.sha256").read_text())
    edit(small_h5ad)
    with caplog.at_level("WARNING"):
        recorded = io.verify(small_h5ad)
    assert "data.h5ad was changed or truncated after it was written" in caplog.text
    assert "rm -r" not in caplog.text
    assert recorded["sha256"] != old["sha256"]
    assert json.loads((small_h5ad.parent / "data.h5ad.sha256").read_text()) == recorded  # brought up to date
    caplog.clear()
    io.verify(small_h5ad)
    assert not caplog.text  # said once


def test_a_cached_output_that_changed_names_only_its_task_folder(tmp_path, small_adata):
    task = tmp_path / "work" / "ab" / "cdef01"
    (task / "model").mkdir(parents=True)
    (task / ".command.sh").write_text("storm train ...\n")
    path = task / "model" / "pred.h5ad"
    io.write_h5ad(small_adata, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError) as error:
        io.verify(path)
    message = str(error.value)
    assert "pred.h5ad was changed or truncated after it was written (it has 100 bytes" in message
    assert f"made by the Nextflow task in {task}: delete that task folder (rm -r '{task}')" in message
    assert message.count("rm -r") == 1


def test_a_strict_check_refuses_any_change(small_h5ad):
    edit(small_h5ad)
    with pytest.raises(InputError, match="data.h5ad was changed or truncated after it was written"):
        io.verify(small_h5ad, strict=True)


def test_an_edited_screen_runs(small_h5ad, run_cli):
    """storm synth's sidecar no longer matches a screen the user edited: storm check runs on it."""
    edit(small_h5ad)
    result = run_cli("check", "--input", str(small_h5ad), "--perturbation-key", "gene")
    assert result.returncode == 0, result.stderr
    assert "hashed again" in result.stderr and "rm -r" not in result.stderr
