"""Bulk expression tables to AnnData, so storm reads LINCS-style signatures like any dataset.

Samples become cells (obs), genes become var. Three sources:

- a DataFrame of samples x (genes + metadata) in parquet, pickle, CSV or TSV. Its genes are the
  numeric columns not named as metadata, or the columns given as genes;
- LINCS GCT text files (versions 1.2 and 1.3, the format cmapPy and cmapR read and write);
- LINCS GCTX files (HDF5: ``/0/DATA/0/matrix`` samples x genes, ``/0/META/{ROW,COL}``), read with h5py.

Imported data is marked as bulk profiles (:func:`mark_bulk`): ``storm prepare`` carries the
mark, and evaluation then skips the metrics that need single cells. A bulk h5ad made elsewhere
gets the same treatment with ``uns['storm'] = {'profiles': 'bulk'}``.

LINCS writes -666 for "not available"; it becomes a missing value. A metadata column whose values
are all numbers (``pert_dose``, ``pert_time``) becomes numeric, so it can be a dose or time key.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd

from .errors import InputError
from .spec import PROFILES

log = logging.getLogger(__name__)

FORMATS = ("auto", "gct", "gctx", "parquet", "pickle", "csv", "tsv")
#: LINCS' "not available"
MISSING = "-666"
_SUFFIXES = {".gct": "gct", ".gctx": "gctx", ".parquet": "parquet", ".pq": "parquet", ".pkl": "pickle",
             ".pickle": "pickle", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv"}


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    fmt = _SUFFIXES.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise InputError(f"cannot tell the format of {path.name} from its name; "
                         f"give --format ({', '.join(FORMATS[1:])})")
    return fmt


def _typed(meta: pd.DataFrame) -> pd.DataFrame:
    """LINCS' -666 to missing; columns of numbers (once missing values are set aside) to floats,
    the rest to categoricals (h5ad stores missing labels in those)."""
    out = {}
    for name, column in meta.items():
        text = column.astype(str).str.strip()
        text = text.mask(text.isin([MISSING, "-666.0", "nan", ""]))
        numbers = pd.to_numeric(text, errors="coerce")
        is_numeric = text.notna().any() and numbers[text.notna()].notna().all()
        out[name] = numbers.astype(float) if is_numeric else pd.Categorical(text)
    return pd.DataFrame(out, index=meta.index)


def _unique(index: pd.Index, what: str, where: str) -> pd.Index:
    index = pd.Index(index.astype(str)).rename(None)
    repeated = index[index.duplicated()].unique()
    if len(repeated):
        raise InputError(f"{len(repeated)} {what} id(s) in {where} are repeated, e.g. '{repeated[0]}'; "
                         f"ids must be unique")
    return index


def read_gct(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(expression genes x samples, gene metadata, sample metadata) of a GCT 1.2 or 1.3 file."""
    with open(path) as handle:
        version = handle.readline().strip()
        dims = handle.readline().split()
    if version not in ("#1.2", "#1.3"):
        raise InputError(f"{path.name} is not a GCT file: its first line is {version[:40]!r}, "
                         f"not #1.2 or #1.3")
    try:
        counts = [int(d) for d in dims]
    except ValueError:
        raise InputError(f"{path.name}: GCT line 2 must give the table's dimensions, got {' '.join(dims)[:80]!r}")
    n_rows, n_cols = counts[:2]
    n_row_meta, n_col_meta = (counts[2], counts[3]) if version == "#1.3" and len(counts) == 4 else (1, 0)
    table = pd.read_csv(path, sep="\t", skiprows=2, header=None, dtype=str, keep_default_na=False,
                        low_memory=False)
    header = table.iloc[0].tolist()
    if len(header) != 1 + n_row_meta + n_cols:
        raise InputError(f"{path.name}: the header has {len(header)} columns, but line 2 declares "
                         f"{n_cols} samples and {n_row_meta} gene metadata column(s)")
    samples = pd.Index(header[1 + n_row_meta:])
    col_meta = table.iloc[1:1 + n_col_meta]
    col_meta = pd.DataFrame(col_meta.iloc[:, 1 + n_row_meta:].to_numpy().T, index=samples,
                            columns=col_meta.iloc[:, 0].tolist())
    body = table.iloc[1 + n_col_meta:]
    if len(body) != n_rows:
        raise InputError(f"{path.name}: line 2 declares {n_rows} genes but the file holds {len(body)}")
    genes = _unique(pd.Index(body.iloc[:, 0]), "gene", path.name)
    row_meta = pd.DataFrame(body.iloc[:, 1:1 + n_row_meta].to_numpy(), index=genes, columns=header[1:1 + n_row_meta])
    if version == "#1.2":
        row_meta = row_meta.rename(columns={header[1]: "description"})
    values = pd.DataFrame(body.iloc[:, 1 + n_row_meta:].to_numpy(), index=genes, columns=samples)
    expression = values.apply(pd.to_numeric, errors="coerce")
    bad = expression.isna() & ~values.isin(["", "NaN", "nan", "NA"])
    if bad.any().any():
        gene, sample = bad.stack()[lambda s: s].index[0]
        raise InputError(f"{path.name}: gene '{gene}' in sample '{sample}' is not a number: "
                         f"{values.at[gene, sample]!r}")
    return expression, row_meta, col_meta


def _meta_group(group: h5py.Group, n: int, what: str) -> pd.DataFrame:
    if "id" not in group:
        raise InputError(f"the GCTX {what} metadata has no id field")
    columns = {}
    for name, dset in group.items():
        values = dset[()]
        if values.shape != (n,):
            raise InputError(f"GCTX {what} field '{name}' has {values.shape[0]} values for {n} {what}s")
        columns[name] = values.astype(str) if values.dtype.kind in "SO" else values
    frame = pd.DataFrame(columns)
    ids = _unique(pd.Index(frame.pop("id").astype(str)), what, "the GCTX file")
    frame.index = ids
    return frame


def read_gctx(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(expression genes x samples, gene metadata, sample metadata) of a GCTX file."""
    try:
        with h5py.File(path, "r") as f:
            if "0/DATA/0/matrix" not in f:
                raise InputError(f"{path.name} is not a GCTX file: it has no /0/DATA/0/matrix")
            matrix = f["0/DATA/0/matrix"]  # samples x genes
            n_samples, n_genes = matrix.shape
            row_meta = _meta_group(f["0/META/ROW"], n_genes, "gene")
            col_meta = _meta_group(f["0/META/COL"], n_samples, "sample")
            data = matrix[()]
    except OSError as exc:
        raise InputError(f"cannot read {path} as GCTX (HDF5): {exc}") from exc
    return pd.DataFrame(data.T, index=row_meta.index, columns=col_meta.index), row_meta, col_meta


def load_table(path: Path, fmt: str):
    """What a parquet, CSV/TSV (ids in the first column) or pickle file holds; a pickle may hold
    something other than a DataFrame, which the caller checks."""
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        if fmt == "pickle":
            return pd.read_pickle(path)  # a pickle runs code when read: use only files you trust
        return pd.read_csv(path, sep="," if fmt == "csv" else "\t", index_col=0)
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        raise InputError(f"cannot read {path} as {fmt}: {exc}") from exc


def read_frame(path: Path, fmt: str) -> pd.DataFrame:
    frame = load_table(path, fmt)
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{path.name} holds a {type(frame).__name__}, not a DataFrame of samples x genes")
    return frame


def split_frame(frame: pd.DataFrame, metadata: list[str], genes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(expression samples x genes, sample metadata): genes are ``genes`` if given, else every
    numeric column not named in ``metadata``."""
    missing = [c for c in [*metadata, *genes] if c not in frame.columns]
    if missing:
        raise InputError(f"column(s) {', '.join(missing[:5])} not in the table; it has "
                         f"{', '.join(map(str, frame.columns[:10]))}{', ...' if frame.shape[1] > 10 else ''}")
    if genes:
        gene_columns = list(genes)
    else:
        numeric = frame.select_dtypes(include="number").columns
        gene_columns = [c for c in numeric if c not in metadata]
    if not gene_columns:
        raise InputError("the table has no gene columns: no numeric column is left once the metadata is set "
                         "aside; name them with --genes")
    not_numeric = [c for c in gene_columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if not_numeric:
        raise InputError(f"gene column(s) {', '.join(map(str, not_numeric[:5]))} are not numeric")
    meta_columns = [c for c in frame.columns if c not in set(gene_columns)]
    return frame[gene_columns], frame[meta_columns]


def mark_bulk(adata: ad.AnnData) -> ad.AnnData:
    adata.uns.setdefault("storm", {})[PROFILES] = "bulk"
    return adata


def to_anndata(expression: pd.DataFrame, gene_meta: pd.DataFrame, sample_meta: pd.DataFrame,
               source: str) -> ad.AnnData:
    """An AnnData of samples x genes; values must all be finite."""
    X = expression.to_numpy(dtype=np.float32)
    if not np.isfinite(X).all():
        row, col = np.argwhere(~np.isfinite(X))[0]
        raise InputError(f"{source}: sample '{expression.index[row]}' has no finite value for gene "
                         f"'{expression.columns[col]}'; fill or drop it before importing")
    obs = _typed(sample_meta)
    obs.index = _unique(expression.index, "sample", source)
    var = _typed(gene_meta) if gene_meta.shape[1] else pd.DataFrame(index=expression.columns)
    var.index = _unique(expression.columns, "gene", source)
    return mark_bulk(ad.AnnData(X=X, obs=obs, var=var))


def import_table(path: Path, fmt: str = "auto", metadata: list[str] = (), genes: list[str] = (),
                 var_names: str | None = None) -> ad.AnnData:
    """Read a bulk table as AnnData (samples as cells). ``var_names``: a gene metadata field
    (e.g. ``pr_gene_symbol``) to name genes by instead of the row ids."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}'; storm imports {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt in ("gct", "gctx"):
        expression, gene_meta, sample_meta = (read_gct if fmt == "gct" else read_gctx)(path)
        adata = to_anndata(expression.T, gene_meta, sample_meta, path.name)
    else:
        expression, sample_meta = split_frame(read_frame(path, fmt), list(metadata), list(genes))
        adata = to_anndata(expression, pd.DataFrame(index=expression.columns), sample_meta, path.name)
    if var_names:
        if var_names not in adata.var:
            fields = ", ".join(adata.var.columns) or "none"
            raise InputError(f"no gene metadata field '{var_names}'; there are: {fields}")
        adata.var_names = _unique(pd.Index(adata.var[var_names].astype(str)), "gene", f"field '{var_names}'")
    log.info("%s: %d samples x %d genes; sample metadata: %s", path.name, adata.n_obs, adata.n_vars,
             ", ".join(adata.obs.columns) or "none")
    return adata
