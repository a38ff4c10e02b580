"""The closed-form baselines against effects worked out by hand on a tiny screen."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from approx import assert_close
from storm.data import PerturbationData
from storm.models import get_model_class
from storm.models.baselines import RULES
from storm.spec import DatasetSpec

CONTROL = {"A": [1.0, 1.0, 1.0], "B": [2.0, 2.0, 2.0], "C": [5.0, 5.0, 5.0]}
#: training effects (pair mean minus its cell type's training controls)
TRAINED = {("A", "x"): [1, 0, 0], ("A", "y"): [0, 2, 0], ("A", "x+w"): [0, 0, 4],
           ("B", "x"): [3, 0, 0], ("B", "z"): [0, 0, 1]}
HELD_OUT = [("A", "z"), ("A", "x+y"), ("A", "w"), ("B", "y"), ("B", "x+y"), ("C", "x")]
TEST_CONTROLS = {"A": [0.0, 0.5, 1.0], "B": [4.0, 4.0, 4.0], "C": [7.0, 7.0, 7.0]}


@pytest.fixture
def screen() -> PerturbationData:
    """Two cells a group; each cell sits 0.5 either side of its group's mean, so means are exact."""
    groups = [("train", ct, "control", mean) for ct, mean in CONTROL.items()]
    groups += [("train", ct, pert, np.add(CONTROL[ct], effect)) for (ct, pert), effect in TRAINED.items()]
    groups += [("test", ct, pert, np.full(3, 9.0)) for ct, pert in HELD_OUT]
    groups += [("test", ct, "control", mean) for ct, mean in TEST_CONTROLS.items()]
    rows = [(split, ct, pert, np.asarray(mean, dtype=float) + side) for split, ct, pert, mean in groups
            for side in (-0.5, 0.5)]
    return PerturbationData(
        X=np.stack([r[3] for r in rows]).astype(np.float32), genes=np.array(["g0", "g1", "g2"]),
        cell_ids=pa.chunked_array([pa.array([f"c{i}" for i in range(len(rows))])]),
        perturbation=np.array([r[2] for r in rows]), cell_type=np.array([r[1] for r in rows]),
        batch=np.zeros(len(rows), dtype=str), split=np.array([r[0] for r in rows]), spec=DatasetSpec())


def fitted(name, screen, tmp_path):
    model = get_model_class(name)(screen.spec)
    model.fit(screen, tmp_path)
    return model


def predicted_effect(model, cell_type, perturbation):
    controls = np.asarray([TEST_CONTROLS[cell_type]], dtype=np.float32)
    return model.predict(controls, cell_type, perturbation)[0] - controls[0]


PERTURBED_MEAN = {"A": np.mean([[1, 0, 0], [0, 2, 0], [0, 0, 4]], axis=0), "B": np.array([1.5, 0, 0.5])}
EXPECTED = {
    "additive": {("A", "x+y"): [1, 2, 0], ("A", "z"): [0, 0, 1], ("B", "y"): [0, 2, 0], ("B", "x+y"): [3, 2, 0],
                 ("A", "w"): [0, 0, 0]},
    "perturbed_mean": {("A", "x+y"): PERTURBED_MEAN["A"], ("B", "y"): PERTURBED_MEAN["B"],
                       ("C", "x"): (PERTURBED_MEAN["A"] + PERTURBED_MEAN["B"]) / 2},
    "matching_mean": {("A", "x+y"): [0.5, 1, 0], ("B", "x+y"): [1.5, 1, 0], ("A", "w"): [0, 0, 4],
                      ("A", "z"): PERTURBED_MEAN["A"], ("B", "y"): PERTURBED_MEAN["B"]},
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_baseline_effects_match_hand_computation(name, screen, tmp_path):
    model = fitted(name, screen, tmp_path)
    for (ct, pert), effect in EXPECTED[name].items():
        assert_close(predicted_effect(model, ct, pert), np.asarray(effect, dtype=float), tol=1e-5)
    # saved and loaded, the same predictions
    model.save(tmp_path)
    loaded = get_model_class(name)(screen.spec)
    loaded.load_state(tmp_path)
    for ct, pert in EXPECTED[name]:
        assert_close(predicted_effect(loaded, ct, pert), predicted_effect(model, ct, pert))


def test_every_held_out_pair_records_its_rule(screen, tmp_path):
    fitted("additive", screen, tmp_path)
    rules = pd.read_csv(tmp_path / RULES).set_index(["cell_type", "perturbation"])["rule"]
    assert sorted(rules.index) == sorted(HELD_OUT)
    assert rules["A", "x+y"] == "x: its effect in the cell type; y: its effect in the cell type"
    assert rules["A", "z"] == "z: fallback, its mean effect over other cell types"
    assert rules["A", "w"] == "w: fallback, never trained, no effect"
    fitted("matching_mean", screen, tmp_path)
    rules = pd.read_csv(tmp_path / RULES).set_index(["cell_type", "perturbation"])["rule"]
    assert rules["A", "w"] == "mean of the 1 combinations containing it"
    assert rules["C", "x"] == "fallback: perturbed mean of the other cell types"
