"""Write a split: split.csv, the PerturBench CSV, pairs.csv, summary.json, state.toml, split.png."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from .. import io
from .core import PERTURBATION, SPLITS, Split

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


def write_cell_splits(cell_ids: pa.Array, split: Split, out: Path) -> None:
    """``split.csv`` (cell_id,split) and ``perturbench_split.csv`` (the same, headerless)."""
    labels = pa.DictionaryArray.from_arrays(pa.array(split.cell_split, type=pa.int8()), pa.array(list(SPLITS)))
    table = pa.table({"cell_id": cell_ids, "split": labels})
    # plain rows as PerturBench writes them, unless an id holds a character CSV must quote
    needs_quotes = any(_holds_csv_specials(chunk) for chunk in pa.chunked_array(cell_ids).chunks)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed" if needs_quotes else "none")
    with io.atomic_path(out / "split.csv") as tmp:
        with pa.OSFile(str(tmp), "wb") as sink:
            sink.write(b"cell_id,split\n")
            pacsv.write_csv(table, sink, write_options=options)
    io.write_checksum(out / "split.csv")
    with io.atomic_path(out / "perturbench_split.csv") as tmp:
        with open(out / "split.csv", "rb") as src, open(tmp, "wb") as dst:
            src.readline()  # drop the header
            shutil.copyfileobj(src, dst, 16 << 20)


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
                control_value: str, dataset: str, dataset_path: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_cell_splits(cell_ids, split, out)
    pairs = split.pairs.rename(columns={covariate_keys[0]: "cell_type"})
    io.write_csv(pairs.drop(columns=["is_control", "pair"]), out / "pairs.csv")
    io.write_json(split.summary, out / "summary.json")
    io.write_text(state_toml(split, dataset, dataset_path, covariate_keys[0]), out / "state.toml")
    split_png(split, out, covariate_keys, control_value)

