import pytest

from storm import io


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces(tmp_path):
    target = tmp_path / "out.json"
    io.write_json({"a": 1}, target)
    io.write_json({"a": 2}, target)
    assert io.read_json(target) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_read_obs_only(small_h5ad, small_adata):
    obs = io.read_obs(small_h5ad)
    assert obs.equals(small_adata.obs)
    assert io.read_shape(small_h5ad) == small_adata.shape


def test_missing_and_unreadable(tmp_path):
    from storm.errors import InputError

    with pytest.raises(InputError, match="not found"):
        io.read_obs(tmp_path / "nope.h5ad")
    junk = tmp_path / "junk.h5ad"
    junk.write_text("not hdf5")
    with pytest.raises(InputError, match="cannot read"):
        io.read_h5ad(junk)
