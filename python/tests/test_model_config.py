import pytest

from storm.errors import StormError
from storm.models import get_model_class
from storm.models.config import flatten, read_config_file, resolve

DEFAULTS = {"lr": 0.1, "lora": {"enable": False, "rank": 16}, "overrides": {}}


def test_dot_keys_reach_nested_values_and_leave_defaults_alone():
    config = resolve(DEFAULTS, {"lora.rank": 8, "lr": 0.5})
    assert config == {"lr": 0.5, "lora": {"enable": False, "rank": 8}, "overrides": {}}
    assert DEFAULTS["lora"]["rank"] == 16


def test_nested_mapping_is_the_same_as_dot_keys():
    assert resolve(DEFAULTS, {"lora": {"enable": True}}) == resolve(DEFAULTS, {"lora.enable": True})


@pytest.mark.parametrize("key", ["lr_", "lora.rnk", "lr.x"])
def test_unknown_keys_are_named_with_the_valid_ones(key):
    with pytest.raises(StormError, match=rf"unknown config key\(s\) {key.replace('.', '[.]')} .*lora.rank"):
        resolve(DEFAULTS, {key: 1}, frozenset({"overrides"}))


def test_a_section_cannot_be_replaced_by_a_value():
    with pytest.raises(StormError, match="lora of model is a section"):
        resolve(DEFAULTS, {"lora": 3})


def test_open_sections_take_any_key():
    config = resolve(DEFAULTS, {"overrides.model.kwargs.blur": 0.1}, frozenset({"overrides"}))
    assert config["overrides"] == {"model": {"kwargs": {"blur": 0.1}}}
    assert flatten(config["overrides"], "overrides.") == {"overrides.model.kwargs.blur": 0.1}


def test_config_file(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("lora:\n  rank: 4\n")
    assert flatten(read_config_file(path)) == {"lora.rank": 4}
    path.write_text("- a list\n")
    with pytest.raises(StormError, match="must be a mapping"):
        read_config_file(path)


@pytest.mark.parametrize("name", ["linear_additive", "latent_additive", "decoder_only", "state"])
def test_shipped_defaults_load_and_validate(name):
    cls = get_model_class(name)
    assert cls.defaults and cls.resolve_config({}) == cls.defaults
    assert {"max_epochs", "max_steps"} & set(cls.defaults)


def test_train_cli_takes_config_file_then_set(prepared_split, tmp_path, run_cli):
    prepared, split, genes = prepared_split
    config = tmp_path / "la.yaml"
    config.write_text("max_epochs: 1\nhidden_dim: 8\nlatent_dim: 4\n")
    out = tmp_path / "model"
    result = run_cli("train", "--prepared", prepared, "--split", split, "--genes", genes, "--model",
                     "latent_additive", "--out-dir", out, "--config", config, "--set", "latent_dim=3",
                     "--set", "accelerator=cpu")
    assert result.returncode == 0, result.stderr
    import json

    saved = json.loads((out / "model.json").read_text())["config"]
    assert (saved["max_epochs"], saved["hidden_dim"], saved["latent_dim"]) == (1, 8, 3)


def test_train_cli_rejects_unknown_key_before_reading_data(tmp_path, run_cli):
    result = run_cli("train", "--prepared", tmp_path / "missing.h5ad", "--split", tmp_path / "s.csv",
                     "--genes", tmp_path / "g.csv", "--model", "state", "--out-dir", tmp_path / "m",
                     "--set", "lora.rnak=4")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown config key(s) lora.rnak")
