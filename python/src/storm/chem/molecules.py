"""Molecule features: a vector per compound, from its SMILES with RDKit or from a user's table.

A featuriser turns each compound's SMILES into Morgan (ECFP-like) fingerprint bits and, when asked,
a few standardised physico-chemical descriptors; an embedding table (id -> vector: parquet, CSV
or pickle, e.g. KPGT vectors) replaces it when a lab has its own. Models that see a perturbation
as a molecule read this table, so they can predict a drug they never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

#: RDKit descriptors storm can add to the fingerprint (name -> rdkit.Chem.Descriptors function)
DESCRIPTORS = ("MolWt", "MolLogP", "TPSA", "NumHDonors", "NumHAcceptors", "NumRotatableBonds", "RingCount",
               "FractionCSP3")


@dataclass(frozen=True)
class Featurizer:
    """How SMILES become vectors: Morgan bits of ``radius`` folded to ``n_bits`` (0: none), plus
    ``descriptors`` (standardised over the compounds featurised together)."""

    radius: int = 2
    n_bits: int = 1024
    descriptors: tuple[str, ...] = field(default=DESCRIPTORS)

    def __post_init__(self):
        unknown = sorted(set(self.descriptors) - set(DESCRIPTORS))
        if unknown:
            raise InputError(f"unknown descriptor(s) {', '.join(unknown)}; storm knows {', '.join(DESCRIPTORS)}")
        if self.n_bits < 0 or self.radius < 0 or (self.n_bits == 0 and not self.descriptors):
            raise InputError("molecule features need n_bits > 0 or some descriptors")


def parse_smiles(names: list[str], smiles: list[str]) -> list:
    """RDKit molecules; an invalid SMILES is one error naming its compound."""
    from rdkit import Chem, rdBase

    molecules = []
    with rdBase.BlockLogs():  # RDKit's own parse messages would bury storm's one line
        for name, text in zip(names, smiles):
            molecule = Chem.MolFromSmiles(str(text)) if isinstance(text, str) and text.strip() else None
            if molecule is None:
                raise InputError(f"the SMILES of '{name}' is not a valid molecule: {text!r}")
            molecules.append(molecule)
    return molecules


def featurize(smiles: pd.Series, featurizer: Featurizer = Featurizer()) -> pd.DataFrame:
    """One row of features per compound (``smiles``: compound name -> SMILES)."""
    from rdkit.Chem import Descriptors, rdFingerprintGenerator

    molecules = parse_smiles(list(smiles.index), list(smiles))
    blocks = []
    if featurizer.n_bits:
        generator = rdFingerprintGenerator.GetMorganGenerator(radius=featurizer.radius, fpSize=featurizer.n_bits)
        bits = np.stack([generator.GetFingerprintAsNumPy(m) for m in molecules]).astype(np.float32)
        blocks.append(pd.DataFrame(bits, index=smiles.index, columns=[f"morgan{i}" for i in range(featurizer.n_bits)]))
    if featurizer.descriptors:
        values = np.array([[getattr(Descriptors, d)(m) for d in featurizer.descriptors] for m in molecules],
                          dtype=np.float64)
        spread = values.std(axis=0)
        values = (values - values.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
        blocks.append(pd.DataFrame(values.astype(np.float32), index=smiles.index, columns=list(featurizer.descriptors)))
    return pd.concat(blocks, axis=1)


def scaffolds(smiles: pd.Series) -> pd.Series:
    """Bemis-Murcko scaffold SMILES per compound (an acyclic molecule's scaffold is '')."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    molecules = parse_smiles(list(smiles.index), list(smiles))
    return pd.Series([MurckoScaffold.MurckoScaffoldSmiles(mol=m) for m in molecules], index=smiles.index)


def read_embeddings(path: Path) -> pd.DataFrame:
    """A compound -> vector table: parquet, CSV/TSV (ids in the first column) or a pickled
    DataFrame or dict of vectors."""
    from ..bulk import load_table

    suffix = path.suffix.lower()
    fmt = "parquet" if suffix in (".parquet", ".pq") else suffix[1:] if suffix in (".csv", ".tsv") else "pickle"
    table = load_table(path, fmt)
    if isinstance(table, dict):
        table = pd.DataFrame.from_dict({k: np.ravel(v) for k, v in table.items()}, orient="index")
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise InputError(f"{path.name} must hold a table of compound id -> vector")
    numeric = table.apply(pd.to_numeric, errors="coerce")
    if numeric.isna().any().any():
        raise InputError(f"{path.name}: the embedding of '{numeric.index[numeric.isna().any(axis=1)][0]}' has "
                         f"values that are not numbers")
    numeric.index = numeric.index.astype(str)
    return numeric.astype(np.float32)


def compound_features(compounds: list[str], smiles: pd.Series | None = None, embeddings: Path | None = None,
                      featurizer: Featurizer = Featurizer()) -> pd.DataFrame:
    """Features of ``compounds``: rows of the embedding table when one is given, else featurised
    from ``smiles`` (compound -> SMILES). A compound with neither is an error naming it."""
    if embeddings is not None:
        table = read_embeddings(embeddings)
        missing = [c for c in compounds if c not in table.index]
        if missing:
            raise InputError(f"{len(missing)} compound(s) have no row in {embeddings.name}, e.g. '{missing[0]}'")
        return table.loc[compounds]
    if smiles is None:
        raise InputError("molecule features need SMILES (the dataset spec's smiles_key) or an embedding table")
    missing = [c for c in compounds if c not in smiles.index]
    if missing:
        raise InputError(f"{len(missing)} compound(s) have no SMILES, e.g. '{missing[0]}'")
    return featurize(smiles.loc[compounds], featurizer)


def known_drugs() -> pd.DataFrame:
    """The well-known drugs storm ships (name, class, SMILES) for synthetic chemical screens."""
    return pd.read_csv(Path(__file__).with_name("drugs.csv"))
