"""One results store across runs (DuckDB over Parquet): what every run appends, and the
queries of `storm results`."""

from .record import run_tables
from .store import SCHEMAS, Store

__all__ = ["SCHEMAS", "Store", "run_tables"]
