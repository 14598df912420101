"""Detect perfectly collinear columns, as Stata's "omitted because of collinearity"."""

from __future__ import annotations

import numpy as np


def find_collinear(X: np.ndarray, rtol: float = 1e-9) -> list[int]:
    """Indices of columns of ``X`` that are linear combinations of earlier columns.

    Columns are tested left to right (Stata keeps the first of a collinear set and omits
    later ones) by Gram-Schmidt with reorthogonalisation: a column is dropped when its
    residual, after projecting on the kept columns, is below ``rtol`` times its own norm.
    """
    n, p = X.shape
    if p == 0:
        return []
    norms = np.sqrt(np.einsum("ij,ij->j", X, X))
    dropped: list[int] = []
    kept: list[int] = []
    q_basis = np.empty((n, 0))
    for j in range(p):
        col = X[:, j]
        if norms[j] == 0.0:
            dropped.append(j)
            continue
        resid = col - q_basis @ (q_basis.T @ col)
        # second Gram-Schmidt pass for stability
        resid = resid - q_basis @ (q_basis.T @ resid)
        rnorm = np.linalg.norm(resid)
        if rnorm <= rtol * norms[j] * max(1.0, np.sqrt(len(kept))):
            dropped.append(j)
            continue
        kept.append(j)
        q_basis = np.column_stack([q_basis, resid / rnorm])
    return dropped
