"""The parts of ``theta`` that belong to each grouping factor of a several-factor model,
the factors' column scales, and which variance components sit on the boundary."""

from __future__ import annotations

import numpy as np

from mixedglm.design.multilevel import MultilevelDesign

BOUNDARY_SD = 1e-6


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


def boundary_flags(
    design: MultilevelDesign, scales: list[np.ndarray], theta: np.ndarray
) -> np.ndarray:
    """``theta`` entries of random effects whose SD is negligible (below 1e-6 on the
    linear predictor's scale)."""
    flags = np.zeros(theta.shape[0], dtype=bool)
    for f, sl, sc in zip(design.factors, theta_slices(design), scales, strict=True):
        lam = f.structure.lam(theta[sl])
        basis = f.structure.basis()
        local = np.zeros(sl.stop - sl.start, dtype=bool)
        for a in range(f.q):
            if np.linalg.norm(lam[a]) * sc[a] < BOUNDARY_SD:
                local |= np.any(basis[:, a, :] != 0, axis=1)
        flags[sl] = local
    return flags
