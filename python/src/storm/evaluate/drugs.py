"""Per-drug metrics of a chemical screen: how well a model gets a drug across its doses.

A drug is a compound at one time in one cell type; its conditions are its doses. Rows carry the
perturbation label ``(drug) <compound>|time=<t>``: the leading parenthesis marks a row that
summarises several conditions, like the per-cell-type ``(all)`` rows, so it is never counted as
a held-out pair.
"""

from __future__ import annotations

import numpy as np

from ..spec import CONDITION_SEPARATOR, TIME, parse_condition
from .perturbench import r2, top_k_changes

DRUG_PREFIX = "(drug) "


def drug_label(compound: str, time: float | None) -> str:
    return DRUG_PREFIX + compound + ("" if time is None else f"{CONDITION_SEPARATOR}{TIME}={time:g}")


def dose_curve(delta: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The response at each dose (rows of ``delta``) along the drug's direction."""
    return delta @ direction


def drug_metrics(perturbations: list[str], pred_delta: np.ndarray, real_delta: np.ndarray,
                 deg_k: tuple[int, ...]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Per drug (rows: conditions in ``perturbations`` order): ``drug_top{k}_deg_r2``, the R² of
    the change over each dose's real top-k genes pooled across its doses, and
    ``dose_response_error``, the RMSE between predicted and real dose-response curves (each
    dose's change projected on the real change at the highest dose) over the real curve's largest
    magnitude (0: exact; 1: about as far off as predicting no response), for drugs with two or
    more doses. No rows when no condition has a dose."""
    parsed = [parse_condition(p) for p in perturbations]
    drugs: dict[str, list[int]] = {}
    for row, (compound, dose, time) in enumerate(parsed):
        if dose is not None:
            drugs.setdefault(drug_label(compound, time), []).append(row)
    out: dict[str, list[float]] = {f"drug_top{k}_deg_r2": [] for k in deg_k}
    out["dose_response_error"] = []
    for rows in drugs.values():
        rows = sorted(rows, key=lambda r: parsed[r][1])
        for k in deg_k:
            real, pred = top_k_changes(real_delta[rows], pred_delta[rows], k)  # pooled over the doses
            out[f"drug_top{k}_deg_r2"].append(float(r2(real.reshape(1, -1), pred.reshape(1, -1))[0]))
        out["dose_response_error"].append(_curve_error(pred_delta[rows], real_delta[rows]))
    return list(drugs), {name: np.asarray(values) for name, values in out.items()}


def _curve_error(pred_delta: np.ndarray, real_delta: np.ndarray) -> float:
    """Relative RMSE of the dose-response curve (doses in rows, ascending); NaN below two doses or
    without a real response."""
    top = real_delta[-1]
    norm = np.linalg.norm(top)
    if len(real_delta) < 2 or norm == 0:
        return float("nan")
    real, pred = dose_curve(real_delta, top / norm), dose_curve(pred_delta, top / norm)
    return float(np.sqrt(np.mean((pred - real) ** 2)) / np.abs(real).max())
