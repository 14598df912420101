"""Detect perfectly collinear columns, as Stata's "omitted because of collinearity"."""

from __future__ import annotations

import numpy as np


def find_collinear(X: np.ndarray, rtol: float = 1e-7) -> list[int]:
    """Indices of columns of ``X`` that are linear combinations of earlier columns.

    Columns are tested left to right (Stata keeps the first of a collinear set and omits
    later ones): a column is dropped when the norm of its residual, after projecting it on
    the kept columns, is below ``rtol`` times its own norm. The residuals come from a
    Cholesky factorisation of the cross-product matrix, built one kept column at a time
    (one pass over the data, then p x p work; Stata's ``_rmcoll`` also works on ``X'X``).
    """
    if X.shape[1] == 0:
        return []
    return collinear_from_gram(X.T @ X, rtol)


def collinear_from_gram(gram: np.ndarray, rtol: float = 1e-7) -> list[int]:
    """:func:`find_collinear` from the cross-product matrix ``X'X`` alone (a sum over
    partitions of the data when the data are distributed)."""
    p = gram.shape[0]
    chol = np.zeros((p, p))
    kept: list[int] = []
    dropped: list[int] = []
    for j in range(p):
        norm2 = gram[j, j]
        if norm2 <= 0.0:
            dropped.append(j)
            continue
        # coefficients of column j on the kept columns' orthonormal basis
        coef = np.zeros(len(kept))
        for i, k in enumerate(kept):
            coef[i] = (gram[k, j] - chol[k, kept[:i]] @ coef[:i]) / chol[k, k]
        resid2 = norm2 - coef @ coef
        if resid2 <= (rtol**2) * norm2:
            dropped.append(j)
            continue
        chol[j, kept] = coef
        chol[j, j] = np.sqrt(resid2)
        kept.append(j)
    return dropped
