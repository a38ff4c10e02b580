"""Molecule features: fingerprints that put near-identical drugs close, scaffolds, embedding
tables, and an invalid SMILES named in one error."""

import pickle

import numpy as np
import pandas as pd
import pytest

from storm.chem.molecules import (
    DESCRIPTORS,
    Featurizer,
    compound_features,
    featurize,
    known_drugs,
    read_embeddings,
    scaffolds,
)
from storm.errors import InputError


@pytest.fixture(scope="module")
def drugs():
    return known_drugs().set_index("name")["smiles"]


def tanimoto(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.maximum(a, b).sum())


def test_fingerprints_put_near_identical_drugs_close(drugs):
    features = featurize(drugs)
    assert features.shape == (len(drugs), 1024 + len(DESCRIPTORS))
    bits = features.filter(like="morgan").to_numpy()
    row = {name: i for i, name in enumerate(drugs.index)}
    statins = tanimoto(bits[row["simvastatin"]], bits[row["lovastatin"]])  # one methyl apart
    assert statins > 0.7
    assert statins > 3 * tanimoto(bits[row["simvastatin"]], bits[row["aspirin"]])
    np.testing.assert_allclose(features[list(DESCRIPTORS)].mean(), 0, atol=1e-5)  # standardised
    only_bits = featurize(drugs, Featurizer(n_bits=256, descriptors=()))
    assert only_bits.shape == (len(drugs), 256) and set(np.unique(only_bits)) <= {0.0, 1.0}


def test_scaffolds_group_analogues(drugs):
    found = scaffolds(drugs[["simvastatin", "lovastatin", "aspirin", "metformin"]])
    assert found["simvastatin"] == found["lovastatin"] != ""
    assert found["aspirin"] == "c1ccccc1" and found["metformin"] == ""


def test_an_invalid_smiles_names_its_compound():
    with pytest.raises(InputError, match="the SMILES of 'ringless' is not a valid molecule: 'C1CC'"):
        featurize(pd.Series({"ok": "CCO", "ringless": "C1CC"}))
    with pytest.raises(InputError, match="unknown descriptor"):
        Featurizer(descriptors=("NotADescriptor",))


def test_embedding_tables_replace_the_featuriser(tmp_path):
    vectors = pd.DataFrame(np.arange(12, dtype=float).reshape(3, 4), index=["a", "b", "c"])
    vectors.columns = [f"k{i}" for i in range(4)]
    vectors.to_parquet(tmp_path / "e.parquet")
    vectors.to_csv(tmp_path / "e.csv")
    (tmp_path / "e.pkl").write_bytes(pickle.dumps({k: v.to_numpy() for k, v in vectors.iterrows()}))
    for name in ("e.parquet", "e.csv", "e.pkl"):
        np.testing.assert_array_equal(read_embeddings(tmp_path / name).loc[["c", "a"]], vectors.loc[["c", "a"]])
    got = compound_features(["b", "a"], embeddings=tmp_path / "e.csv")
    assert list(got.index) == ["b", "a"]
    with pytest.raises(InputError, match="1 compound\\(s\\) have no row in e.csv, e.g. 'zz'"):
        compound_features(["a", "zz"], embeddings=tmp_path / "e.csv")
    with pytest.raises(InputError, match="have no SMILES, e.g. 'zz'"):
        compound_features(["zz"], smiles=pd.Series({"a": "CCO"}))
