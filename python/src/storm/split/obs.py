"""Read the few obs columns a split needs, as integer codes, never touching X.

Sources: an h5ad file (its obs group, read with h5py), a parquet file or a CSV/TSV table (read
with pyarrow). Categorical columns are read as their codes directly, so a 100M-cell table costs
a few hundred megabytes; cell ids stay in an Arrow array, ready to be written back out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError, SpecError
from ..spec import DatasetSpec, condition_labels

CELL_ID = "cell_id"


@dataclass
class Coded:
    """A column as integer codes into its categories (strings)."""

    codes: np.ndarray  # int32, one per cell
    categories: np.ndarray  # object array of str

    def labels(self) -> np.ndarray:
        return self.categories[self.codes]


@dataclass
class CodedObs:
    cell_ids: pa.ChunkedArray | pa.Array
    columns: dict[str, Coded]

    @property
    def n_cells(self) -> int:
        return len(self.cell_ids)


def _sorted_coded(codes: np.ndarray, categories: np.ndarray, name: str, gaps_ok: bool = False) -> Coded:
    """Codes over alphabetically sorted categories, so codes do not depend on storage order.
    ``gaps_ok``: a missing value is the category '' instead of an error."""
    if gaps_ok and codes.size and codes.min() < 0:
        categories = np.append(np.asarray(categories, dtype=object), "")
        codes = np.where(codes < 0, len(categories) - 1, codes)
    if codes.size and codes.min() < 0:
        raise SpecError(f"column '{name}' has {int((codes < 0).sum())} empty value(s); fill or drop those cells")
    categories = np.asarray(categories, dtype=object).astype(str).astype(object)
    order = np.argsort(categories.astype(str), kind="stable")
    if np.array_equal(order, np.arange(len(order))):
        return Coded(codes.astype(np.int32, copy=False), categories)
    remap = np.empty(len(order), dtype=np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    return Coded(remap[codes], categories[order])


def code_strings(values, name: str, gaps_ok: bool = False) -> Coded:
    series = pd.Series(values)
    if gaps_ok:
        series = series.fillna("")
    if series.isna().any():
        raise SpecError(f"column '{name}' has {int(series.isna().sum())} empty value(s); fill or drop those cells")
    codes, categories = pd.factorize(series.astype(str), sort=True)
    return Coded(codes.astype(np.int32), np.asarray(categories, dtype=object))


def _from_arrow(column: pa.ChunkedArray, name: str, gaps_ok: bool = False) -> Coded:
    if gaps_ok and column.null_count:
        column = pc.fill_null(pc.cast(column, pa.string()), "")
    if column.null_count:
        raise SpecError(f"column '{name}' has {column.null_count} empty value(s); fill or drop those cells")
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(pc.cast(column, pa.string()))
    column = column.unify_dictionaries()
    if column.num_chunks == 0:
        return Coded(np.zeros(0, np.int32), np.zeros(0, dtype=object))
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in column.chunks])
    categories = pc.cast(column.chunks[0].dictionary, pa.string()).to_numpy(zero_copy_only=False)
    return _sorted_coded(codes, categories, name)


#: strings read from HDF5 at a time: Python str objects cost ~60 bytes each, Arrow's a few
ID_BLOCK = 1 << 18


def _h5_strings(dataset: h5py.Dataset) -> np.ndarray:
    return dataset.asstr()[:] if dataset.dtype.kind in "OS" else dataset[:].astype(str)


def _h5_arrow_strings(dataset: h5py.Dataset) -> pa.ChunkedArray:
    """A string dataset as Arrow, read a block at a time so its Python strings never all live at once."""
    strings = dataset.asstr() if dataset.dtype.kind in "OS" else None
    blocks = []
    for start in range(0, dataset.shape[0], ID_BLOCK):
        block = strings[start:start + ID_BLOCK] if strings is not None else dataset[start:start + ID_BLOCK].astype(str)
        blocks.append(pa.array(block, type=pa.string()))
    return pa.chunked_array(blocks, type=pa.string())


def _read_h5ad(path: Path, columns: list[str], gaps_ok: tuple[str, ...]) -> CodedObs:
    with h5py.File(path, "r") as f:
        obs = f["obs"]
        cell_ids = _h5_arrow_strings(obs[obs.attrs.get("_index", "_index")])
        coded = {}
        for col in columns:
            if col not in obs:
                raise SpecError(f"obs column '{col}' not found in {path}; available: {', '.join(list(obs)[:20])}")
            item = obs[col]
            if isinstance(item, h5py.Group) and "codes" in item:  # categorical: read the codes as they are
                coded[col] = _sorted_coded(item["codes"][:], _h5_strings(item["categories"]), col, col in gaps_ok)
            else:
                coded[col] = code_strings(_h5_strings(item), col, col in gaps_ok)
    return CodedObs(cell_ids, coded)


def _require_columns(names: list[str], columns: list[str], path: Path) -> str:
    """Check the table has ``columns``; return the name of its cell-id column."""
    missing = [c for c in columns if c not in names]
    if missing:
        raise SpecError(f"column(s) {', '.join(missing)} not found in {path}; available: {', '.join(names[:20])}")
    return CELL_ID if CELL_ID in names else names[0]


def _read_table(path: Path, columns: list[str], gaps_ok: tuple[str, ...]) -> CodedObs:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        # one column at a time, so only one column's Arrow buffers are alive beside the codes
        id_col = _require_columns(pq.read_schema(path).names, columns, path)
        cell_ids = pc.cast(pq.read_table(path, columns=[id_col]).column(0), pa.string())
        coded = {c: _from_arrow(pq.read_table(path, columns=[c], read_dictionary=[c]).column(0), c, c in gaps_ok)
                 for c in columns}
        return CodedObs(cell_ids, coded)
    delimiter = "\t" if path.suffix in (".tsv", ".txt") else ","
    as_dictionary = {c: pa.dictionary(pa.int32(), pa.string()) for c in columns}
    table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                           convert_options=pacsv.ConvertOptions(column_types=as_dictionary))
    id_col = _require_columns(table.column_names, columns, path)
    coded = {c: _from_arrow(table.column(c), c, c in gaps_ok) for c in columns}
    return CodedObs(pc.cast(table.column(id_col), pa.string()), coded)

def obs_column_names(path: str | os.PathLike) -> list[str]:
    """The column names of an h5ad obs group or a parquet/CSV/TSV obs table, reading no values."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"obs source not found: {path}")
    try:
        if path.suffix == ".h5ad":
            with h5py.File(path, "r") as f:
                if "obs" not in f or not isinstance(f["obs"], h5py.Group):
                    raise InputError(f"{path} has no obs table")
                index = f["obs"].attrs.get("_index", "_index")
                return [name for name in f["obs"] if name != index and name != "__categories"]
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if path.suffix in (".csv", ".tsv", ".txt"):
            with open(path, newline="") as fh:
                import csv

                return next(csv.reader(fh, delimiter="\t" if path.suffix != ".csv" else ","), [])
    except OSError as exc:
        raise InputError(f"cannot read obs from {path}: {exc}") from exc
    raise InputError(f"cannot read obs from {path}: expected .h5ad, .parquet, .csv or .tsv")


def require_columns(path: str | os.PathLike, columns: list[str]) -> None:
    """Raise :class:`SpecError` naming the ``columns`` the obs of ``path`` lacks."""
    names = obs_column_names(path)
    missing = [c for c in dict.fromkeys(columns) if c not in names]
    if missing:
        what = f"obs column '{missing[0]}'" if len(missing) == 1 else f"obs columns {', '.join(map(repr, missing))}"
        raise SpecError(f"{what} not found in {path}; available: {', '.join(names[:20]) or '(none)'}")


def read_coded_obs(path: str | os.PathLike, columns: list[str], gaps_ok: tuple[str, ...] = ()) -> CodedObs:
    """Read ``columns`` (and the cell ids) of an h5ad obs group or a parquet/CSV/TSV obs table.

    A table's cell ids come from its ``cell_id`` column, else its first column. A missing value is
    an error, but in the columns named in ``gaps_ok``, where it reads as ''.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"obs source not found: {path}")
    columns = list(dict.fromkeys(columns))
    try:
        if path.suffix == ".h5ad":
            return _read_h5ad(path, columns, gaps_ok)
        if path.suffix in (".parquet", ".csv", ".tsv", ".txt"):
            return _read_table(path, columns, gaps_ok)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"cannot read obs from {path}: {exc}") from exc
    raise InputError(f"cannot read obs from {path}: expected .h5ad, .parquet, .csv or .tsv")


def read_numbers(path: str | os.PathLike, column: str) -> np.ndarray:
    """One numeric obs column (a dose, a time) as float64, missing values as NaN."""
    path = Path(path)
    if path.suffix == ".h5ad":
        with h5py.File(path, "r") as f:
            item = f["obs"][column]
            if isinstance(item, h5py.Group) and "codes" in item:
                codes = item["codes"][:]
                categories = pd.to_numeric(pd.Series(_h5_strings(item["categories"])), errors="coerce").to_numpy()
                return np.where(codes < 0, np.nan, categories[np.maximum(codes, 0)])
            values = item[:]
    else:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=[column]) if path.suffix == ".parquet" else pacsv.read_csv(
            path, parse_options=pacsv.ParseOptions(delimiter="," if path.suffix == ".csv" else "\t"),
            convert_options=pacsv.ConvertOptions(include_columns=[column]))
        values = table.column(0).to_numpy(zero_copy_only=False)
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)


def concat_obs(parts: list[CodedObs], names: list[str]) -> CodedObs:
    """Shards' coded obs one after the other: codes over the union of their categories (sorted),
    cell ids checked unique across shards."""
    if len(parts) == 1:
        return parts[0]
    ids = pa.chunked_array([chunk for part in parts for chunk in pa.chunked_array([part.cell_ids]).chunks])
    if len(pc.unique(ids)) != len(ids):
        from ..shards import check_unique_ids

        check_unique_ids(pd.Index(ids.to_numpy(zero_copy_only=False)),
                         np.repeat(np.arange(len(parts)), [p.n_cells for p in parts]), [Path(n) for n in names])
    columns = {}
    for name in parts[0].columns:
        coded = [part.columns[name] for part in parts]
        categories = np.array(sorted({str(c) for column in coded for c in column.categories}), dtype=object)
        index = {c: i for i, c in enumerate(categories)}
        codes = [np.array([index[str(c)] for c in column.categories], dtype=np.int32)[column.codes] for column in coded]
        columns[name] = Coded(np.concatenate(codes), categories)
    return CodedObs(ids, columns)


def read_dataset_obs(dataset, columns: list[str]) -> CodedObs:
    """:func:`read_coded_obs` of a dataset: one obs source, or a sharded dataset's shards in order."""
    from ..shards import paths_of

    paths = paths_of(dataset)
    return concat_obs([read_coded_obs(p, columns) for p in paths], [str(p) for p in paths])


def read_split_obs(dataset, spec: DatasetSpec, covariate_keys: list[str]) -> CodedObs:
    """The covariates, the perturbation and the SMILES a split needs, of one obs source or of a
    sharded dataset's shards in order. When the spec names a dose or time, the perturbation
    column holds each cell's condition (:func:`storm.spec.condition_labels`), labelled once per
    distinct (perturbation, dose, time)."""
    from ..shards import paths_of

    paths = paths_of(dataset)
    return concat_obs([_read_split_obs(p, spec, covariate_keys) for p in paths], [str(p) for p in paths])


def _read_split_obs(path: Path, spec: DatasetSpec, covariate_keys: list[str]) -> CodedObs:
    smiles = (spec.smiles_key,) if spec.smiles_key else ()  # controls may have none
    obs = read_coded_obs(path, [*covariate_keys, spec.perturbation_key, *smiles], gaps_ok=smiles)
    if not (spec.dose_key or spec.time_key):
        return obs
    pert = obs.columns[spec.perturbation_key]
    numbers = [read_numbers(path, key) if key else np.full(obs.n_cells, np.nan)
               for key in (spec.dose_key, spec.time_key)]
    keys = np.column_stack([pert.codes.astype(np.float64), *(np.nan_to_num(v, nan=-1.0) for v in numbers)])
    distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
    missing = distinct[:, 1:] < 0
    labels = condition_labels(pert.categories[distinct[:, 0].astype(np.int64)],
                              np.where(missing[:, 0], np.nan, distinct[:, 1]) if spec.dose_key else None,
                              np.where(missing[:, 1], np.nan, distinct[:, 2]) if spec.time_key else None,
                              spec.control_value)
    conditions = code_strings(labels, spec.perturbation_key)
    columns = {**obs.columns, spec.perturbation_key: Coded(conditions.codes[inverse.ravel()], conditions.categories)}
    return CodedObs(obs.cell_ids, columns)
