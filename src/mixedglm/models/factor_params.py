"""The parts of ``theta`` that belong to each grouping factor of a several-factor model,
the factors' column scales, and which variance components sit on the boundary."""

from __future__ import annotations

import numpy as np

from mixedglm.design.multilevel import MultilevelDesign
from mixedglm.engines.covariance import CovarianceStructure

BOUNDARY_SD = 1e-6  # an SD below this (linear predictor's scale): zero
BOUNDARY_Z = 1e-3  # an SD within this many standard errors of zero: zero


def factor_scales(design: MultilevelDesign) -> list[np.ndarray]:
    """Each factor's root mean squares of its random-effect columns."""
    return [np.sqrt(np.mean(f.Z**2, axis=0)) for f in design.factors]


def theta_slices(design: MultilevelDesign) -> list[slice]:
    """Each factor's part of ``theta`` (factors in the formula's order)."""
    out, start = [], 0
    for f in design.factors:
        out.append(slice(start, start + f.structure.n_theta))
        start += f.structure.n_theta
    return out


def negligible_effects(
    structure: CovarianceStructure,
    scales: np.ndarray,
    theta: np.ndarray,
    hessian: np.ndarray | None = None,
) -> np.ndarray:
    """Which ``theta`` entries belong to a random effect whose variance is zero: its row of
    ``Lambda`` negligible, an SD below :data:`BOUNDARY_SD` on the linear predictor's scale
    or, with ``hessian`` (the log likelihood's in ``theta``), every ``theta`` of the row
    within :data:`BOUNDARY_Z` standard errors of zero (the log likelihood there within
    about 5e-7 of that at zero). Newton's convergence test stops up to ``sqrt(gtol /
    curvature)`` from an optimum at zero, which on small data sets is above 1e-6 (a crossed
    fit of 500 rows ended at an SD of 1.03e-6 with a standard error of 0.12)."""
    basis = structure.basis()
    lam = structure.lam(theta)
    curvature = None if hessian is None else -np.diag(hessian)
    flags = np.zeros(theta.shape[0], dtype=bool)
    for a in range(lam.shape[0]):
        row = np.any(basis[:, a, :] != 0, axis=1)
        zero = np.linalg.norm(lam[a]) * scales[a] < BOUNDARY_SD
        if not zero and curvature is not None and row.any() and np.all(curvature[row] > 0):
            zero = bool(np.all(np.abs(theta[row]) * np.sqrt(curvature[row]) < BOUNDARY_Z))
        if zero:
            flags |= row
    return flags


def boundary_flags(
    design: MultilevelDesign,
    scales: list[np.ndarray],
    theta: np.ndarray,
    hessian: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`negligible_effects` of each factor (``hessian``: in all of ``theta``)."""
    flags = np.zeros(theta.shape[0], dtype=bool)
    for f, sl, sc in zip(design.factors, theta_slices(design), scales, strict=True):
        block = None if hessian is None else hessian[sl, sl]
        flags[sl] = negligible_effects(f.structure, sc, theta[sl], block)
    return flags
