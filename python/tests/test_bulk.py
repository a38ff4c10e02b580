"""`storm import`: bulk tables (the real L1000 plate in GCT, GCTX, DataFrames) become h5ad files
that storm validates like any dataset; malformed tables are one clear error and no file."""

import json
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

PLATE = Path(__file__).resolve().parents[3] / "shared" / "data" / "lincs_l1000_LJP005_A375_24H.gct"
PLATE_SPEC = {"perturbation_key": "pert_iname", "cell_type_key": "cell_id", "control_value": "DMSO",
              "batch_key": None, "dose_key": "pert_dose", "time_key": "pert_time"}


def plate_cell(gene: str, sample: str) -> float:
    """One value of the plate, read straight from the text."""
    lines = PLATE.read_text().splitlines()
    header = lines[2].split("\t")
    row = next(line.split("\t") for line in lines if line.startswith(gene + "\t"))
    return float(row[header.index(sample)])


def test_the_l1000_plate_imports_and_validates(run_cli, tmp_path):
    out = tmp_path / "plate.h5ad"
    done = run_cli("import", "--input", str(PLATE), "--out", str(out), "--var-names", "pr_gene_symbol")
    assert done.returncode == 0, done.stderr
    adata = ad.read_h5ad(out)
    assert adata.shape == (377, 978)
    assert adata.var.loc["CISD1", "pr_gene_id"] == 55847  # the row's metadata came along, typed
    sample = adata.obs_names[5]
    assert adata[sample, "CISD1"].X.item() == pytest.approx(plate_cell("218597_s_at", sample), abs=1e-4)
    obs = adata.obs
    control = obs["pert_iname"] == "DMSO"
    assert control.sum() == 26 and obs.loc[control, "pert_dose"].isna().all()  # -666 is missing
    assert sorted(obs.loc[~control, "pert_dose"].unique()) == [0.04, 0.12, 0.37, 1.11, 3.33, 10.0]
    assert obs["pert_iname"][~control].nunique() == 59 and (obs["pert_time"] == 24).all()
    qc = tmp_path / "qc.json"
    done = run_cli("validate", "--input", str(out), "--out", str(qc), "--spec", json.dumps(PLATE_SPEC))
    assert done.returncode == 0, done.stderr
    assert json.loads(qc.read_text())["scale"] == "log"


def write_gct13(path: Path, expression: pd.DataFrame, gene_meta: pd.DataFrame, sample_meta: pd.DataFrame) -> None:
    """GCT 1.3 as the format defines it: genes x samples, with both metadata blocks."""
    n_row_meta = gene_meta.shape[1]
    lines = ["#1.3", "\t".join(map(str, [*expression.shape, n_row_meta, sample_meta.shape[1]])),
             "\t".join(["id", *gene_meta.columns, *expression.columns])]
    for field in sample_meta.columns:
        lines.append("\t".join([field, *["na"] * n_row_meta, *map(str, sample_meta[field])]))
    for gene, values in expression.iterrows():
        lines.append("\t".join([gene, *map(str, gene_meta.loc[gene]), *map(str, values)]))
    path.write_text("\n".join(lines) + "\n")


def write_gctx(path: Path, expression: pd.DataFrame, gene_meta: pd.DataFrame, sample_meta: pd.DataFrame) -> None:
    """GCTX as cmap writes it: the matrix stored samples x genes, metadata fields as 1-d datasets."""
    with h5py.File(path, "w") as f:
        f.attrs["version"] = "GCTX1.0"
        f["0/DATA/0/matrix"] = expression.T.to_numpy(dtype=np.float32)
        for group, meta in (("0/META/ROW", gene_meta), ("0/META/COL", sample_meta)):
            f[f"{group}/id"] = meta.index.to_numpy().astype("S")
            for name, column in meta.items():
                f[f"{group}/{name}"] = column.to_numpy().astype("S") if column.dtype == object else column.to_numpy()


@pytest.fixture
def small_table():
    rng = np.random.default_rng(0)
    genes, samples = [f"g{i}" for i in range(7)], [f"s{i}" for i in range(5)]
    expression = pd.DataFrame(rng.normal(8, 1, (7, 5)).round(4), index=genes, columns=samples)
    gene_meta = pd.DataFrame({"symbol": [f"SYM{i}" for i in range(7)]}, index=genes)
    sample_meta = pd.DataFrame({"pert_iname": ["DMSO", "a", "a", "b", "DMSO"],
                                "pert_dose": [-666, 1, 10, 1, -666]}, index=samples)
    return expression, gene_meta, sample_meta


@pytest.mark.parametrize("fmt", ["gct", "gctx"])
def test_gct_and_gctx_read_genes_by_samples(run_cli, tmp_path, small_table, fmt):
    expression, gene_meta, sample_meta = small_table
    source = tmp_path / f"plate.{fmt}"
    (write_gct13 if fmt == "gct" else write_gctx)(source, expression, gene_meta, sample_meta)
    done = run_cli("import", "--input", str(source), "--out", str(tmp_path / "x.h5ad"), "--var-names", "symbol")
    assert done.returncode == 0, done.stderr
    adata = ad.read_h5ad(tmp_path / "x.h5ad")
    assert list(adata.obs_names) == list(expression.columns) and list(adata.var_names) == list(gene_meta["symbol"])
    np.testing.assert_allclose(adata.X, expression.T.to_numpy(), atol=1e-4)
    assert adata.obs["pert_dose"].isna().tolist() == [True, False, False, False, True]


def test_a_dataframe_s_genes_are_its_numeric_columns_but_the_metadata(run_cli, tmp_path, small_table):
    expression, _, sample_meta = small_table
    frame = pd.concat([expression.T, sample_meta], axis=1)
    frame.to_parquet(tmp_path / "sig.parquet")
    frame.to_pickle(tmp_path / "sig.pkl")
    for name in ("sig.parquet", "sig.pkl"):
        out = tmp_path / f"{name}.h5ad"
        done = run_cli("import", "--input", str(tmp_path / name), "--out", str(out), "--metadata", "pert_dose")
        assert done.returncode == 0, done.stderr
        adata = ad.read_h5ad(out)
        assert list(adata.var_names) == list(expression.index)
        assert list(adata.obs.columns) == ["pert_iname", "pert_dose"]
        np.testing.assert_allclose(adata.X, expression.T.to_numpy(), atol=1e-5)
    # without --metadata the numeric dose would be a gene; an explicit gene list leaves it out too
    genes = tmp_path / "genes.txt"
    genes.write_text("\n".join(expression.index[:3]))
    done = run_cli("import", "--input", str(tmp_path / "sig.parquet"), "--out", str(tmp_path / "g.h5ad"),
                   "--genes", f"@{genes}")
    assert done.returncode == 0, done.stderr
    assert list(ad.read_h5ad(tmp_path / "g.h5ad").var_names) == list(expression.index[:3])


def test_malformed_tables_are_one_error_and_no_file(run_cli, tmp_path, small_table):
    expression, gene_meta, sample_meta = small_table
    holed = expression.copy()
    holed.iloc[2, 3] = np.nan
    write_gct13(tmp_path / "holed.gct", holed, gene_meta, sample_meta)
    (tmp_path / "not.gct").write_text("gene\ts1\ng1\t1\n")
    write_gct13(tmp_path / "ok.gct", expression, gene_meta.assign(symbol="same"), sample_meta)
    cases = {
        "holed.gct": ([], "sample 's3' has no finite value for gene 'g2'"),
        "not.gct": ([], "is not a GCT file"),
        "ok.gct": (["--var-names", "symbol"], "gene id(s) in field 'symbol' are repeated, e.g. 'same'"),
        "sig.bin": ([], "cannot tell the format of sig.bin"),
    }
    (tmp_path / "sig.bin").write_bytes(b"\0")
    for name, (args, message) in cases.items():
        out = tmp_path / f"{name}.h5ad"
        done = run_cli("import", "--input", str(tmp_path / name), "--out", str(out), *args)
        assert done.returncode == 2, (name, done.stderr)
        assert done.stderr.strip().splitlines()[-1].startswith("error: ") and message in done.stderr, done.stderr
        assert not out.exists()
