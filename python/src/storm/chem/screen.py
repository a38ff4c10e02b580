"""Synthetic chemical screens whose effects follow structure, so molecule features can be tested.

Each drug is a real molecule (:func:`storm.chem.molecules.known_drugs`). Its effect on a cell line
at a dose and time is

    response(dose, time) * (structure program + own program) * cell-line scale

* the *structure program* is a gene program read off the drug's descriptors and Morgan
  fingerprint through a fixed random mixing, so drugs with similar structures move the same genes
  the same way (a model that sees the molecule can predict a drug it never trained on);
* the *own program* is a smaller effect unique to the drug, which no structure can predict;
* each cell line weights the structure's latent factors differently (transfer helps, not exactly);
* *response* is a Hill curve of dose (its EC50 depends on structure too) times a saturating
  function of time.

Single-cell screens get negative-binomial counts as :mod:`storm.synth` makes them; bulk screens
get replicate log-expression profiles with Gaussian noise, like LINCS level-3 signatures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..bulk import mark_bulk
from ..errors import InputError
from ..synth import sample_counts
from .molecules import DESCRIPTORS, Featurizer, featurize, known_drugs

VEHICLE = "DMSO"


@dataclass(frozen=True)
class ScreenConfig:
    """Size and effect strengths of a synthetic chemical screen."""

    n_genes: int = 400
    n_cell_lines: int = 3
    n_drugs: int = 32
    doses: tuple[float, ...] = (0.1, 1.0, 10.0)  # µM
    times: tuple[float, ...] = (24.0,)  # hours
    cells_per_condition: int = 20  # single cells, or replicate wells in a bulk screen
    controls_per_cell_line: int = 120
    bulk: bool = False
    n_factors: int = 8  # latent factors the molecule's features are mixed into
    program_share: float = 0.3  # share of genes each factor loads on
    effect_scale: float = 1.2
    own_effect_scale: float = 0.25  # the part of a drug's effect its structure does not explain
    hill: float = 1.5
    time_constant: float = 12.0  # hours to half the effect
    dispersion: float = 8.0
    mean_library_size: float = 4000.0
    bulk_noise: float = 0.15
    seed: int = 0


def _structure_factors(smiles: pd.Series, n_factors: int, rng: np.random.Generator) -> np.ndarray:
    """Drugs x factors: the standardised physico-chemical descriptors (size, lipophilicity,
    polarity, ...) and fingerprint bits through a fixed random projection, mixed, so drugs alike in
    shape and chemistry get alike factors and a model can learn the map from a few dozen drugs."""
    features = featurize(smiles, Featurizer(radius=2, n_bits=1024)).to_numpy()
    mixing = rng.normal(size=(features.shape[1], n_factors))
    mixing[:-len(DESCRIPTORS)] *= np.sqrt(len(DESCRIPTORS) / (features.shape[1] - len(DESCRIPTORS)))  # equal shares
    factors = features @ mixing
    return (factors - factors.mean(axis=0)) / factors.std(axis=0)


def make_screen(cfg: ScreenConfig = ScreenConfig()) -> ad.AnnData:
    """A synthetic chemical screen: obs ``drug`` (``DMSO`` for controls), ``dose`` (µM, 0 for the
    vehicle), ``time`` (h), ``cell_line``, ``smiles``, ``batch``; X holds counts (single cells) or
    log-expression (bulk). ``uns['synth_screen']`` records the config."""
    drugs = known_drugs()
    if not 2 <= cfg.n_drugs <= len(drugs) or cfg.n_genes < 50 or cfg.n_cell_lines < 1:
        raise InputError(f"a synthetic screen needs 2 to {len(drugs)} drugs (not {cfg.n_drugs}), at least 50 genes "
                         f"and a cell line")
    if not cfg.doses or min(cfg.doses) <= 0 or not cfg.times or min(cfg.times) <= 0:
        raise InputError("a synthetic screen needs positive doses and times")
    rng = np.random.default_rng(cfg.seed)
    drugs = drugs.iloc[np.sort(rng.choice(len(drugs), size=cfg.n_drugs, replace=False))].reset_index(drop=True)
    factors = _structure_factors(drugs.set_index("name")["smiles"], cfg.n_factors, rng)

    loadings = rng.normal(0, cfg.effect_scale / np.sqrt(cfg.n_factors), size=(cfg.n_factors, cfg.n_genes))
    loadings *= rng.random((cfg.n_factors, cfg.n_genes)) < cfg.program_share
    own = rng.normal(0, cfg.own_effect_scale, size=(cfg.n_drugs, cfg.n_genes))
    own *= rng.random((cfg.n_drugs, cfg.n_genes)) < 0.1
    line_scale = rng.uniform(0.5, 1.5, size=(cfg.n_cell_lines, cfg.n_factors))
    log_ec50 = np.log(1.0) + 0.8 * factors[:, 0] + rng.normal(0, 0.3, size=cfg.n_drugs)  # µM, structure-led
    # effects[line, drug]: the full effect at saturating dose and time
    effects = np.einsum("df,lf,fg->ldg", factors, line_scale, loadings) + own[None]

    base = rng.normal(0.0, 1.2, size=cfg.n_genes)
    line_signature = rng.normal(0.0, 1.0, size=(cfg.n_cell_lines, cfg.n_genes))
    line_signature *= rng.random((cfg.n_cell_lines, cfg.n_genes)) < 0.25

    rows = []  # (cell line, drug index or -1, dose, time, count)
    for line in range(cfg.n_cell_lines):
        rows += [(line, -1, 0.0, t, max(1, cfg.controls_per_cell_line // len(cfg.times))) for t in cfg.times]
        rows += [(line, d, dose, t, cfg.cells_per_condition)
                 for d in range(cfg.n_drugs) for dose in cfg.doses for t in cfg.times]
    line_idx, drug_idx, dose, time = (np.repeat([r[i] for r in rows], [r[4] for r in rows]) for i in range(4))
    line_idx, drug_idx = line_idx.astype(int), drug_idx.astype(int)

    log_mean = base[None, :] + line_signature[line_idx]
    treated = drug_idx >= 0
    d = drug_idx[treated]
    ec50 = np.exp(log_ec50[d])
    response = dose[treated] ** cfg.hill / (ec50 ** cfg.hill + dose[treated] ** cfg.hill)
    response *= time[treated] / (time[treated] + cfg.time_constant)
    log_mean[treated] += response[:, None] * effects[line_idx[treated], d]
    if cfg.bulk:
        X = (log_mean + 8.0 + rng.normal(0, cfg.bulk_noise, size=log_mean.shape)).astype(np.float32)
    else:
        X = sp.csr_matrix(sample_counts(log_mean, cfg.mean_library_size, cfg.dispersion, rng))

    names = np.append(drugs["name"].to_numpy(dtype=object), VEHICLE)
    smiles = np.append(drugs["smiles"].to_numpy(dtype=object), "")
    lines = np.array([f"line{i}" for i in range(cfg.n_cell_lines)], dtype=object)
    obs = pd.DataFrame({
        "drug": pd.Categorical(names[drug_idx]),
        "dose": dose,
        "time": time,
        "cell_line": pd.Categorical(lines[line_idx]),
        "smiles": pd.Categorical(smiles[drug_idx]),
        "batch": pd.Categorical(np.where(rng.random(len(line_idx)) < 0.5, "plate0", "plate1")),
    }, index=pd.Index([f"{'well' if cfg.bulk else 'cell'}{i:06d}" for i in range(len(line_idx))], dtype=object))
    var = pd.DataFrame(index=pd.Index([f"G{i:04d}" for i in range(cfg.n_genes)], dtype=object))
    adata = ad.AnnData(X=X, obs=obs, var=var)
    if cfg.bulk:
        mark_bulk(adata)
    adata.uns["synth_screen"] = {**asdict(cfg), "doses": list(cfg.doses), "times": list(cfg.times),
                                 "dose_unit": "uM", "time_unit": "h"}
    return adata


#: the dataset spec of a synthetic screen (as `storm synth --chemical` prints it)
SCREEN_SPEC = {"perturbation_key": "drug", "cell_type_key": "cell_line", "control_value": VEHICLE,
               "batch_key": "batch", "dose_key": "dose", "time_key": "time", "smiles_key": "smiles"}
