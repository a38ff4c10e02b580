"""Per-task Nextflow overhead of a run, read from its trace.

Usage: python tests/benchmarks/trace_overhead.py results/pipeline_info/execution_trace_<ts>.txt [--cpus 2]

Prints, per process: tasks, mean run time of the command (realtime), mean wait from submission
to start, mean wrapper overhead (duration - realtime), and for the whole run: its wall time
against the ideal of every command's run time packed onto the CPUs.
"""

from __future__ import annotations

import argparse

import pandas as pd

from storm.report.trace import seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs the run had")
    args = parser.parse_args()

    trace = pd.read_csv(args.trace, sep="\t")
    trace = trace[trace["status"] == "COMPLETED"]
    for col in ("submit", "start", "complete"):
        trace[col] = pd.to_datetime(trace[col])
    trace["run_s"] = trace["realtime"].map(seconds)
    trace["queue_s"] = (trace["start"] - trace["submit"]).dt.total_seconds()
    trace["wrapper_s"] = trace["duration"].map(seconds) - trace["run_s"]
    table = trace.groupby("process").agg(tasks=("run_s", "size"), run_s=("run_s", "mean"),
                                         queue_s=("queue_s", "mean"), wrapper_s=("wrapper_s", "mean"))
    print(table.round(2).to_string())
    wall = (trace["complete"].max() - trace["submit"].min()).total_seconds()
    ideal = trace["run_s"].sum() / args.cpus
    print(f"\ntasks {len(trace)}; mean wrapper overhead {trace['wrapper_s'].mean():.2f}s, "
          f"mean queue wait {trace['queue_s'].mean():.2f}s")
    print(f"wall from first submit to last completion {wall:.1f}s; commands packed on {args.cpus} CPUs "
          f"{ideal:.1f}s; ratio {wall / ideal:.2f}")


if __name__ == "__main__":
    main()
