"""Malformed AnnData, generated: `storm validate` either accepts a file and every later step runs
on it, or rejects it with one `error:` line, exit status 2 and no output file. Never a traceback."""

import contextlib
import io as stdio
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from storm import io
from storm.cli import main
from storm.synth import SynthConfig, make_synthetic

BASE = make_synthetic(SynthConfig(n_genes=60, n_cell_types=2, n_perturbations=4, cells_per_pair=12,
                                  controls_per_cell_type=30, seed=5))


def storm(*args) -> tuple[int, str]:
    """Run the storm CLI in this process: (exit status, what it printed to stderr)."""
    err = stdio.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    return code, err.getvalue()


def _cell(adata, draw):
    return draw(st.integers(0, adata.n_obs - 1))


MUTATIONS = {
    "nan": lambda a, d: a.X.__setitem__((_cell(a, d), d(st.integers(0, a.n_vars - 1))), np.nan),
    "negative": lambda a, d: a.X.__setitem__((_cell(a, d), 0), -d(st.floats(0.5, 100))),
    "huge": lambda a, d: a.X.__setitem__((_cell(a, d), 1), d(st.sampled_from([1e9, 1e30, np.inf]))),
    "fractional": lambda a, d: a.X.__setitem__((_cell(a, d), 2), 2.5),
    "zeros": lambda a, d: a.X.__setitem__(slice(None), 0.0),
    "empty_cell": lambda a, d: a.X.__setitem__(_cell(a, d), 0.0),
    "dup_cell": lambda a, d: setattr(a, "obs_names", [a.obs_names[0], *a.obs_names[1:-1], a.obs_names[0]]),
    "dup_gene": lambda a, d: setattr(a, "var_names", [*a.var_names[:-1], a.var_names[0]]),
    "label": lambda a, d: a.obs["perturbation"].__setitem__(
        a.obs_names[_cell(a, d)], d(st.sampled_from(["", " ", "control ", "P1++P2", "+G0001", "G0001+",
                                                     "G0001+G0001", "control+G0001", "G0001+G0002"]))),
    "no_controls_in_a_type": lambda a, d: a.obs["perturbation"].__setitem__(
        (a.obs["cell_type"] == "CT1") & (a.obs["perturbation"] == "control"), "G0001"),
    "missing_cell_type": lambda a, d: a.obs["cell_type"].__setitem__(a.obs_names[_cell(a, d)], None),
}


@st.composite
def malformed(draw):
    adata = BASE.copy()
    adata.X = adata.X.toarray()
    adata.obs = adata.obs.astype({"perturbation": object, "cell_type": object})
    chosen = draw(st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=0, max_size=3, unique=True))
    for name in chosen:
        MUTATIONS[name](adata, draw)
    layer_only = draw(st.booleans()) and draw(st.booleans())  # a quarter: X only in a layer
    return adata, chosen, layer_only


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(case=malformed())
def test_validate_accepts_and_the_steps_run_or_rejects_in_one_line(tmp_path_factory, case):
    adata, chosen, layer_only = case
    folder = tmp_path_factory.mktemp("case")
    path = folder / "data.h5ad"
    io.write_h5ad(adata, path, checksum=False)
    if layer_only:
        with h5py.File(path, "r+") as f:
            f.move("X", "layers/raw")
    code, err = storm("-q", "validate", "--input", path, "--out", folder / "qc.json")
    event("rejected" if code else "accepted")
    if code != 0:
        assert code == 2, (chosen, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (chosen, err)
        assert not (folder / "qc.json").exists() and sorted(p.name for p in folder.iterdir()) == ["data.h5ad"]
        return
    # accepted: every later step runs on it
    steps = [
        ("split", "--input", path, "--out-dir", folder, "--min-cells", "3"),
        ("prepare", "--input", path, "--out", folder / "prepared.h5ad"),
        ("genes", "--prepared", folder / "prepared.h5ad", "--split", folder / "seed0" / "split.parquet",
         "--n-top-genes", "30", "--out", folder / "genes.csv"),
        ("train", "--prepared", folder / "prepared.h5ad", "--split", folder / "seed0" / "split.parquet",
         "--genes", folder / "genes.csv", "--model", "context_mean", "--out-dir", folder / "model"),
        ("predict", "--prepared", folder / "prepared.h5ad", "--split", folder / "seed0" / "split.parquet",
         "--genes", folder / "genes.csv", "--model-dir", folder / "model", "--out", folder / "pred.h5ad"),
    ]
    for step in steps:
        code, err = storm("-q", *step)
        assert code == 0, (chosen, step[0], err)
    assert Path(folder / "pred.h5ad").is_file()


def test_the_corpus_has_both_outcomes(tmp_path):
    """The property's two branches are both reachable: the clean base passes, a NaN fails."""
    folder = tmp_path
    io.write_h5ad(BASE, folder / "ok.h5ad", checksum=False)
    assert storm("-q", "validate", "--input", folder / "ok.h5ad", "--out", folder / "qc.json")[0] == 0
    bad = BASE.copy()
    bad.X = bad.X.toarray()
    bad.X[-1, -1] = np.nan
    io.write_h5ad(bad, folder / "bad.h5ad", checksum=False)
    assert storm("-q", "validate", "--input", folder / "bad.h5ad", "--out", folder / "qc2.json")[0] == 2
