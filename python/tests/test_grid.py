"""The grid's plan (storm.grid): --models, --model_configs and --model_set read once into the runs
the pipeline trains. The pipeline's side (each TRAIN task's command) is in tests/test_interface.py."""

import json

import pytest

from storm.errors import StormError
from storm.grid import config_items, plan, split_items


@pytest.mark.parametrize("text,items", [
    ("", []),
    ("a.x=1  b.y=2", ["a.x=1", "b.y=2"]),
    ("a.x='p q' b.y=\"r s\"", ["a.x=p q", "b.y=r s"]),
    ("a.dims=[64, 64] a.m={k: [1, 2]} a.t=(1 2)", ["a.dims=[64, 64]", "a.m={k: [1, 2]}", "a.t=(1 2)"]),
    ("a.lr=1e-3|1e-4\tb.x=1\n", ["a.lr=1e-3|1e-4", "b.x=1"]),
])
def test_items_split_on_white_space_outside_quotes_and_brackets(text, items):
    assert split_items(text) == items


def test_an_unclosed_quote_is_an_error():
    with pytest.raises(StormError, match="unbalanced '"):
        split_items("a.x='p q")


def test_configs_flatten_to_dotted_items_typed_as_yaml_reads_them():
    assert config_items({"st": {"lora": {"rank": 8, "enable": True}, "dims": [64, 64], "name": "x y"}}) == [
        "st.lora.rank=8", "st.lora.enable=true", "st.dims=[64, 64]", "st.name=x y"]


def runs_of(models, model_set="", configs=None, images=""):
    return {run.name: run for run in plan(models, model_set, configs, images)}


#: (models, --model_set, --model_configs) -> each run's settings, exactly as TRAIN gets them
PLANS = [
    (["control_mean", "linear_additive"], "linear_additive.max_epochs=15", None,
     {"control_mean": {}, "linear_additive": {"max_epochs": "15"}}),
    # a variant takes its model's settings, then its own, whichever source gave them
    (["st", "st_lora=st"], "st.min_steps=5 st_lora.min_steps=7", {"st_lora": {"lora": {"enable": True}}},
     {"st": {"min_steps": "5"}, "st_lora": {"min_steps": "7", "lora.enable": "true"}}),
    # --model_set over --model_configs; a value with spaces or brackets kept whole
    (["cellot"], "cellot.hidden=[32, 32] 'cellot.lr=1e-3 '", {"cellot": {"hidden": [64], "steps": 20}},
     {"cellot": {"hidden": "[32, 32]", "steps": "20", "lr": "1e-3 "}}),
    # a sweep: the product of the swept keys, each configuration named after its values
    (["linear_additive"], "linear_additive.max_epochs=3 linear_additive.lr=1e-3|1e-4 linear_additive.batch_size=8|16",
     None,
     {f"linear_additive@lr={lr},batch_size={bs}": {"max_epochs": "3", "lr": lr, "batch_size": bs}
      for lr in ("1e-3", "1e-4") for bs in ("8", "16")}),
    # a sweep of a variant sweeps that variant only; its model's fixed settings still apply
    (["st", "st_small=st"], "st.min_steps=5 st_small.hidden_dim=16|32", None,
     {"st": {"min_steps": "5"}, "st_small@hidden_dim=16": {"min_steps": "5", "hidden_dim": "16"},
      "st_small@hidden_dim=32": {"min_steps": "5", "hidden_dim": "32"}}),
    # settings of an installed model that is not run are set aside
    (["control_mean"], "linear_additive.max_epochs=3", None, {"control_mean": {}}),
]


@pytest.mark.parametrize("models,model_set,configs,expected", PLANS)
def test_each_run_trains_with_the_settings_given_to_its_model_then_to_its_name(models, model_set, configs, expected):
    runs = runs_of(models, model_set, configs)
    assert {name: run.settings for name, run in runs.items()} == expected


def test_a_run_knows_its_model_environment_image_and_sweep():
    runs = runs_of(["control_mean", "cpa", "state", "st_fast=st", "biolord"],
                   "st_fast.lr=1e-3|1e-2", images="biolord=lab/biolord-gpu,st_fast=lab/st")
    assert (runs["control_mean"].environment, runs["control_mean"].image) == ("core", None)
    assert (runs["cpa"].environment, runs["cpa"].image) == ("cpa", "storm-cpa")
    assert runs["state"].image == "storm-state"
    assert runs["biolord"].image == "lab/biolord-gpu"
    fast = runs["st_fast@lr=1e-3"]
    assert (fast.model, fast.group, fast.sweep, fast.image) == ("st", "st_fast", {"lr": "1e-3"}, "lab/st")
    assert runs["control_mean"].sweep is None


def test_resources_come_from_the_resolved_config():
    runs = runs_of(["linear_additive", "latent_additive"], "latent_additive.backed=true")
    assert runs["latent_additive"].resources == {"memory": None, "devices": 1, "backed": True}
    assert runs["linear_additive"].resources["backed"] is False


@pytest.mark.parametrize("models,model_set,message", [
    (["nope"], "", "unknown model 'nope'"),
    (["linear_additive=st"], "", "'linear_additive=st': linear_additive is an installed model"),
    (["st_lora=st", "st_lora=st"], "", "model name 'st_lora' is given twice"),
    (["st", "st_lora=st"], "st_lroa.lora.rank=4", "names model 'st_lroa', which is not installed"),
    (["linear_additive"], "linear_additive.max_epoch=3", "unknown config key\\(s\\) max_epoch"),
    (["linear_additive"], "max_epochs=3", "must be <model>.<key>=<value>"),
])
def test_a_bad_grid_is_one_error(models, model_set, message):
    with pytest.raises(StormError, match=message):
        plan(models, model_set)


def test_storm_plan_writes_what_check_would(run_cli, tmp_path):
    configs = json.dumps({"linear_additive": {"max_epochs": 4}})
    result = run_cli("plan", "--models", "control_mean,linear_additive", "--model-set",
                     "linear_additive.lr=1e-3|1e-2", "--model-configs", configs,
                     "--out", str(tmp_path / "plan.json"))
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "plan.json").read_text())
    assert document["sweeps"] is True
    assert [run["name"] for run in document["runs"]] == ["control_mean", "linear_additive@lr=1e-3",
                                                        "linear_additive@lr=1e-2"]
    assert document["runs"][1]["settings"] == {"lr": "1e-3", "max_epochs": "4"}
