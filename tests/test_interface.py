"""The pipeline's interface on real Nextflow: --help, the parameter schema and its launch-time
checks, samplesheets with differently named datasets, a cache that survives a growing grid, an
--outdir that belongs to one run, -preview."""

import dataclasses
import json
import re
import subprocess

import pandas as pd
import pytest

from harness import REPO, nextflow_bin, run_pipeline, step

SCHEMA = json.loads((REPO / "nextflow_schema.json").read_text())
PROPERTIES = {name: spec for group in SCHEMA["$defs"].values() for name, spec in group["properties"].items()}


def launch(tmp_path, *args):
    """A run that is expected to stop at launch: (exit status, output)."""
    run = run_pipeline(tmp_path, *args, timeout=300)
    return run.result.returncode, run.output


def test_help_lists_every_parameter_by_group(tmp_path):
    code, out = launch(tmp_path, "--help")
    assert code == 0
    for group in SCHEMA["$defs"].values():
        assert f"{group['title']}:" in out
    for name, spec in PROPERTIES.items():
        assert re.search(rf"--{name}\s+{re.escape(spec['description'][:30])}", out), name
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_help_for_one_parameter(tmp_path):
    code, out = launch(tmp_path, "--help", "batch_key")
    assert code == 0
    assert "--batch_key  (string)" in out and "default: 'batch'" in out and "--models" not in out


#: (arguments, the error lines they must give); every schema check of a launch reports at once, so
#: independent mistakes share one launch (each launch costs a JVM start)
BAD_PARAMS = [
    (["--modles", "control_mean", "--split-seeds", "5", "--n_top_genes", "many", "--min_cells", "0",
      "--split_seeds", "0,x", "--split_strategy", "transfr", "--eval_split", "train", "--subsample_fraction", "1.5",
      "--workflow", "loader"],
     ["error: unknown parameter --modles (did you mean --models?)",
      "error: unknown parameter --split-seeds (did you mean --split_seeds?)",
      "error: --n_top_genes must be an integer, got 'many'",
      "error: --min_cells must be at least 1, got 0",
      "error: --split_seeds '0,x' is malformed",
      "error: --split_strategy must be one of transfer, combo, combo_inverse, zeroshot, unseen_drug, unseen_dose, "
      "manual, file, got 'transfr' (did you mean transfer?)",
      "error: --eval_split must be one of val, test, got 'train'",
      "error: --subsample_fraction must be at most 1, got 1.5",
      "error: --workflow must be one of perturbation, loaders, got 'loader'"]),
    (["--split_strategy", "manual", "--manual_holdout", "nope.yaml"],
     ["error: --manual_holdout: no such file: nope.yaml"]),
    (["--split_strategy", "manual"], ["error: the manual split strategy needs --manual_holdout"]),
    (["--models", "control_mean,control_mean"], ["error: --models lists control_mean twice"]),
    (["--workflow", "loaders", "--loader_strategies", "streaming,shuffle"], ["error: --loader_strategies 'streaming,"]),
]


@pytest.mark.parametrize("args,messages", BAD_PARAMS)
def test_bad_params_fail_at_launch(tmp_path, args, messages):
    code, out = launch(tmp_path, "-profile", "test", *args)
    assert code == 2
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(messages)  # one line per mistake, each said once
    for message in messages:
        assert any(line.startswith(message) for line in errors), message
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())
    assert not (tmp_path / "results").exists()  # not even an empty trace file is left behind


def test_schema_is_the_one_home_of_defaults():
    """nextflow.config reads the defaults from the schema; DatasetSpec has the dataset_spec group's fields."""
    from storm.spec import DatasetSpec

    out = subprocess.run([nextflow_bin(), "config", "-flat", str(REPO)], capture_output=True, text=True,
                         check=True).stdout
    for name, spec in PROPERTIES.items():
        if "default" in spec:
            assert f"params.{name} = {spec['default']!r}".replace("True", "true").replace("False", "false") in out \
                or f"params.{name} = {json.dumps(spec['default'])}" in out, name
    spec_fields = [f.name for f in dataclasses.fields(DatasetSpec)]
    assert spec_fields == list(SCHEMA["$defs"]["dataset_spec"]["properties"])
    for name, value in dataclasses.asdict(DatasetSpec()).items():
        assert PROPERTIES[name].get("default") == value, name


def test_the_samplesheet_schema_names_parameters():
    """assets/schema_input.json, the home of the samplesheet's rules: id and path, then columns that
    each set a parameter of the same name, with what a blank cell means."""
    sheet = json.loads((REPO / "assets" / "schema_input.json").read_text())["items"]
    assert sheet["required"] == ["id", "path"]
    columns = {name: spec for name, spec in sheet["properties"].items() if name not in ("id", "path")}
    assert set(columns) <= set(PROPERTIES) and set(SCHEMA["$defs"]["dataset_spec"]["properties"]) <= set(columns)
    assert {spec["blank"] for spec in columns.values()} == {"global", "none"}


def test_the_schema_offers_the_registered_split_strategies():
    """storm.split.strategies is the home of the strategies: the schema's choices are its benchmark
    strategies' names, in its order, and the parameters naming a strategy's file are the files its
    strategies read."""
    from storm.split.strategies import STRATEGIES

    offered = [name for name, s in STRATEGIES.items() if s.benchmark]
    assert PROPERTIES["split_strategy"]["enum"] == offered and "none" not in offered
    for name in offered:
        assert f"{name}:" in PROPERTIES["split_strategy"]["help_text"], name
    files = {param: spec["split_strategy"] for param, spec in PROPERTIES.items() if "split_strategy" in spec}
    assert files == {s.input_file: s.name for s in STRATEGIES.values() if s.input_file}


def test_the_parameters_page_is_generated_from_the_schema():
    """docs/parameters.md is what tools/parameters-doc makes of the schema: every parameter with its
    default, and nothing else."""
    made = subprocess.run([str(REPO / "tools" / "parameters-doc")], capture_output=True, text=True, check=True).stdout
    assert (REPO / "docs" / "parameters.md").read_text() == made, "stale: tools/parameters-doc > docs/parameters.md"
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `--(\w+)` \| ([^|]*) \|", made, re.M)}
    assert set(rows) == set(PROPERTIES) - {"help"}
    for name, default in rows.items():
        expected = PROPERTIES[name].get("default")
        assert default.strip() == ("–" if expected in (None, "") else f"`{expected}`"), name


def write_screen(path, names: dict, seed: int):
    """A small synthetic screen whose obs columns and control value carry ``names``."""
    from storm import io
    from storm.synth import SynthConfig, make_synthetic

    adata = make_synthetic(SynthConfig(n_genes=120, n_cell_types=3, n_perturbations=6, cells_per_pair=24,
                                       controls_per_cell_type=80, seed=seed))
    obs = adata.obs.rename(columns={k: v for k, v in names.items() if k in adata.obs})
    pert = names.get("perturbation", "perturbation")
    obs[pert] = obs[pert].astype(str).replace("control", names["control"])
    adata.obs = obs.drop(columns=["batch"])
    io.write_h5ad(adata, path)


def test_samplesheet_of_differently_named_datasets_to_one_report(tmp_path):
    """Two screens with their own column names and control values, no batch column, sampled for a
    pilot, run with the test profile's small settings on the user's data, into one report."""
    write_screen(tmp_path / "crispr.h5ad", {"perturbation": "gene", "cell_type": "cell_line",
                                            "control": "non-targeting"}, seed=1)
    write_screen(tmp_path / "drug.h5ad", {"perturbation": "condition", "control": "DMSO"}, seed=2)
    (tmp_path / "samples.csv").write_text(
        "id,path,perturbation_key,cell_type_key,control_value,batch_key\n"
        "crispr,crispr.h5ad,gene,cell_line,non-targeting,\n"
        "drug,drug.h5ad,condition,,DMSO,\n")
    run = run_pipeline(tmp_path, "-profile", "test", "--input", "samples.csv", "--split_seeds", "0",
                       "--models", "control_mean,context_mean", "--max_cells_per_pair", "16")
    assert run.result.returncode == 0, run.output[-4000:]
    summary = pd.read_csv(run.outdir / "report" / "summary.csv")
    assert set(summary["dataset"]) == {"crispr", "drug"}
    for dataset, control in (("crispr", "non-targeting"), ("drug", "DMSO")):
        sample = json.loads((run.outdir / dataset / "subsample.json").read_text())
        assert sample["n_cells_kept"] < sample["n_cells_input"]
        pairs = pd.read_csv(run.outdir / dataset / "seed0" / "pairs.csv")
        perturbed = pairs[pairs["perturbation"] != control].groupby(["cell_type", "perturbation"])["n_cells"].sum()
        assert (perturbed == 16).all() and perturbed.index.get_level_values(0).nunique() == 3
    qc = json.loads((run.outdir / "crispr" / "qc.json").read_text())
    assert qc["spec"]["perturbation_key"] == "gene" and qc["spec"]["batch_key"] is None  # blank: no batch
    assert json.loads((run.outdir / "drug" / "qc.json").read_text())["spec"]["cell_type_key"] == "cell_type"


def test_empty_batch_key_means_none(tmp_path):
    """`--batch_key ''` (Nextflow passes an empty value as true) is "no batch column"."""
    write_screen(tmp_path / "screen.h5ad", {"control": "control"}, seed=3)
    run = run_pipeline(tmp_path, "-profile", "test", "--input", "screen.h5ad", "--batch_key", "", "-stub-run")
    assert run.result.returncode == 0, run.output[-3000:]
    assert json.loads((run.outdir / "pipeline_info" / "params.json").read_text())["batch_key"] == ""
    assert "batch_key=" not in run.output.split("dataset screen:")[1].splitlines()[0]


@pytest.mark.parametrize("sheet,messages", [
    ("id,path,perturbation_kye\nx,screen.h5ad,gene\n",
     ["unknown column 'perturbation_kye' (did you mean perturbation_key?)"]),
    # every row's mistakes are reported at once
    ("id,path,split_strategy\nx,missing.h5ad,transfer\nx y,screen.h5ad,transfer\nz,screen.h5ad,combi\n"
     "z,screen.h5ad,transfer\n",
     ["row 1: no such file: missing.h5ad", "row 2: id 'x y' may hold only letters",
      "row 3: split_strategy must be one of transfer", "names dataset 'z' more than once"]),
])
def test_bad_samplesheet_fails_at_launch(tmp_path, sheet, messages):
    write_screen(tmp_path / "screen.h5ad", {"control": "control"}, seed=3)
    (tmp_path / "samples.csv").write_text(sheet)
    code, out = launch(tmp_path, "--input", "samples.csv")
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == len(messages)
    for message in messages:
        assert any(message in line for line in errors), message


def test_bad_predictions_sheet_fails_at_launch(tmp_path):
    """Every row's mistake at once, before any task: an unknown dataset, a seed not split, a name
    a trained model has, a missing file, a row twice; an unknown column alone."""
    (tmp_path / "p.h5ad").write_text("")
    (tmp_path / "preds.csv").write_text("dataset,seed,model,path\nsynthetic,0,tool,p.h5ad\nother,0,tool2,p.h5ad\n"
                                        "synthetic,7,tool3,p.h5ad\nsynthetic,0,context_mean,p.h5ad\n"
                                        "synthetic,1,tool4,missing.h5ad\nsynthetic,0,tool,p.h5ad\n")
    code, out = launch(tmp_path, "-profile", "test", "--predictions", "preds.csv")
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    messages = ["row 2: dataset 'other' is not one of this run's (synthetic)",
                "row 3: seed '7' is not one of --split_seeds (0, 1)",
                "row 4: model 'context_mean' is also trained by this run", "row 5: no such file: missing.h5ad",
                "row 6: synthetic seed 0 tool is listed twice"]
    assert code == 2 and len(errors) == len(messages), out[-2000:]
    for message in messages:
        assert any(message in line for line in errors), message
    (tmp_path / "preds.csv").write_text("dataset,seed,model,path,pertcol\nsynthetic,0,tool,p.h5ad,gene\n")
    code, out = launch(tmp_path, "-profile", "test", "--predictions", "preds.csv")
    assert code == 2 and "error: --predictions preds.csv: unknown column 'pertcol'" in out


def test_yaml_samplesheet(tmp_path):
    write_screen(tmp_path / "screen.h5ad", {"perturbation": "gene", "control": "NT"}, seed=4)
    (tmp_path / "samples.yaml").write_text(
        "- id: screen\n  path: screen.h5ad\n  perturbation_key: gene\n  control_value: NT\n"
        "  batch_key: none\n  cell_types: [CT0, CT1]\n  split_strategy: zeroshot\n")
    run = run_pipeline(tmp_path, "--input", "samples.yaml", "-stub-run", "--split_seeds", "0")
    assert run.result.returncode == 0, run.output[-3000:]
    assert "dataset screen: " in run.output and "zeroshot cell_types=CT0,CT1" in run.output
    assert {step(row) for row in run.trace()} >= {"SUBSAMPLE", "SPLIT"}
    assert (run.outdir / "screen" / "seed0_zeroshot").is_dir()


def test_model_config_typo_stops_at_check(tmp_path):
    run = run_pipeline(tmp_path, "-profile", "test", "--models", "control_mean,linear_additive",
                       "--model_set", "linear_additive.max_epoch=3")
    assert run.result.returncode != 0
    assert "error: unknown config key(s) max_epoch for LinearAdditive" in run.output
    assert {step(row) for row in run.trace() if row["status"] != "ABORTED"} <= {"SYNTH", "CHECK"}


def test_growing_grid_reruns_only_the_new_cells(tmp_path):
    """Two models, then three with -resume: only the new model's tasks (and the model check, the
    verdict and the report) run; a new run into the same --outdir is refused; -preview runs nothing."""
    base = ["-profile", "test", "--split_seeds", "0"]
    first = run_pipeline(tmp_path, *base, "--models", "control_mean,context_mean")
    assert first.result.returncode == 0, first.output[-3000:]
    grown = run_pipeline(tmp_path, *base, "--models", "control_mean,context_mean,linear_additive", "-resume")
    assert grown.result.returncode == 0, grown.output[-3000:]
    executed = sorted(row["name"] for row in grown.trace() if row["status"] == "COMPLETED")
    assert executed == ["PERTURBATION:CHECK (synthetic)", "PERTURBATION:EVALUATE (synthetic seed0 linear_additive)",
                        "PERTURBATION:PREDICT (synthetic seed0 linear_additive)", "PERTURBATION:REPORT",
                        "PERTURBATION:TRAIN (synthetic seed0 linear_additive)", "PERTURBATION:VERDICT"]
    assert {row["status"] for row in grown.trace()} == {"COMPLETED", "CACHED"}
    summary = pd.read_csv(grown.outdir / "report" / "summary.csv")
    assert set(summary["model"]) == {"control_mean", "context_mean", "linear_additive"}

    again = run_pipeline(tmp_path, *base, "--models", "control_mean")
    assert again.result.returncode == 2
    assert "error: --outdir results holds the results of run" in again.output and "-resume" in again.output

    preview = run_pipeline(tmp_path, *base, "-preview", "--outdir", "elsewhere")
    assert preview.result.returncode == 0
    assert "preview only: the pipeline was planned, nothing ran" in preview.output
    assert "report:" not in preview.output and not (tmp_path / "elsewhere").exists()


def test_each_train_task_gets_the_settings_the_plan_gives_its_run(tmp_path):
    """The grid is read once (storm.grid, in CHECK): variants, a sweep, quoted values with spaces,
    bracketed values and a -params-file's model_configs reach each TRAIN task's command as the
    plan.json the run publishes says, word for word."""
    (tmp_path / "params.json").write_text(json.dumps({"model_configs": {
        "cellot": {"hidden": [16, 16], "steps": 5}, "fast": {"batch_size": 32}}}))
    run = run_pipeline(tmp_path, "-profile", "test", "-stub-run", "--split_seeds", "0", "-params-file", "params.json",
                       "--models", "control_mean,cellot,linear_additive,fast=linear_additive",
                       "--model_set", "linear_additive.max_epochs=3 fast.lr=1e-2|1e-3 'cellot.hidden=[8, 8]' "
                                      "\"cellot.lr=2e-4\"")
    assert run.result.returncode == 0, run.output[-3000:]
    plan = json.loads((run.outdir / "pipeline_info" / "plan.json").read_text())
    expected = {r["name"]: sorted(f"{key}={value}" for key, value in r["settings"].items()) for r in plan["runs"]}
    assert set(expected) == {"control_mean", "cellot", "linear_additive", "fast@lr=1e-2", "fast@lr=1e-3"}
    assert expected["cellot"] == ["hidden=[8, 8]", "lr=2e-4", "steps=5"]
    assert expected["fast@lr=1e-3"] == ["batch_size=32", "lr=1e-3", "max_epochs=3"]
    received = {}
    for name, folder in ((d.name, d) for d in (run.outdir / "synthetic" / "seed0").iterdir() if d.is_dir()):
        if (folder / "model" / "args.txt").is_file():
            words = (folder / "model" / "args.txt").read_text().splitlines()
            words = words[:words.index("--checkpoint-dir")]
            assert words[::2] == ["--set"] * (len(words) // 2)
            received[name] = sorted(words[1::2])
    assert received == expected


#: runs that fail at launch or in a task; each is repeated, since what it printed besides storm's
#: error was a race (a collectFile still sorting when the run aborted)
FAILED_RUNS = [
    (["--models", "control_mean,nope"], "error: unknown model 'nope'"),
    (["--models", "linear_additive", "--model_set", "linear_additive.max_epoch=3"], "error: unknown config key(s)"),
    (["--split_strategy", "manual", "--manual_holdout", "holdout.yaml"],
     "error: manual holdout names (any cell type)/NOT_IN_THE_SCREEN, which is not in the data"),
    (["--input", "screen.h5ad", "--batch_key", "plate"], "error: obs column 'plate' not found"),
    (["--input", "screen.h5ad", "--batch_key", "", "--control_value", "nope"], "error: control value 'nope' not found"),
    (["--n_top_genes", "many"], "error: --n_top_genes must be an integer"),
]


@pytest.mark.parametrize("args,message", FAILED_RUNS)
@pytest.mark.parametrize("attempt", [1, 2])
def test_a_failed_run_says_one_thing(tmp_path, args, message, attempt):
    """storm's error line, Nextflow's error block and storm's last words, nothing from Java's internals."""
    write_screen(tmp_path / "screen.h5ad", {"control": "control"}, seed=5)
    (tmp_path / "holdout.yaml").write_text("test:\n  perturbations: [NOT_IN_THE_SCREEN]\n")
    run = run_pipeline(tmp_path, "-profile", "test", "--split_seeds", "0", *args, timeout=600)
    assert run.result.returncode != 0
    assert message in run.output
    java = [line for line in run.output.splitlines() if re.search(r"Exception|^WARN: ", line)]
    assert not java, run.output[-3000:]
