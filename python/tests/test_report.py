import base64
import json

import numpy as np
import pandas as pd
import pytest

from storm.errors import InputError
from storm.report import build_report, higher_is_better, paired_comparisons, summarise
from storm.report.trace import gigabytes, seconds


def _metrics(n_pairs=8):
    rng = np.random.default_rng(0)
    rows = []
    for seed in (0, 1):
        for pair in range(n_pairs):
            noise = rng.normal(0, 0.01)
            for model, base in (("good", 0.8), ("floor", 0.0), ("twin", 0.0)):
                rows.append(("ds", seed, model, "T", f"p{pair}", "pearson_delta", base + 0.01 * pair + noise))
                rows.append(("ds", seed, model, "T", f"p{pair}", "mse", 1 - base + noise))
    return pd.DataFrame(rows, columns=["dataset", "seed", "model", "cell_type", "perturbation", "metric", "value"])


def test_summarise_mean_sd_n():
    metrics = _metrics()
    metrics.loc[0, "value"] = np.nan
    summary = summarise(metrics).set_index(["model", "metric"])
    good = metrics[(metrics["model"] == "good") & (metrics["metric"] == "pearson_delta")]
    per_seed = good.groupby("seed")["value"].mean()  # the mean over pairs, per seed
    row = summary.loc[("good", "pearson_delta")]
    assert row["mean"] == pytest.approx(per_seed.mean())
    assert row["sd"] == pytest.approx(per_seed.std())  # over seeds, as the report's ± sd
    assert row["sd_pairs"] == pytest.approx(good["value"].std())
    assert (row["n"], row["n_seeds"], row["n_missing"]) == (15, 2, 1)
    assert row["better"] == "higher" and row["rank"] == 1
    assert summary.loc[("floor", "mse"), "rank"] == 2 and summary.loc[("good", "mse"), "rank"] == 1


def test_paired_comparisons_find_the_winner():
    table = paired_comparisons(_metrics()).set_index(["metric", "model_a", "model_b"])
    row = table.loc[("pearson_delta", "floor", "good")]
    assert row["n"] == 16 and row["mean_a_minus_b"] == pytest.approx(-0.8, abs=0.01)
    assert row["q_value"] < 0.05 and row["winner"] == "good"
    assert table.loc[("mse", "floor", "good"), "winner"] == "good"  # lower mse wins
    assert table.loc[("mse", "floor", "twin"), "winner"] == ""  # identical models: no winner
    assert np.isnan(table.loc[("mse", "floor", "twin"), "p_value"])


def test_cell_eval_directions_match_its_registry():
    from cell_eval import metrics_registry
    from cell_eval._types import MetricBestValue

    from storm.metrics import cell_eval_directions

    registry = {name: {MetricBestValue.ONE: True, MetricBestValue.ZERO: False}.get(
        metrics_registry.get_metric(name).best_value) for name in metrics_registry.list_metrics()}
    assert {k: v for k, v in registry.items() if v is not None} == cell_eval_directions()


def test_directions():
    assert higher_is_better("pearson_delta") is True  # from cell-eval's registry
    assert higher_is_better("mse") is False
    assert higher_is_better("rank_rmse") is False  # storm's own
    assert higher_is_better("made_up") is None


def test_trace_units():
    assert seconds("1m 3.5s") == pytest.approx(63.5)
    assert seconds("250ms") == pytest.approx(0.25)
    assert np.isnan(seconds("-"))
    assert gigabytes("512 MB") == pytest.approx(0.5)
    assert np.isnan(gigabytes("-"))


def test_build_report(tmp_path):
    paths = []
    for model, frame in _metrics().groupby("model"):
        paths.append(tmp_path / f"{model}.csv")
        frame.to_csv(paths[-1], index=False)
    model_dir = tmp_path / "model1"
    model_dir.mkdir()
    (model_dir / "model.json").write_text(json.dumps({"model": "good", "seed": 0, "dataset": "ds"}))
    pd.DataFrame({"epoch": [0, 1], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}).to_csv(
        model_dir / "train_log.csv", index=False)
    info = tmp_path / "pipeline_info"
    info.mkdir()
    pd.DataFrame({"process": ["PERTURBATION:TRAIN", "PERTURBATION:EVALUATE"], "tag": ["ds seed0 good", "ds seed0 good"],
                  "status": ["COMPLETED", "COMPLETED"],
                  "realtime": ["3.2s", "1m 2s"], "duration": ["4s", "1m 3s"], "peak_rss": ["1.2 GB", "300 MB"]}
                 ).to_csv(info / "execution_trace_2026-01-01_00-00-00.txt", sep="\t", index=False)
    from storm.report.cost import Prices, read_tasks

    tasks = read_tasks(info, Prices(cpu_hour=0.05, gpu_hour=1.0, gpu_processes=("TRAIN",)))
    assert tasks["cost_usd"].round(6).tolist() == [round(3.2 / 3600 * 1.05, 6), round(62 / 3600 * 0.05, 6)]
    build_report(paths, tmp_path / "out", [model_dir], tasks)
    out = tmp_path / "out"
    assert set(pd.read_csv(out / "summary.csv")["model"]) == {"good", "floor", "twin"}
    assert (pd.read_csv(out / "comparisons.csv")["winner"].fillna("") == "good").any()
    page = (out / "report.html").read_text()
    for name in ("ds_models.png", "ds_phenotypes_pearson_delta.png", "ds_phenotypes_mse.png", "training_curves.png",
                 "task_resources.png"):
        png = (out / "figures" / name).read_bytes()
        assert png.startswith(b"\x89PNG")
        assert base64.b64encode(png).decode() in page  # self-contained
    assert page.count("class='best'") == 2  # the good model, best on both metrics
    assert "<h2>Time and cost</h2>" in page and "<td>0.001794</td>" in page  # 3.2 s × $1.05/h + 62 s × $0.05/h


def test_report_rejects_foreign_table(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"a": [1]}).to_csv(bad, index=False)
    with pytest.raises(InputError, match="not a storm metrics table"):
        build_report([bad], tmp_path / "out")


def test_a_sweep_picks_each_split_s_best_configuration_on_validation_only():
    """Per seed, the configuration best on the validation pairs stands for its model on the test
    pairs, even where another configuration is better on test (test never chooses); models
    that were not swept pass through."""
    from storm.report import sweeps

    def rows(model, seed, value, n=4, metric="pearson_delta"):
        return [("ds", seed, model, "T", f"p{i}", metric, value) for i in range(n)]

    columns = ["dataset", "seed", "model", "cell_type", "perturbation", "metric", "value"]
    val = pd.DataFrame(rows("m@lr=1", 0, 0.9) + rows("m@lr=2", 0, 0.5) + rows("m@lr=1", 1, 0.1) + rows("m@lr=2", 1, 0.6)
                       + [("ds", 0, "m@lr=2", "T", "(all)", "pearson_delta", 5.0)], columns=columns)
    choices = sweeps.choose(val, "pearson_delta")
    chosen = choices[choices["chosen"]].set_index("seed")["configuration"]
    assert chosen.to_dict() == {0: "m@lr=1", 1: "m@lr=2"}
    assert (choices["val_pairs"] == 4).all()  # the (all) row is no pair
    assert sweeps.choose(val.assign(metric="mse", value=-val["value"]), "mse").query("chosen")["configuration"] \
        .tolist() == ["m@lr=1", "m@lr=2"]  # lower is better: the same choice on negated values
    test = pd.DataFrame(rows("m@lr=1", 0, 0.2) + rows("m@lr=2", 0, 0.99) + rows("m@lr=1", 1, 0.3)
                        + rows("m@lr=2", 1, 0.4) + rows("other", 0, 0.5), columns=columns)
    shown = sweeps.apply(test, choices)
    by = shown.groupby(["model", "seed"])["value"].mean()
    assert by.to_dict() == {("m", 0): 0.2, ("m", 1): 0.4, ("other", 0): 0.5}
    with pytest.raises(InputError, match="no better direction|not a metric"):
        sweeps.choose(val, "n_cells")


def test_metrics_that_cannot_tell_models_apart_are_flagged_and_never_win(tmp_path):
    """One held-out perturbation per cell type (Kang's design): discrimination is 1 for every
    model and is flagged; a metric the no-change floor wins is flagged; neither is bold, a
    winner or a leader. A pair held out in one seed shows n = 1, and the header counts pairs and
    (seed, pair) scores apart."""
    rng = np.random.default_rng(1)
    rows = []
    for seed, cell_types in ((0, ["A", "B", "C"]), (1, ["A", "D", "E"])):
        for ct in cell_types:
            for model, quality in (("control_mean", 0.0), ("good", 0.9), ("meh", 0.4)):
                noise = rng.normal(0, 0.01)
                rows += [("ds", seed, model, ct, "stim", "pearson_delta", quality + noise),
                         ("ds", seed, model, ct, "stim", "discrimination_score_l1", 1.0),
                         ("ds", seed, model, ct, "stim", "overlap_at_N", 0.02 if model == "control_mean" else 0.0)]
    path = tmp_path / "m.csv"
    pd.DataFrame(rows, columns=["dataset", "seed", "model", "cell_type", "perturbation", "metric", "value"]) \
        .to_csv(path, index=False)
    summary = build_report([path], tmp_path / "out").set_index(["metric", "model"])
    assert summary.loc[("discrimination_score_l1", "good"), "flag"].startswith("one held-out perturbation")
    assert "no-change floor" in summary.loc[("overlap_at_N", "good"), "flag"]
    assert summary.loc[("pearson_delta", "good"), "flag"] == "" and summary.loc[("pearson_delta", "good"), "rank"] == 1
    assert summary.loc[("overlap_at_N", "control_mean"), "rank"] is pd.NA
    comparisons = pd.read_csv(tmp_path / "out" / "comparisons.csv").fillna("")
    assert set(comparisons.loc[comparisons["metric"] != "pearson_delta", "winner"]) == {""}
    leaders = (tmp_path / "out" / "leaders.txt").read_text()
    assert "pearson_delta good" in leaders and "overlap_at_N" not in leaders and "discrimination" not in leaders
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("class='best'") == 1  # pearson_delta's good only
    assert "5 held-out (cell type, perturbation) pairs, scored 6 times" in page
    assert "n = 1" not in page.split("<table>")[1]  # A is held out in both seeds: the headline means have sd
    assert "<th>wins</th>" in page


def test_the_metric_registry_is_complete_and_its_page_current():
    """Every metric an evaluation writes has a record (direction, words); docs/metrics.md is the
    registry's page as `storm metrics --markdown` writes it."""
    from pathlib import Path

    from storm import metrics

    for name in ["pearson_delta", "overlap_at_50", "top50_deg_r2", "drug_top20_deg_r2", "top20_deg_recall",
                 "r2_mean_top100_deg", "precision_at_N", "rank_rmse"]:
        definition, blind = metrics.describe(name)
        assert definition and blind and "{k}" not in definition + blind, name
    assert metrics.describe("top50_deg_r2")[0] == "R² of the change on the real top-50 changed genes."
    assert metrics.across_perturbations("rank_rmse") and not metrics.across_perturbations("mse")
    assert metrics.key_metrics("minimal") == ["pearson_delta", "mse", "discrimination_score_l1", "overlap_at_N"]
    assert len({m.name for m in metrics.METRICS}) == len(metrics.METRICS)
    page = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    start, end = page.index(metrics.MARKERS[0]), page.index(metrics.MARKERS[1]) + len(metrics.MARKERS[1]) + 1
    assert page[start:end] == metrics.markdown(), "stale: replace its table by `storm metrics --markdown`"
