"""What each model cost: its tasks' run time from the Nextflow trace, priced per CPU-hour and
GPU-hour (the pipeline's --price_cpu_hour and --price_gpu_hour; a profile may set its own)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .trace import newest_trace, read_trace

#: the steps whose tasks belong to one model (their tag: "<dataset> <split> <model>")
MODEL_PROCESSES = ("TRAIN", "PREDICT", "EVALUATE", "PREDICT_VAL", "EVALUATE_VAL")


def step_of(process: pd.Series) -> pd.Series:
    """A trace's process names as steps: ``PERTURBATION:TRAIN`` -> ``TRAIN`` (a workflow's
    processes run under its name; the steps, the --gpu-process option and the selectors use the
    simple name)."""
    return process.astype(str).str.rsplit(":", n=1).str[-1]


@dataclass(frozen=True)
class Prices:
    cpu_hour: float  # USD per CPU-hour
    gpu_hour: float  # USD per GPU-hour, on top of the CPUs
    gpu_processes: tuple[str, ...] = ()  # the processes that held a GPU (-profile gpu: TRAIN)


def task_costs(trace: pd.DataFrame, prices: Prices) -> pd.DataFrame:
    """The trace's tasks with ``cpus``, ``gpus`` and ``cost_usd`` (run time × CPUs × the CPU price,
    + run time × the GPU price for a GPU task); a task without its CPU count is priced at one."""
    tasks = trace.copy()
    tasks["cpus"] = pd.to_numeric(tasks["cpus"], errors="coerce").fillna(1.0) if "cpus" in tasks else 1.0
    tasks["gpus"] = step_of(tasks["process"]).isin(prices.gpu_processes).astype(float)
    hours = tasks["realtime_s"].fillna(0.0) / 3600.0
    tasks["cost_usd"] = hours * (tasks["cpus"] * prices.cpu_hour + tasks["gpus"] * prices.gpu_hour)
    return tasks


def model_costs(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model): its tasks, their summed run time (hours) and cost, over seeds and, for
    a sweep, over its configurations (listed under their own names)."""
    rows = tasks[step_of(tasks["process"]).isin(MODEL_PROCESSES)].copy() if "tag" in tasks else tasks.iloc[:0]
    if rows.empty:
        return pd.DataFrame(columns=["dataset", "model", "tasks", "hours", "cost_usd"])
    parts = rows["tag"].astype(str).str.split(" ", n=2, expand=True)
    rows["dataset"], rows["model"] = parts[0], parts[2] if 2 in parts else np.nan
    rows["hours"] = rows["realtime_s"].fillna(0.0) / 3600.0
    table = rows.dropna(subset=["model"]).groupby(["dataset", "model"]).agg(
        tasks=("process", "size"), hours=("hours", "sum"), cost_usd=("cost_usd", "sum"))
    return table.reset_index()


def read_tasks(pipeline_info: str | os.PathLike | None, prices: Prices) -> pd.DataFrame | None:
    """The newest trace's finished tasks in ``pipeline_info``, priced; None without a trace."""
    trace_file = newest_trace(pipeline_info) if pipeline_info and os.path.isdir(pipeline_info) else None
    if trace_file is None:
        return None
    trace = read_trace(trace_file)
    return task_costs(trace, prices) if not trace.empty else None
