"""Read a Nextflow trace file: durations and memory as numbers."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
SIZE_UNITS = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}


def seconds(text) -> float:
    """'1m 3.2s' -> 63.2; '-' or empty -> NaN."""
    parts = re.findall(r"([\d.]+)(ms|s|m|h|d)\b", str(text))
    return sum(float(v) * TIME_UNITS[u] for v, u in parts) if parts else float("nan")


def gigabytes(text) -> float:
    """'1.5 GB' -> 1.5; '300 MB' -> 0.29...; '-' -> NaN."""
    match = re.match(r"\s*([\d.]+)\s*([KMGT]?B)", str(text))
    return float(match.group(1)) * SIZE_UNITS[match.group(2)] / 2**30 if match else float("nan")


def read_trace(path: str | os.PathLike) -> pd.DataFrame:
    """The trace's completed tasks with ``realtime_s``, ``duration_s`` and ``peak_rss_gb``."""
    trace = pd.read_csv(path, sep="\t")
    trace = trace[trace["status"].isin(["COMPLETED", "CACHED"])].copy()
    trace["realtime_s"] = trace["realtime"].map(seconds)
    trace["duration_s"] = trace["duration"].map(seconds)
    trace["peak_rss_gb"] = trace["peak_rss"].map(gigabytes) if "peak_rss" in trace else float("nan")
    return trace


def newest_trace(pipeline_info: str | os.PathLike) -> Path | None:
    traces = sorted(Path(pipeline_info).glob("execution_trace_*.txt"))
    return traces[-1] if traces else None
