"""Synthetic perturbation datasets that tell models apart.

Counts are negative binomial around a log-mean made of

* a gene baseline shared by all cells, plus a sparse cell-type signature (distinct baselines);
* a batch shift per gene (small);
* per perturbation, a sparse gene program whose effect is modulated per cell type: a scale per
  (perturbation, cell type) and a share of program genes that respond in some cell types only,
  so transferring an effect across cell types helps but is not exact;
* for a dual perturbation ``A+B``, the sum of the singles' effects plus a small interaction.

Perturbations are named after their target gene, which is knocked down.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True)
class SynthConfig:
    """Size and effect strengths of a synthetic dataset (defaults: the demo dataset)."""

    n_genes: int = 600
    n_cell_types: int = 4
    n_perturbations: int = 24
    n_combos: int = 0
    cells_per_pair: int = 40
    controls_per_cell_type: int = 240
    n_batches: int = 2
    program_size: int = 30
    effect_scale: float = 1.0
    cell_type_specific_share: float = 0.3
    interaction_scale: float = 0.3
    dispersion: float = 8.0
    mean_library_size: float = 4000.0
    control_value: str = "control"
    seed: int = 0


def _gene_names(n: int) -> list[str]:
    return [f"G{i:04d}" for i in range(n)]


def _perturbation_effects(cfg: SynthConfig, rng: np.random.Generator, genes: list[str]):
    """Return (names, effects) with effects of shape (n_perturbations, n_cell_types, n_genes)."""
    targets = rng.choice(cfg.n_genes, size=cfg.n_perturbations, replace=False)
    effects = np.zeros((cfg.n_perturbations, cfg.n_cell_types, cfg.n_genes))
    for p, target in enumerate(targets):
        program = rng.choice(cfg.n_genes, size=cfg.program_size, replace=False)
        shared = rng.normal(0.0, cfg.effect_scale, size=cfg.program_size)
        # how strongly each cell type responds to this perturbation
        scale = rng.uniform(0.4, 1.6, size=cfg.n_cell_types)
        # a share of program genes respond only in some cell types
        specific = rng.random(cfg.program_size) < cfg.cell_type_specific_share
        active = np.where(specific[None, :], rng.random((cfg.n_cell_types, cfg.program_size)) < 0.5, True)
        effects[p][:, program] = scale[:, None] * shared[None, :] * active
        effects[p][:, target] = -2.0  # the knocked-down target
    names = [genes[t] for t in targets]
    return names, effects


def sample_counts(log_mean: np.ndarray, mean_library_size: float, dispersion: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Negative-binomial counts (a gamma-Poisson mixture) around each cell's log-mean profile,
    with log-normal library sizes."""
    proportions = np.exp(log_mean - log_mean.max(axis=1, keepdims=True))
    proportions /= proportions.sum(axis=1, keepdims=True)
    library = rng.lognormal(np.log(mean_library_size), 0.3, size=log_mean.shape[0])
    mu = proportions * library[:, None]
    return rng.poisson(rng.gamma(dispersion, mu / dispersion)).astype(np.float32)


#: cells drawn from one random stream: the data are the same however many go into a written block
CELLS_PER_DRAW = 4096


@dataclass(frozen=True)
class SyntheticScreen:
    """A synthetic screen's cells and the means their counts are drawn around, before any count."""

    cfg: SynthConfig
    obs: pd.DataFrame
    var: pd.DataFrame
    log_mean_parts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # base, cell type, batch, effects
    codes: tuple[np.ndarray, np.ndarray, np.ndarray]  # per cell: cell type, perturbation (-1 control), batch

    @property
    def n_draws(self) -> int:
        return -(-len(self.obs) // CELLS_PER_DRAW)

    def counts(self, draw: int) -> sp.csr_matrix:
        """Counts of the ``draw``-th run of :data:`CELLS_PER_DRAW` cells, from its own seeded stream."""
        cells = slice(draw * CELLS_PER_DRAW, (draw + 1) * CELLS_PER_DRAW)
        ct, pert, batch = (codes[cells] for codes in self.codes)
        base, signature, shift, effects = self.log_mean_parts
        log_mean = base[None, :] + signature[ct] + shift[batch]
        perturbed = pert >= 0
        log_mean[perturbed] += effects[pert[perturbed], ct[perturbed]]
        rng = np.random.default_rng([self.cfg.seed, draw])
        return sp.csr_matrix(sample_counts(log_mean, self.cfg.mean_library_size, self.cfg.dispersion, rng))

    def blocks(self, draws_per_block: int = 8):
        """Count blocks of ``draws_per_block`` draws each, in cell order."""
        for first in range(0, self.n_draws, draws_per_block):
            yield sp.vstack([self.counts(d) for d in range(first, min(first + draws_per_block, self.n_draws))],
                            format="csr")

    @property
    def uns(self) -> dict:
        return {"synth": dict(self.cfg.__dict__)}


def synthetic_screen(cfg: SynthConfig = SynthConfig()) -> SyntheticScreen:
    """The cells (obs), genes and effects of a synthetic dataset; counts are drawn block by block
    (:meth:`SyntheticScreen.blocks`), so a screen of any size is made in bounded memory."""
    rng = np.random.default_rng(cfg.seed)
    genes = _gene_names(cfg.n_genes)
    cell_types = [f"CT{i}" for i in range(cfg.n_cell_types)]
    batches = [f"batch{i}" for i in range(cfg.n_batches)]

    base = rng.normal(0.0, 1.2, size=cfg.n_genes)
    ct_signature = rng.normal(0.0, 1.0, size=(cfg.n_cell_types, cfg.n_genes))
    ct_signature *= rng.random((cfg.n_cell_types, cfg.n_genes)) < 0.25
    batch_shift = rng.normal(0.0, 0.1, size=(cfg.n_batches, cfg.n_genes))

    single_names, single_effects = _perturbation_effects(cfg, rng, genes)
    names, effects = list(single_names), list(single_effects)
    for _ in range(cfg.n_combos):
        a, b = sorted(rng.choice(cfg.n_perturbations, size=2, replace=False))
        interaction = rng.normal(0.0, cfg.interaction_scale, size=(cfg.n_cell_types, cfg.n_genes))
        interaction *= rng.random(cfg.n_genes) < 0.05
        names.append(f"{single_names[a]}+{single_names[b]}")
        effects.append(single_effects[a] + single_effects[b] + interaction)
    effects = np.stack(effects) if effects else np.zeros((0, cfg.n_cell_types, cfg.n_genes))

    # (cell type, perturbation index or -1 for control, cell count)
    groups = [(c, -1, cfg.controls_per_cell_type) for c in range(cfg.n_cell_types)]
    groups += [(c, p, cfg.cells_per_pair) for c in range(cfg.n_cell_types) for p in range(len(names))]
    ct_idx = np.concatenate([np.full(n, c, dtype=np.int32) for c, _, n in groups])
    pert_idx = np.concatenate([np.full(n, p, dtype=np.int32) for _, p, n in groups])
    n_cells = ct_idx.size
    batch_idx = rng.integers(cfg.n_batches, size=n_cells).astype(np.int32)

    labels = np.array([cfg.control_value] + names, dtype=object)
    width = max(6, len(str(n_cells - 1)))
    obs = pd.DataFrame(
        {
            "perturbation": pd.Categorical.from_codes(pert_idx + 1, categories=labels),
            "cell_type": pd.Categorical.from_codes(ct_idx, categories=cell_types),
            "batch": pd.Categorical.from_codes(batch_idx, categories=batches),
        },
        index=pd.Index([f"cell{i:0{width}d}" for i in range(n_cells)], dtype=object),
    )
    var = pd.DataFrame(index=pd.Index(genes, dtype=object))
    return SyntheticScreen(cfg, obs, var, (base, ct_signature, batch_shift, effects), (ct_idx, pert_idx, batch_idx))


def make_synthetic(cfg: SynthConfig = SynthConfig()) -> ad.AnnData:
    """Generate a synthetic perturbation dataset in memory (:func:`write_synthetic` writes one of
    any size).

    Parameters
    ----------
    cfg
        sizes, effect strengths and the seed; the same config gives the same data.

    Returns
    -------
    AnnData with integer counts in a CSR ``X`` and categorical obs columns ``perturbation``,
    ``cell_type`` and ``batch``; ``uns['synth']`` records the config.
    """
    screen = synthetic_screen(cfg)
    X = sp.vstack(list(screen.blocks()), format="csr")
    return ad.AnnData(X=X, obs=screen.obs, var=screen.var, uns=screen.uns)


def write_synthetic(cfg: SynthConfig, out, draws_per_block: int = 8) -> SyntheticScreen:
    """Write a synthetic dataset to ``out`` a block of cells at a time (the same data as
    :func:`make_synthetic`, whatever ``draws_per_block``)."""
    from tqdm import tqdm

    from .rowblocks import write_h5ad_rows

    screen = synthetic_screen(cfg)
    with write_h5ad_rows(out, screen.obs, screen.var, screen.uns) as rows:
        X = rows.matrix("X", cfg.n_genes)
        with tqdm(total=len(screen.obs), desc="synth", unit="cell", unit_scale=True, disable=None) as progress:
            for block in screen.blocks(draws_per_block):
                X.append(block)
                progress.update(block.shape[0])
    return screen


@dataclass(frozen=True)
class TimeCourseConfig:
    """A time course whose cells move along a known velocity field (``storm synth --time-course``).

    Each cell type has a trajectory direction in gene space: its control cells spread along it,
    their RNA velocity (``layers['velocity']``, in log-expression units like prepared X) points
    along it, and each stimulus pushes cells along it, by a stimulus-specific amount growing
    with time, plus a smaller program of the stimulus's own that no velocity predicts."""

    n_genes: int = 200
    n_cell_types: int = 4
    n_stimuli: int = 6
    times: tuple[float, ...] = (10.0, 14.0, 19.0)
    cells_per_condition: int = 24
    controls_per_cell_type: int = 160
    trajectory_share: float = 0.3   # genes on a cell type's trajectory
    own_scale: float = 0.3          # size of a stimulus's own program against the trajectory's push
    velocity_noise: float = 0.3
    mean_library_size: float = 4000.0
    dispersion: float = 8.0
    control_value: str = "control"
    seed: int = 0


#: the dataset spec of a synthetic time course
TIME_COURSE_SPEC = {"perturbation_key": "stimulus", "cell_type_key": "cell_type", "time_key": "time",
                    "batch_key": None}


def make_time_course(cfg: TimeCourseConfig = TimeCourseConfig()) -> ad.AnnData:
    """Generate a synthetic time course: counts in X, obs ``stimulus``, ``time`` (controls at
    every time), ``cell_type``, and ``layers['velocity']``."""
    rng = np.random.default_rng(cfg.seed)
    g, k = cfg.n_genes, cfg.n_cell_types
    base = rng.normal(0.0, 1.2, size=g)
    signature = rng.normal(0.0, 1.0, size=(k, g)) * (rng.random((k, g)) < 0.25)
    direction = rng.normal(0.0, 1.0, size=(k, g)) * (rng.random((k, g)) < cfg.trajectory_share)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True) / np.sqrt(cfg.trajectory_share * g)
    push = rng.uniform(0.6, 1.4, size=cfg.n_stimuli)
    own = rng.normal(0.0, cfg.own_scale, size=(cfg.n_stimuli, g)) * (rng.random((cfg.n_stimuli, g)) < 0.1)
    latest = max(cfg.times)

    groups = [(c, -1, t, cfg.controls_per_cell_type // len(cfg.times)) for c in range(k) for t in cfg.times]
    groups += [(c, s, t, cfg.cells_per_condition) for c in range(k) for s in range(cfg.n_stimuli) for t in cfg.times]
    ct = np.concatenate([np.full(n, c) for c, _, _, n in groups])
    stim = np.concatenate([np.full(n, s) for _, s, _, n in groups])
    time = np.concatenate([np.full(n, t) for _, _, t, n in groups])
    progress = rng.uniform(-0.5, 0.5, size=ct.size)  # where each cell sits on its trajectory
    log_mean = base + signature[ct] + progress[:, None] * direction[ct]
    stimulated = stim >= 0
    share = (time / latest)[:, None]
    log_mean[stimulated] += share[stimulated] * (push[stim[stimulated], None] * direction[ct[stimulated]]
                                                 + own[stim[stimulated]])
    counts = sample_counts(log_mean, cfg.mean_library_size, cfg.dispersion, rng)
    velocity = direction[ct] * (1 + cfg.velocity_noise * rng.normal(size=(ct.size, g)))

    names = np.array([cfg.control_value] + [f"stim{i}" for i in range(cfg.n_stimuli)], dtype=object)
    obs = pd.DataFrame({"stimulus": pd.Categorical(names[stim + 1]), "time": time,
                        "cell_type": pd.Categorical(np.array([f"CT{i}" for i in range(k)], dtype=object)[ct])},
                       index=pd.Index([f"cell{i:06d}" for i in range(ct.size)], dtype=object))
    adata = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=pd.Index(_gene_names(g), dtype=object)))
    adata.layers["velocity"] = velocity.astype(np.float32)
    adata.uns["synth"] = {k_: list(v) if isinstance(v, tuple) else v for k_, v in cfg.__dict__.items()}
    return adata
