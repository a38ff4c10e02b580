"""What each metric measures and what it cannot see, for the report's glossary.

Directions come from :func:`storm.report.stats.higher_is_better` (storm's own table and
cell-eval's registry); this module holds only the words. "delta" is a pseudobulk mean minus the
mean of the same cell type's held-out control cells.
"""

from __future__ import annotations

import re

#: metric -> (definition, what it is blind to)
METRICS: dict[str, tuple[str, str]] = {
    "pearson_delta": ("Pearson correlation over genes of the predicted and real deltas.",
                      "scale: a prediction with the right direction but a tenth of the size scores 1"),
    "mse": ("Mean squared error of the predicted and real pseudobulk means.",
            "the perturbation: dominated by baseline expression, so predicting the control scores well"),
    "mae": ("Mean absolute error of the predicted and real pseudobulk means.", "as mse"),
    "mse_delta": ("Mean squared error of the predicted and real deltas.",
                  "which genes matter: many small errors weigh as much as a missed strong effect"),
    "mae_delta": ("Mean absolute error of the predicted and real deltas.", "as mse_delta"),
    "discrimination_score_l1": ("Normalised rank of the real perturbation among all real perturbations of the cell "
                                "type by L1 distance to the prediction (1: the closest).",
                                "absolute accuracy: a prediction only needs to be nearer its own truth than others"),
    "discrimination_score_l2": ("As discrimination_score_l1, by Euclidean distance.", "as discrimination_score_l1"),
    "discrimination_score_cosine": ("As discrimination_score_l1, by cosine distance.",
                                    "magnitude, besides what discrimination_score_l1 misses"),
    "de_spearman_sig": ("Spearman correlation of the numbers of significant DE genes across perturbations.",
                        "which genes are DE: only how many"),
    "de_direction_match": ("Share of the real significant DE genes whose predicted change has the same sign.",
                           "magnitude and genes that are not DE in reality"),
    "de_spearman_lfc_sig": ("Spearman correlation of predicted and real log fold changes on real significant genes.",
                            "genes that are not significant in reality (false positives)"),
    "de_sig_genes_recall": ("Share of the real significant DE genes also significant in the prediction.",
                            "false positives: calling every gene DE gives recall 1"),
    "de_nsig_counts_real": ("Number of significant DE genes in the real cells (a description, not a score).",
                            "the prediction entirely"),
    "de_nsig_counts_pred": ("Number of significant DE genes in the predicted cells.",
                            "whether they are the right genes"),
    "pr_auc": ("Area under the precision-recall curve of the predicted DE p-values for the real significant genes.",
               "the direction of change"),
    "roc_auc": ("Area under the ROC curve of the predicted DE p-values for the real significant genes.",
                "the direction of change; optimistic when few genes are DE"),
    "pearson_edistance": ("Pearson correlation over perturbations of the predicted and real energy distances from "
                          "the controls (quadratic in cells: skipped on big data).",
                          "which direction each perturbation moves the cells"),
    "clustering_agreement": ("Agreement of clusterings of the predicted and real perturbation centroids.",
                             "per-gene accuracy"),
    "vcc_score": ("cell-eval's Virtual Cell Challenge score: per metric, the gain over the cell-mean baseline toward "
                  "the metric's best value (clipped at 0), averaged; per cell type.",
                  "anything the averaged metrics miss; a model worse than the baseline on a metric counts 0 there"),
    "rmse": ("PerturBench's root mean squared error of the predicted and real pseudobulk means.", "as mse"),
    "cosine_logfc": ("PerturBench's cosine similarity of the predicted and real log fold changes against the "
                     "controls.", "magnitude"),
    "rank_rmse": ("Where the prediction ranks, by rmse, among all real perturbations of its cell type (0: closest "
                  "to its own truth); rmse's rank partner.", "absolute error"),
    "rank_cosine_logfc": ("As rank_rmse, by cosine_logfc; cosine_logfc's rank partner.", "absolute error, magnitude"),
    "top20_deg_recall": ("Share of the real top-20 changed genes among the predicted top 20.",
                         "direction and size of the changes"),
    "energy_distance_pca": ("Energy distance between predicted and real cells in 20 principal components of the "
                            "cell type's real cells (at most 500 cells a side).",
                            "genes outside the top components"),
    "mmd_pca": ("Maximum mean discrepancy (RBF kernel) between predicted and real cells in the same components.",
                "as energy_distance_pca; sensitive to the kernel width"),
    "r2_delta": ("R² of the real delta by the predicted delta over genes.",
                 "nothing of the cells' spread: a mean-level score"),
    "genewise_pearson": ("Per gene, Pearson correlation across the cell type's perturbations of predicted and real "
                         "deltas, averaged over genes (perturbation '(all)').",
                         "perturbations one at a time; needs several perturbations per cell type"),
    "cellwise_distance": ("Mean distance of each predicted cell to its nearest real cell, in PCA space.",
                          "coverage: predicting one real-looking cell many times scores well"),
    "direction_cosine": ("Mean cosine of each predicted cell's change from the control mean with the real mean "
                         "change.", "magnitude"),
    "dose_response_error": ("Per drug (a compound at one time in one cell type, over its doses): RMSE between the "
                            "predicted and real dose-response curves, each dose's change projected on the real "
                            "change at the highest dose, over the real curve's largest magnitude (1: about as far "
                            "off as predicting no response).", "changes orthogonal to the drug's direction"),
    "temporal_coherence": ("Per time course (a compound in one cell type over its held-out time points): mean "
                           "cosine, over successive time points, of the predicted and real change from one time "
                           "point to the next.", "the size of the changes"),
    "temporal_order": ("Per time course: Spearman correlation of the time points with the predicted changes "
                       "projected on the real course's direction (last minus first).",
                       "changes off that direction; needs three time points to say more than a sign"),
    "r2_mean_all": ("scGen's score: squared Pearson correlation of predicted and real mean expression over all genes.",
                    "the response itself: mean expression is mostly the baseline, so control_mean scores high"),
    "r2_mean_top100_deg": ("scGen's score on the real top-100 changed genes: squared Pearson correlation of "
                           "predicted and real mean expression there.", "genes outside the top 100; sign of the fit"),
}

_FAMILIES = [
    (re.compile(r"top(\d+)_deg_r2$"), ("R² of the change on the real top-{k} changed genes.",
                                        "genes outside the top {k}")),
    (re.compile(r"drug_top(\d+)_deg_r2$"), ("Per drug: R² of the change on each dose's real top-{k} changed genes, "
                                             "pooled over the drug's doses.", "genes outside the top {k}")),
    (re.compile(r"overlap_at_(N|\d+)$"), ("Share of the real top-{k} DE genes among the predicted top {k} "
                                          "(N: the number of real significant genes).",
                                          "direction and size of the changes")),
    (re.compile(r"precision_at_(N|\d+)$"), ("Share of the predicted top-{k} DE genes that are real significant DE "
                                            "genes.", "direction and size of the changes")),
]


def describe(metric: str) -> tuple[str, str]:
    """(definition, blind to) of a metric; ('', '') when storm has no words for it."""
    if metric in METRICS:
        return METRICS[metric]
    for pattern, (definition, blind) in _FAMILIES:
        match = pattern.match(metric)
        if match:
            return definition.format(k=match.group(1)), blind
    return "", ""
