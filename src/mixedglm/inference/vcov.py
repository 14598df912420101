"""The covariance matrix of the estimates from the observed information."""

from __future__ import annotations

import numpy as np

#: The note of a fit whose information matrix is not positive definite.
NOT_DEFINITE_NOTE = "note: Hessian is not negative definite; standard errors may be unreliable"


def covariance_from_hessian(
    hessian: np.ndarray, fixed_at_boundary: np.ndarray | None = None
) -> tuple[np.ndarray, bool]:
    """``(-H)^-1`` and whether ``-H`` was positive definite.

    Parameters flagged in ``fixed_at_boundary`` (variances estimated at zero) are left out of
    the inversion and get NaN rows and columns, as Stata reports missing standard errors for
    them. Where the rest is not positive definite, the pseudo-inverse is returned with
    ``False``.
    """
    n = hessian.shape[0]
    keep = np.ones(n, dtype=bool) if fixed_at_boundary is None else ~fixed_at_boundary
    info = -0.5 * (hessian + hessian.T)[np.ix_(keep, keep)]
    cov = np.full((n, n), np.nan)
    try:
        chol = np.linalg.cholesky(info)
        inv_chol = np.linalg.inv(chol)
        sub = inv_chol.T @ inv_chol
        ok = True
    except np.linalg.LinAlgError:
        sub = np.linalg.pinv(info)
        ok = False
    cov[np.ix_(keep, keep)] = sub
    return cov, ok


def covariance_with_boundary(
    hessian: np.ndarray, p: int, boundary: np.ndarray, notes: list[str]
) -> tuple[np.ndarray, bool]:
    """:func:`covariance_from_hessian` for ``[beta (p), theta, ...]`` with the ``theta``
    entries flagged in ``boundary`` left out; adds :data:`NOT_DEFINITE_NOTE` to ``notes``
    when the rest is not positive definite."""
    flags = np.zeros(hessian.shape[0], dtype=bool)
    flags[p : p + boundary.shape[0]] = boundary
    cov, ok = covariance_from_hessian(hessian, flags)
    if not ok:
        notes.append(NOT_DEFINITE_NOTE)
    return cov, ok
