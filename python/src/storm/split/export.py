"""Write a split: split.parquet (every cell's split, compact), pairs.csv, summary.json, split.png,
and, when asked, the files that reproduce it in other tools: for Arc's State, cell-load's TOML and
a ready `state tx train` command; for PerturBench, its headerless split CSV and an experiment
config that loads it (the CSV is as large as the cell ids: at 100M cells, gigabytes, so only on
request)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from .. import io
from ..spec import DatasetSpec
from .core import PERTURBATION, SPLITS, Split

SPLIT_FILE = "split.parquet"

SPLIT_COLOURS = {"train": "#4C72B0", "val": "#DD8452", "test": "#C44E52"}


def _holds_csv_specials(strings: pa.StringArray) -> bool:
    """Whether any string holds a quote, comma or line break, scanning the raw bytes in blocks."""
    data = strings.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    for start in range(0, raw.size, 1 << 24):
        block = raw[start:start + (1 << 24)].tobytes()
        if any(special in block for special in (b'"', b",", b"\n", b"\r")):
            return True
    return False


def cell_splits(cell_ids: pa.Array, split: Split) -> pa.Table:
    """cell_id and split per cell, the split dictionary-coded (a byte a cell besides its id)."""
    labels = pa.DictionaryArray.from_arrays(pa.array(split.cell_split, type=pa.int8()), pa.array(list(SPLITS)))
    return pa.table({"cell_id": cell_ids, "split": labels})


def write_cell_splits(cells: pa.Table, out: Path) -> None:
    """``split.parquet``: :func:`cell_splits`, zstd-compressed."""
    with io.atomic_path(out / SPLIT_FILE) as tmp:
        pq.write_table(cells, tmp, compression="zstd")
    io.write_checksum(out / SPLIT_FILE)


def perturbench_split_csv(cells: pa.Table, out: Path) -> Path:
    """PerturBench's saved split: headerless cell_id,split rows."""
    table = cells.set_column(1, "split", cells["split"].cast(pa.string()))
    # plain rows as PerturBench writes them, unless an id holds a character CSV must quote
    needs_quotes = any(_holds_csv_specials(chunk) for chunk in table["cell_id"].cast(pa.string()).chunks)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed" if needs_quotes else "none")
    path = out / "perturbench_split.csv"
    with io.atomic_path(path) as tmp:
        pacsv.write_csv(table, str(tmp), write_options=options)
    return path


def perturbench_config(out: Path, spec: DatasetSpec, covariate_keys: list[str], dataset_path: str,
                       seed: int) -> dict:
    """A PerturBench experiment (Hydra, `python train.py experiment=<this>`): the dataset with its
    columns and the saved split storm made; pick the model with `model=...`."""
    return {"defaults": [{"override /data/splitter": "saved_split"}], "seed": seed,
            "data": {"datapath": dataset_path, "perturbation_key": spec.perturbation_key,
                     "perturbation_combination_delimiter": spec.combo_delimiter,
                     "perturbation_control_value": spec.control_value, "covariate_keys": list(covariate_keys),
                     "embedding_key": spec.embed_key,
                     "splitter": {"split_path": str((out / "perturbench_split.csv").resolve())}}}


def state_command(out: Path, spec: DatasetSpec, covariate_keys: list[str], run_name: str) -> str:
    """`state tx train` on the split's cell-load TOML with the dataset's own columns (Arc's CLI,
    arc-state 0.11; its other settings at their defaults)."""
    args = ["state", "tx", "train", f"data.kwargs.toml_config_path={(out / 'state.toml').resolve()}",
            f"data.kwargs.pert_col={spec.perturbation_key}", f"data.kwargs.cell_type_key={covariate_keys[0]}",
            f"data.kwargs.control_pert={spec.control_value}", "data.kwargs.output_space=gene",
            f"data.kwargs.embed_key={spec.embed_key or 'X_hvg'}", "model=state_sm", "training.max_steps=40000",
            "output_dir=state_runs", f"name={run_name}"]
    if spec.batch_key:
        args.insert(7, f"data.kwargs.batch_col={spec.batch_key}")
    return " ".join(shlex.quote(a) for a in args)


def write_exports(split: Split, cells: pa.Table, out: Path, exports: list[str], spec: DatasetSpec,
                  covariate_keys: list[str], dataset: str, dataset_path: str, seed: int) -> None:
    if "state" in exports:
        io.write_text(state_toml(split, dataset, dataset_path, covariate_keys[0]), out / "state.toml")
        note = ("# Arc's State on this storm split (cell-load reads state.toml); without an embedding (embed_key)\n"
                "# State reads obsm['X_hvg']: add your highly variable genes there, or set data.kwargs.embed_key.\n")
        io.write_text(note + state_command(out, spec, covariate_keys, f"{dataset}_{split.name}") + "\n",
                      out / "state_tx_train.sh")
    if "perturbench" in exports:
        perturbench_split_csv(cells, out)
        io.write_text(yaml.safe_dump(perturbench_config(out, spec, covariate_keys, dataset_path, seed),
                                     sort_keys=False), out / "perturbench_experiment.yaml")


def toml_string(value: str) -> str:
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def state_toml(split: Split, dataset: str, dataset_path: str, cell_type_key: str) -> str:
    """cell-load's experiment TOML: a cell type held out whole is ``[zeroshot]``, one with some
    held-out perturbations is ``[fewshot]`` (its val/test perturbation lists)."""
    dataset = dataset.replace(".", "_")  # cell-load splits "dataset.celltype" at the first dot
    pairs = split.pairs
    pert = pairs[~pairs["is_control"]]
    lines = ["[datasets]", f"{toml_string(dataset)} = {toml_string(dataset_path)}", "",
             "[training]", f"{toml_string(dataset)} = \"train\"", "", "[zeroshot]"]
    fewshot = []
    for ct, group in pert.groupby(cell_type_key, sort=True):
        splits = set(group["split"])
        key = toml_string(f"{dataset}.{ct}")
        if splits and "train" not in splits and len(splits) == 1:
            lines.append(f"{key} = {toml_string(splits.pop())}")
        elif splits - {"train"}:
            fewshot.append(f"\n[fewshot.{key}]")
            for name in ("val", "test"):
                perts = sorted(set(group.loc[group["split"] == name, PERTURBATION]))
                fewshot.append(f"{name} = [{', '.join(toml_string(p) for p in perts)}]")
    lines += ["", "[fewshot]", *fewshot]
    return "\n".join(lines) + "\n"


def labels_of(perts: list[str], control_value: str) -> list[str]:
    return [*perts, f"{control_value} (controls)"]


def split_png(split: Split, out: Path, covariate_keys: list[str], control_value: str) -> None:
    """Covariates x perturbations coloured by split, controls in the bottom row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    pairs = split.pairs.copy()
    pairs["covariate"] = pairs[covariate_keys].astype(str).agg(" / ".join, axis=1)
    # a pair in several splits (file strategy) shows the split holding most of its cells
    pairs = pairs.sort_values("n_cells", ascending=False).drop_duplicates(["covariate", PERTURBATION])
    perts = sorted(set(pairs.loc[~pairs["is_control"], PERTURBATION]))
    covs = sorted(set(pairs["covariate"]))
    grid = pairs.assign(code=pairs["split"].map({s: i for i, s in enumerate(SPLITS)}))
    matrix = grid.pivot_table(index="covariate", columns=PERTURBATION, values="code", aggfunc="first")
    matrix = matrix.reindex(index=covs, columns=[*perts, control_value])
    rows = matrix.to_numpy(dtype=float).T  # perturbations top to bottom, controls last
    # ~0.1 inch per row and column keeps 200+ labels legible at 6 pt; margins fit the labels
    longest_pert = max((len(str(p)) for p in labels_of(perts, control_value)), default=8)
    longest_cov = max((len(c) for c in covs), default=4)
    left, bottom, top, right = 0.1 + 0.055 * longest_pert, 0.2 + 0.055 * longest_cov, 0.5, 1.4
    width = min(left + right + max(0.12 * len(covs), 1.5), 60.0)
    height = min(bottom + top + max(0.1 * (len(perts) + 1), 1.5), 80.0)
    fig, ax = plt.subplots(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height)
    cmap = ListedColormap([SPLIT_COLOURS[s] for s in SPLITS]).with_extremes(bad="#EEEEEE")
    ax.imshow(np.ma.masked_invalid(rows), aspect="auto", cmap=cmap, vmin=-0.5, vmax=2.5, interpolation="nearest")
    ax.set_yticks(range(len(perts) + 1), labels_of(perts, control_value), fontsize=6)
    ax.set_xticks(range(len(covs)), covs, rotation=90, fontsize=6)
    ax.axhline(len(perts) - 0.5, color="black", linewidth=1)
    handles = [plt.Rectangle((0, 0), 1, 1, color=SPLIT_COLOURS[s]) for s in SPLITS]
    handles.append(plt.Rectangle((0, 0), 1, 1, color="#EEEEEE"))
    ax.legend(handles, [*SPLITS, "not measured"], loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_title(f"{split.name}: split per ({' / '.join(covariate_keys)}, perturbation)", fontsize=9)
    with io.atomic_path(out / "split.png") as tmp:
        fig.savefig(tmp, dpi=100, format="png", pil_kwargs={"compress_level": 1})
    plt.close(fig)


def write_split(split: Split, cell_ids: pa.Array, out_dir: str | os.PathLike, covariate_keys: list[str],
                spec: DatasetSpec, dataset: str, dataset_path: str, seed: int = 0, exports: list[str] = ()) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells = cell_splits(cell_ids, split)
    write_cell_splits(cells, out)
    pairs = split.pairs.rename(columns={covariate_keys[0]: "cell_type"})
    io.write_csv(pairs.drop(columns=["is_control", "pair"]), out / "pairs.csv")
    io.write_json(split.summary, out / "summary.json")
    write_exports(split, cells, out, list(exports), spec, covariate_keys, dataset, dataset_path, seed)
    split_png(split, out, covariate_keys, spec.control_value)
