"""The metric registry: every metric storm reports, one record each.

A record says which way the metric is better, what it measures and what it is blind to, who
computes it (storm's own evaluation or cell-eval), whether it compares a cell type's perturbations
with each other (then one held-out perturbation per cell type leaves it nothing to measure), and
in which metric profiles it is a key metric (the report's headline tables and figures, the
leaderboard's default). The evaluation, the report's glossary and tables, the leaderboard and
``docs/metrics.md`` (``storm metrics --markdown``) all read it. A family (``top{k}_deg_r2``) stands
for the metric at any k. Light on purpose: no numpy, so the CLI and the report import it freely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: the metric profiles (cell-eval's): every metric, the Virtual Cell Challenge's, or a cheap few
PROFILES = ("full", "vcc", "minimal")
#: the changed genes storm's recall looks at
TOP_K = 20
#: top-k DEG R² at these k by default (``storm evaluate --deg-k``), per pair and per drug
DEG_K = (20, 50, 100)
#: scGen's figures score mean expression on all genes and on the real top-100 changed genes
SCGEN_TOP_K = 100
#: energy distance and MMD are taken in this many principal components
N_PCS = 20
#: per side and pair, for the metrics quadratic in cells
MAX_CELLS = 500
#: a held-out pair is scored on at most this many of its cells, and its cell type on at most this
#: many controls (a seeded draw, the same for every model), so PREDICT, REFERENCE and EVALUATE do
#: not grow with the biggest pairs of a screen
CELLS_PER_PAIR = 1000
CONTROLS_PER_CELL_TYPE = 10000
#: the metric the report leads with and a sweep chooses by, unless told otherwise
HEADLINE = "pearson_delta"
#: the metrics of the mean change that get calibrated scores (``storm.evaluate.calibration``)
CALIBRATED = ("pearson_delta", "cosine_logfc", "mse", "r2_deg_weighted", "pearson_delta_pert")


@dataclass(frozen=True)
class Metric:
    name: str                 # the column value in metrics.csv; a family holds {k}
    higher: bool | None       # True: higher is better; False: lower; None: a description, no direction
    definition: str
    blind_to: str
    source: str = "storm"     # "storm" (storm's evaluation), "cell-eval" (its registry), "cell-eval score"
    across_perturbations: bool = False  # compares a cell type's held-out perturbations with each other
    key_in: tuple[str, ...] = ()        # the profiles in which it is a key metric
    instances: tuple[str, ...] = ()     # a family's k that cell-eval reports (for the direction check)

    @property
    def better(self) -> str:
        """"higher", "lower" or "" (no direction)."""
        return {True: "higher", False: "lower"}.get(self.higher, "")


_ALL = PROFILES
METRICS: tuple[Metric, ...] = (
    # the key metrics first, in the order the report shows them
    Metric("pearson_delta", True, "Pearson correlation over genes of the predicted and real deltas.",
           "scale: a prediction with the right direction but a tenth of the size scores 1", "cell-eval",
           key_in=("full", "minimal")),
    Metric("mse", False, "Mean squared error of the predicted and real pseudobulk means.",
           "the perturbation: dominated by baseline expression, so predicting the control scores well", "cell-eval",
           key_in=("full", "minimal")),
    Metric("mae", False, "Mean absolute error of the predicted and real pseudobulk means.", "as mse", "cell-eval",
           key_in=("vcc",)),
    Metric("cosine_logfc", True, "PerturBench's cosine similarity of the predicted and real log fold changes against "
           "the controls.", "magnitude", key_in=("full",)),
    Metric("rank_rmse", False, "Where the prediction ranks, by rmse, among all real perturbations of its cell type "
           "(0: closest to its own truth); rmse's rank partner.", "absolute error", across_perturbations=True,
           key_in=("full",)),
    Metric("discrimination_score_l1", True, "Normalised rank of the real perturbation among all real perturbations "
           "of the cell type by L1 distance to the prediction (1: the closest).",
           "absolute accuracy: a prediction only needs to be nearer its own truth than others", "cell-eval",
           across_perturbations=True, key_in=_ALL),
    Metric("overlap_at_{k}", True, "Share of the real top-{k} DE genes among the predicted top {k} (N: the number "
           "of real significant genes).", "direction and size of the changes", "cell-eval", key_in=_ALL,
           instances=("N", "50", "100", "200", "500")),
    Metric("de_direction_match", True, "Share of the real significant DE genes whose predicted change has the same "
           "sign.", "magnitude and genes that are not DE in reality", "cell-eval", key_in=("full",)),
    Metric("energy_distance_pca", False, f"Energy distance between predicted and real cells in {N_PCS} principal "
           f"components of the cell type's real cells (at most {MAX_CELLS} cells a side).",
           "genes outside the top components", key_in=("full",)),
    Metric("genewise_pearson", True, "Per gene, Pearson correlation across the cell type's perturbations of "
           "predicted and real deltas, averaged over genes (perturbation '(all)').",
           "perturbations one at a time; needs several perturbations per cell type", across_perturbations=True,
           key_in=("full",)),
    Metric("vcc_score", True, "cell-eval's Virtual Cell Challenge score: per metric, the gain over the cell-mean "
           "baseline toward the metric's best value (clipped at 0), averaged; per cell type.",
           "anything the averaged metrics miss; a model worse than the baseline on a metric counts 0 there",
           "cell-eval score", across_perturbations=True, key_in=("full", "vcc")),
    Metric("pearson_delta_pert", True, "Systema's: Pearson correlation over genes of the predicted and real shifts "
           "from the perturbed centroid (the cell type's held-out controls + the mean effect of its training "
           "perturbations: what perturbed_mean predicts).",
           "the shift all perturbations share (by design) and scale", key_in=("full",)),
    Metric("r2_deg_weighted", True, "R² of the real delta by the predicted delta, each gene weighted by its absolute "
           "real change (weights summing to 1 a pair).",
           "genes that do not change in reality: predicting changes there costs nothing", key_in=("full",)),
    # cell-eval's others
    Metric("mse_delta", False, "Mean squared error of the predicted and real deltas.",
           "which genes matter: many small errors weigh as much as a missed strong effect", "cell-eval"),
    Metric("mae_delta", False, "Mean absolute error of the predicted and real deltas.", "as mse_delta", "cell-eval"),
    Metric("discrimination_score_l2", True, "As discrimination_score_l1, by Euclidean distance.",
           "as discrimination_score_l1", "cell-eval", across_perturbations=True),
    Metric("discrimination_score_cosine", True, "As discrimination_score_l1, by cosine distance.",
           "magnitude, besides what discrimination_score_l1 misses", "cell-eval", across_perturbations=True),
    Metric("de_spearman_sig", True, "Spearman correlation of the numbers of significant DE genes across "
           "perturbations.", "which genes are DE: only how many", "cell-eval", across_perturbations=True),
    Metric("de_spearman_lfc_sig", True, "Spearman correlation of predicted and real log fold changes on real "
           "significant genes.", "genes that are not significant in reality (false positives)", "cell-eval"),
    Metric("de_sig_genes_recall", True, "Share of the real significant DE genes also significant in the prediction.",
           "false positives: calling every gene DE gives recall 1", "cell-eval"),
    Metric("de_nsig_counts_real", None, "Number of significant DE genes in the real cells (a description, not a "
           "score).", "the prediction entirely", "cell-eval"),
    Metric("de_nsig_counts_pred", None, "Number of significant DE genes in the predicted cells.",
           "whether they are the right genes", "cell-eval"),
    Metric("pr_auc", True, "Area under the precision-recall curve of the predicted DE p-values for the real "
           "significant genes.", "the direction of change", "cell-eval"),
    Metric("roc_auc", True, "Area under the ROC curve of the predicted DE p-values for the real significant genes.",
           "the direction of change; optimistic when few genes are DE", "cell-eval"),
    Metric("pearson_edistance", True, "Pearson correlation over perturbations of the predicted and real energy "
           "distances from the controls (quadratic in cells: skipped on big data).",
           "which direction each perturbation moves the cells", "cell-eval", across_perturbations=True),
    Metric("clustering_agreement", True, "Agreement of clusterings of the predicted and real perturbation "
           "centroids.", "per-gene accuracy", "cell-eval", across_perturbations=True),
    Metric("precision_at_{k}", True, "Share of the predicted top-{k} DE genes that are real significant DE genes.",
           "direction and size of the changes", "cell-eval", instances=("N", "50", "100", "200", "500")),
    # storm's own (PerturBench's and more)
    Metric("rmse", False, "PerturBench's root mean squared error of the predicted and real pseudobulk means.",
           "as mse"),
    Metric("rank_cosine_logfc", False, "As rank_rmse, by cosine_logfc; cosine_logfc's rank partner.",
           "absolute error, magnitude", across_perturbations=True),
    Metric(f"top{TOP_K}_deg_recall", True, f"Share of the real top-{TOP_K} changed genes among the predicted top "
           f"{TOP_K}.", "direction and size of the changes"),
    Metric("top{k}_deg_r2", True, "R² of the change on the real top-{k} changed genes.", "genes outside the top {k}"),
    Metric("drug_top{k}_deg_r2", True, "Per drug: R² of the change on each dose's real top-{k} changed genes, pooled "
           "over the drug's doses.", "genes outside the top {k}"),
    Metric("mmd_pca", False, "Maximum mean discrepancy (RBF kernel) between predicted and real cells in the same "
           "components.", "as energy_distance_pca; sensitive to the kernel width"),
    Metric("r2_delta", True, "R² of the real delta by the predicted delta over genes.",
           "nothing of the cells' spread: a mean-level score"),
    Metric("cellwise_distance", False, "Mean distance of each predicted cell to its nearest real cell, in PCA space.",
           "coverage: predicting one real-looking cell many times scores well"),
    Metric("direction_cosine", True, "Mean cosine of each predicted cell's change from the control mean with the "
           "real mean change.", "magnitude"),
    Metric("dose_response_error", False, "Per drug (a compound at one time in one cell type, over its doses): RMSE "
           "between the predicted and real dose-response curves, each dose's change projected on the real change at "
           "the highest dose, over the real curve's largest magnitude (1: about as far off as predicting no "
           "response).", "changes orthogonal to the drug's direction"),
    Metric("temporal_coherence", True, "Per time course (a compound in one cell type over its held-out time points): "
           "mean cosine, over successive time points, of the predicted and real change from one time point to the "
           "next.", "the size of the changes"),
    Metric("temporal_order", True, "Per time course: Spearman correlation of the time points with the predicted "
           "changes projected on the real course's direction (last minus first).",
           "changes off that direction; needs three time points to say more than a sign"),
    Metric("centroid_accuracy", True, "Systema's: 1 when the prediction's shift from the perturbed centroid is "
           "nearer (by cosine) its own real shift than any other held-out perturbation's of the cell type, else 0.",
           "how near: a near miss scores as a far one", across_perturbations=True),
    Metric("mse_deg_weighted", False, "Mean squared error of the pseudobulk means, each gene weighted as in "
           "r2_deg_weighted.", "genes that do not change in reality"),
    Metric("r2_mean_all", True, "scGen's score: squared Pearson correlation of predicted and real mean expression "
           "over all genes.", "the response itself: mean expression is mostly the baseline, so control_mean scores "
           "high"),
    Metric(f"r2_mean_top{SCGEN_TOP_K}_deg", True, f"scGen's score on the real top-{SCGEN_TOP_K} changed genes: "
           f"squared Pearson correlation of predicted and real mean expression there.",
           f"genes outside the top {SCGEN_TOP_K}; sign of the fit"),
)

METRICS += tuple(
    Metric(f"calibrated{kind}_{name}", True, f"{name} calibrated per pair: 0 at {floor}'s score, 1 at the "
           "technical-replicate ceiling (half the real cells, seeded, scored as a prediction of the other half; the "
           "model scored against that same half); NaN where the ceiling is within noise of the floor.",
           "what the raw metric misses; a pair whose replicates barely beat the floor (NaN, not a number)",
           key_in=("full",) if (kind, name) == ("", "pearson_delta") else ())
    for kind, floor in (("", "perturbed_mean"), ("_control", "control_mean")) for name in CALIBRATED)

_BY_NAME = {m.name: m for m in METRICS}
#: each family with the pattern of its names, compiled once (a report looks up every metric it shows)
_FAMILIES = [(m, re.compile(re.escape(m.name).replace(r"\{k\}", r"(N|\d+)") + "$")) for m in METRICS if "{k}" in m.name]


def lookup(name: str) -> tuple[Metric, str | None] | None:
    """The record of a metric (``overlap_at_50``: the family's) and its k (None for a plain one)."""
    if name in _BY_NAME:
        return _BY_NAME[name], None
    for metric, pattern in _FAMILIES:
        match = pattern.match(name)
        if match:
            return metric, match.group(1)
    return None


def higher_is_better(name: str) -> bool | None:
    """True/False when a metric has a better direction, else None (unknown, or a description)."""
    found = lookup(name)
    return found[0].higher if found else None


def better_direction(name: str) -> str:
    """"higher" or "lower": which way ``name`` is better, "" when it has no direction."""
    return {True: "higher", False: "lower"}.get(higher_is_better(name), "")


def describe(name: str) -> tuple[str, str]:
    """(definition, blind to) of a metric, a family's with its k; ('', '') when storm has no words for it."""
    found = lookup(name)
    if not found:
        return "", ""
    metric, k = found
    return metric.definition.replace("{k}", k or ""), metric.blind_to.replace("{k}", k or "")


def across_perturbations(name: str) -> bool:
    found = lookup(name)
    return bool(found and found[0].across_perturbations)


def key_metrics(profile: str = "full") -> list[str]:
    """The key metrics of a profile, in the report's order (a family by its cell-eval name at N)."""
    return [m.name.replace("{k}", "N") for m in METRICS if profile in m.key_in]


def cell_eval_directions() -> dict[str, bool]:
    """cell-eval's metrics with a direction, each family's instances by name (a test holds this
    equal to cell-eval's own registry, which storm does not import outside evaluation)."""
    return {name: m.higher for m in METRICS if m.source == "cell-eval" and m.higher is not None
            for name in ([m.name.replace("{k}", k) for k in m.instances] if m.instances else [m.name])}


#: docs/metrics.md holds the registry's table between these lines
MARKERS = ("<!-- the metric registry: storm metrics --markdown -->", "<!-- end of the metric registry -->")


def markdown() -> str:
    """The registry as docs/metrics.md shows it, between :data:`MARKERS`."""
    lines = [MARKERS[0], "## The registry", "",
             "Every metric storm reports, from the metric registry (`python/src/storm/metrics.py`), written by "
             "`storm metrics --markdown`; a test keeps this table in step. \"delta\" is a pseudobulk mean minus the "
             "mean of the same cell type's held-out control cells. `{k}` stands for any k. A pair is scored on at "
             f"most {CELLS_PER_PAIR:,} of its cells and a cell type on at most {CONTROLS_PER_CELL_TYPE:,} controls (a "
             "seeded draw, the same for every model), so scoring does not grow with the biggest pairs.", "",
             "Key metrics per profile (`--metric_profile`): " + "; ".join(
                 f"{p}: {', '.join(f'`{m}`' for m in key_metrics(p))}" for p in PROFILES) + ".", "",
             "| metric | better | computed by | across perturbations | definition | blind to |",
             "| --- | --- | --- | --- | --- | --- |"]
    for m in METRICS:
        lines.append(f"| `{m.name}` | {m.better or '–'} | {m.source} | {'yes' if m.across_perturbations else ''} | "
                     f"{m.definition} | {m.blind_to} |")
    return "\n".join([*lines, MARKERS[1]]) + "\n"
