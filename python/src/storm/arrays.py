"""Helpers for expression matrices that may be dense or sparse."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def stored_values(X) -> np.ndarray:
    """The explicitly stored values: the non-zeros of a sparse matrix, every entry of a dense one."""
    return X.data if sp.issparse(X) else np.asarray(X).ravel()


def to_dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)
