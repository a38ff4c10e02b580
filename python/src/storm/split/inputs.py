"""Files a user hands the splitter: a manual holdout list, or an existing split."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from ..errors import InputError
from .core import SPLITS

HOLDOUT_COLUMNS = ["split", "cell_type", "perturbation"]


def read_manual_holdout(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manual holdout as rows (split, cell_type, perturbation); empty means "any".

    YAML::

        test:
          cell_types: [CT3]                     # whole cell types
          perturbations: [KLF1]                 # in every cell type
          pairs: [[CT1, GATA1], [CT2, TAL1]]    # (cell type, perturbation)
        val:
          pairs: [[CT0, SPI1]]

    CSV: columns split, cell_type, perturbation (either of the last two may be empty).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manual holdout file not found: {path}")
    if path.suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            line = f" (line {where.line + 1})" if where else ""
            raise InputError(f"{path} is not valid YAML{line}: {getattr(exc, 'problem', exc)}") from exc
        rows = _holdout_from_yaml(data or {}, path)
    else:
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(f"{path} is not a readable CSV: {exc}") from exc
        missing = set(HOLDOUT_COLUMNS) - set(table.columns)
        if missing:
            raise InputError(f"{path} lacks column(s) {', '.join(sorted(missing))}; "
                             f"expected {', '.join(HOLDOUT_COLUMNS)}")
        rows = table[HOLDOUT_COLUMNS].to_numpy().tolist()
    frame = pd.DataFrame(rows, columns=HOLDOUT_COLUMNS).fillna("")
    bad = sorted(set(frame["split"]) - {"val", "test"})
    if bad:
        raise InputError(f"{path}: split must be val or test, got {', '.join(bad)}")
    if ((frame["cell_type"] == "") & (frame["perturbation"] == "")).any():
        raise InputError(f"{path}: a holdout row names neither a cell type nor a perturbation")
    if frame.empty:
        raise InputError(f"{path} holds out nothing")
    return frame


def _holdout_from_yaml(data: dict, path: Path) -> list[list[str]]:
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of split (val/test) to holdouts")
    rows = []
    for split, spec in data.items():
        if not isinstance(spec, dict):
            raise InputError(f"{path}: '{split}' must map to cell_types / perturbations / pairs")
        unknown = set(spec) - {"cell_types", "perturbations", "pairs"}
        if unknown:
            raise InputError(f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))} under '{split}'")
        for key, value in spec.items():
            if not isinstance(value, list):
                raise InputError(f"{path}: '{split}: {key}' must be a list, e.g. [{value}]")
        rows += [[split, str(ct), ""] for ct in spec.get("cell_types", [])]
        rows += [[split, "", str(p)] for p in spec.get("perturbations", [])]
        for pair in spec.get("pairs", []):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise InputError(f"{path}: a pair must be [cell_type, perturbation], got {pair}")
            rows.append([split, str(pair[0]), str(pair[1])])
    return rows


def check_split_file(path: str | os.PathLike) -> None:
    """A split file exists and its first line has a cell id and a split (a storm split.parquet:
    its two columns)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"split file not found: {path}")
    if path.suffix == ".parquet":
        names = pq.read_schema(path).names
        if names[:2] != ["cell_id", "split"]:
            raise InputError(f"{path}: expected columns cell_id and split, found {', '.join(names[:4])}")
        return
    with open(path, errors="replace") as fh:
        first = fh.readline()
    if len(first.split(",")) < 2:
        raise InputError(f"{path}: expected two columns, cell_id and split; the first line is {first.strip()[:80]!r}")


def read_split_file(path: str | os.PathLike, cell_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Split codes (int8) per cell of ``cell_ids`` from a ``cell_id,split`` CSV (PerturBench's is
    headerless) or a storm split.parquet. The split column is read dictionary-coded and the ids
    compared in Arrow: matched by position when the file lists the cells in the same order (storm
    writes them so), else by an Arrow hash join; never a Python string per cell."""
    path = Path(path)
    check_split_file(path)
    as_dictionary = pa.dictionary(pa.int32(), pa.string())
    if path.suffix == ".parquet":
        table = pq.read_table(path, columns=["cell_id", "split"], read_dictionary=["split"])
    else:
        with open(path, newline="") as fh:
            first = next(csv.reader(fh), [])  # quoted ids may hold commas
        has_header = len(first) < 2 or first[1] not in SPLITS
        table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(
            column_names=None if has_header else ["cell_id", "split"], skip_rows=0),
            convert_options=pacsv.ConvertOptions(column_types={"cell_id": pa.string(), "split": as_dictionary}))
    if table.num_columns < 2:
        raise InputError(f"{path}: expected two columns, cell_id and split")
    ids, splits = pc.cast(table.column(0), pa.string()), table.column(1)
    if not pa.types.is_dictionary(splits.type):
        splits = pc.dictionary_encode(pc.cast(splits, pa.string()))
    splits = splits.unify_dictionaries()
    values = splits.chunks[0].dictionary.to_pylist() if splits.num_chunks else []
    if splits.null_count or set(values) - set(SPLITS):
        raise InputError(f"{path}: split values must be train, val or test")
    code_of = np.array([list(SPLITS).index(v) for v in values] or [0], dtype=np.int8)
    codes = np.concatenate([code_of[chunk.indices.to_numpy(zero_copy_only=False)] for chunk in splits.chunks]
                           or [np.zeros(0, np.int8)])
    cell_ids = pa.chunked_array([cell_ids]) if isinstance(cell_ids, pa.Array) else cell_ids
    if len(ids) == len(cell_ids) and ids.equals(cell_ids):
        return codes  # same order: no join needed
    position = pc.index_in(cell_ids, value_set=ids.combine_chunks())
    if position.null_count:
        missing = position.is_null().to_numpy(zero_copy_only=False)
        raise InputError(f"{path} gives no split for {position.null_count} cell(s), "
                         f"e.g. {cell_ids[int(np.argmax(missing))]}")
    return codes[position.to_numpy(zero_copy_only=False)]


def split_labels(path: str | os.PathLike, cell_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """:func:`read_split_file` as labels (train, val, test): one pointer a cell to three strings."""
    return np.asarray(SPLITS, dtype=object)[read_split_file(path, cell_ids)]
