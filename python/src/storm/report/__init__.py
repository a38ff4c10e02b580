"""Summaries, comparisons, figures and the HTML report of a whole experiment grid."""

from ..metrics import higher_is_better
from .build import build_report
from .provenance import Provenance
from .stats import paired_comparisons, summarise

__all__ = ["Provenance", "build_report", "higher_is_better", "paired_comparisons", "summarise"]
