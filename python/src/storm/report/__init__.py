"""Summaries, comparisons, figures and the HTML report of a whole experiment grid."""

from .build import build_report
from .stats import higher_is_better, paired_comparisons, summarise

__all__ = ["build_report", "higher_is_better", "paired_comparisons", "summarise"]
