import base64

import numpy as np
import pandas as pd
import pytest

from storm.errors import InputError
from storm.report import build_report, summarise


def _metrics():
    rows = []
    for seed in (0, 1):
        for model, base in (("good", 0.8), ("floor", 0.0)):
            for pair in range(3):
                rows.append(("ds", seed, model, "T", f"p{pair}", "pearson_delta", base + 0.1 * pair + 0.01 * seed))
                rows.append(("ds", seed, model, "T", f"p{pair}", "mse", 1 - base))
    return pd.DataFrame(rows, columns=["dataset", "seed", "model", "cell_type", "perturbation", "metric", "value"])


def test_summarise_mean_sd_n():
    metrics = _metrics()
    metrics.loc[0, "value"] = np.nan
    summary = summarise(metrics).set_index(["model", "metric"])
    good = metrics[(metrics["model"] == "good") & (metrics["metric"] == "pearson_delta")]["value"]
    assert summary.loc[("good", "pearson_delta"), "mean"] == pytest.approx(good.mean())
    assert summary.loc[("good", "pearson_delta"), "sd"] == pytest.approx(good.std())
    assert summary.loc[("good", "pearson_delta"), "n"] == 5
    assert summary.loc[("good", "pearson_delta"), "n_missing"] == 1


def test_build_report(tmp_path):
    paths = []
    for model, frame in _metrics().groupby("model"):
        paths.append(tmp_path / f"{model}.csv")
        frame.to_csv(paths[-1], index=False)
    build_report(paths, tmp_path / "out")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert set(summary["model"]) == {"good", "floor"}
    png = (tmp_path / "out" / "figures" / "ds_models.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    page = (tmp_path / "out" / "report.html").read_text()
    assert base64.b64encode(png).decode() in page  # self-contained
    # the better model is marked best on both metrics
    assert page.count("class='best'") == 2


def test_report_rejects_foreign_table(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"a": [1]}).to_csv(bad, index=False)
    with pytest.raises(InputError, match="not a storm metrics table"):
        build_report([bad], tmp_path / "out")
