"""Summaries, figures and the HTML report of a whole experiment grid."""

from .build import HIGHER_IS_BETTER, build_report, summarise

__all__ = ["HIGHER_IS_BETTER", "build_report", "summarise"]
