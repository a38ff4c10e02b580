"""The results store: one folder of Parquet files that every run appends to, queried with DuckDB.

Layout: ``<store>/<table>/<run_id>.<write_id>.parquet`` for each table of :data:`SCHEMAS`, and
``<store>/runs/<run_id>.parquet`` last, naming the ``write_id`` of the run's rows. The run's row
is the commit: a view holds a table's rows only where ``runs`` names their write, so

- many runs append at once without a lock (each writes files of its own names);
- a killed append leaves files no view reads (and the previous write of that run, if any, intact);
- a run appended again (``-resume``) replaces its rows whole; the older write's files are removed.

Each file is written under a temporary name and renamed into place (one PUT on S3), so no reader
ever sees half a file. A folder of Parquet files, not a DuckDB database file: a database file takes
one writer at a time, and Parquet is what DuckDB, pandas, polars and Spark read straight from S3.
A store on S3 is read through a local copy of its files (only what changed is fetched).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import uuid
from io import BytesIO
from pathlib import Path

import pandas as pd

from .. import io
from ..cloud.s3 import is_s3

#: table -> column -> DuckDB type; every table also has run_id and write_id
SCHEMAS: dict[str, dict[str, str]] = {
    "runs": {"run_name": "VARCHAR", "started": "VARCHAR", "appended": "VARCHAR", "outdir": "VARCHAR",
             "storm_version": "VARCHAR", "nextflow_version": "VARCHAR", "commit": "VARCHAR", "profile": "VARCHAR",
             "params": "VARCHAR"},
    "datasets": {"dataset": "VARCHAR", "n_cells": "BIGINT", "n_genes": "BIGINT", "n_perturbations": "BIGINT",
                 "n_cell_types": "BIGINT", "spec": "VARCHAR"},
    "models": {"dataset": "VARCHAR", "seed": "BIGINT", "model": "VARCHAR", "base_model": "VARCHAR",
               "config": "VARCHAR", "fit_seconds": "DOUBLE", "n_train_cells": "BIGINT"},
    "metrics": {"dataset": "VARCHAR", "seed": "BIGINT", "split_key": "VARCHAR", "model": "VARCHAR",
                "cell_type": "VARCHAR", "perturbation": "VARCHAR", "metric": "VARCHAR", "value": "DOUBLE"},
    "tasks": {"process": "VARCHAR", "tag": "VARCHAR", "status": "VARCHAR", "realtime_s": "DOUBLE",
              "cpus": "DOUBLE", "peak_rss_gb": "DOUBLE", "cost_usd": "DOUBLE"},
    "versions": {"process": "VARCHAR", "package": "VARCHAR", "version": "VARCHAR"},
}
KEYS = {"run_id": "VARCHAR", "write_id": "VARCHAR"}
_PANDAS = {"VARCHAR": "string", "BIGINT": "Int64", "DOUBLE": "float64"}


def _typed(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    columns = {**KEYS, **SCHEMAS[table]}
    unknown = set(frame.columns) - set(columns)
    if unknown:
        raise ValueError(f"{table}: unknown column(s) {sorted(unknown)}")
    return pd.DataFrame({c: frame[c] if c in frame else pd.Series([None] * len(frame), dtype=object)
                         for c in columns}).astype({c: _PANDAS[t] for c, t in columns.items()})


class Store:
    """A results store at a local folder or an s3:// prefix."""

    def __init__(self, location: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
        self.location = str(location).rstrip("/")
        self.remote = is_s3(self.location)
        self._cache = Path(cache_dir) if cache_dir else None

    def __str__(self) -> str:
        return self.location

    @functools.cached_property
    def _prefix(self):
        from ..cloud.s3 import S3Url

        return S3Url.parse(self.location)

    @functools.cached_property
    def _s3(self):
        from ..cloud.s3 import client

        return client()

    # -- writing ------------------------------------------------------------------------------

    def append(self, run_id: str, tables: dict[str, pd.DataFrame]) -> str:
        """Write one run's rows (``tables``: name -> rows without the keys; ``runs`` one row) and
        commit them; returns the write's id."""
        if set(tables) - set(SCHEMAS) or "runs" not in tables or len(tables["runs"]) != 1:
            raise ValueError("append takes tables of SCHEMAS, with exactly one runs row")
        write_id = uuid.uuid4().hex[:12]
        earlier = self._committed_write(run_id)
        with tempfile.TemporaryDirectory() as tmp:
            staged = []
            for table in [t for t in SCHEMAS if t != "runs" and t in tables] + ["runs"]:
                frame = _typed(table, tables[table].assign(run_id=run_id, write_id=write_id))
                name = f"{run_id}.parquet" if table == "runs" else f"{run_id}.{write_id}.parquet"
                local = Path(tmp) / table / name
                local.parent.mkdir(parents=True)
                frame.to_parquet(local, index=False)
                staged.append((f"{table}/{name}", local))
            for relative, local in staged:  # runs/ last: the commit
                self._put(local, relative)
        if earlier:
            self._remove_write(run_id, earlier)
        return write_id

    def _put(self, local: Path, relative: str) -> None:
        if self.remote:
            self._s3.upload_file(str(local), self._prefix.bucket, self._prefix.join(relative).key)  # one PUT
            return
        with io.atomic_path(Path(self.location) / relative) as tmp:
            shutil.copyfile(local, tmp)

    def _committed_write(self, run_id: str) -> str | None:
        """The write its runs row commits, read from that one file (not the whole store)."""
        relative = f"runs/{run_id}.parquet"
        if self.remote:
            try:
                body = self._s3.get_object(Bucket=self._prefix.bucket, Key=self._prefix.join(relative).key)["Body"]
            except self._s3.exceptions.NoSuchKey:
                return None
            source = BytesIO(body.read())
        else:
            source = Path(self.location) / relative
            if not source.is_file():
                return None
        return str(pd.read_parquet(source)["write_id"].iloc[0])

    def _remove_write(self, run_id: str, write_id: str) -> None:
        names = [f"{table}/{run_id}.{write_id}.parquet" for table in SCHEMAS if table != "runs"]
        if self.remote:
            for name in names:
                self._s3.delete_object(Bucket=self._prefix.bucket, Key=self._prefix.join(name).key)
            return
        for name in names:
            (Path(self.location) / name).unlink(missing_ok=True)

    def push(self, destination: str) -> int:
        """Copy this local store's files to another store (an s3:// prefix, for collaborators):
        files it lacks, then every run's commit row; returns the number of files copied."""
        target = Store(destination)
        have = set(target._names())
        files = sorted(Path(self.location).glob("*/*.parquet"), key=lambda f: f.parent.name == "runs")
        copied = 0
        for path in files:
            relative = f"{path.parent.name}/{path.name}"
            if relative not in have or path.parent.name == "runs":
                target._put(path, relative)
                copied += 1
        return copied

    def _names(self) -> list[str]:
        if not self.remote:
            root = Path(self.location)
            return [f"{p.parent.name}/{p.name}" for p in root.glob("*/*.parquet")]
        prefix = self._prefix
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=prefix.bucket, Prefix=prefix.key + "/")
        return [obj["Key"][len(prefix.key) + 1:] for page in pages for obj in page.get("Contents", [])]

    # -- reading ------------------------------------------------------------------------------

    def local_root(self) -> Path:
        """A local folder holding the store's files: the store itself, or a copy of an S3 one
        (data files are never rewritten under one name, so only new ones and runs/ are fetched)."""
        if not self.remote:
            return Path(self.location)
        prefix = self._prefix
        cache = self._cache or Path(tempfile.gettempdir()) / "storm-store-cache" / prefix.bucket / prefix.key
        names = set(self._names())
        for stale in cache.glob("*/*.parquet"):  # removed remotely (an older write of a run): gone here too
            if f"{stale.parent.name}/{stale.name}" not in names:
                stale.unlink()
        for name in names:
            target = cache / name
            if target.is_file() and target.parent.name != "runs":
                continue
            with io.atomic_path(target) as tmp:
                self._s3.download_file(prefix.bucket, prefix.join(name).key, str(tmp))
        return cache

    def connect(self):
        """An in-memory DuckDB connection with one view per table: only committed rows."""
        import duckdb

        root = self.local_root()
        con = duckdb.connect()
        con.execute(f"CREATE VIEW runs AS {_select(root, 'runs')}")
        for table in SCHEMAS:
            if table != "runs":
                con.execute(f"CREATE VIEW {table} AS SELECT t.* FROM ({_select(root, table)}) t "
                            f"SEMI JOIN runs r ON t.run_id = r.run_id AND t.write_id = r.write_id")
        return con

    def frame(self, table: str, con=None) -> pd.DataFrame:
        """A table's committed rows."""
        con = con or self.connect()
        return con.execute(f"SELECT * FROM {table}").df()


def _select(root: Path, table: str) -> str:
    """SELECT of a table's files with its schema's columns and types (no rows when there are none)."""
    columns = {**KEYS, **SCHEMAS[table]}
    files = root / table
    if files.is_dir() and any(files.glob("*.parquet")):
        glob = str(files / "*.parquet").replace("'", "''")
        casts = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in columns.items())
        return f"SELECT {casts} FROM read_parquet('{glob}', union_by_name = true)"
    nulls = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in columns.items())
    return f"SELECT {nulls} WHERE false"
