"""The joint Laplace engine's dense component blocks of ``S`` (flat, row-major, see
:func:`~mixedglm.engines.laplace_kernels.cidx`): Cholesky factors and inverses.

Blocks of at least :data:`LAPACK_MIN` effects (a crossed model's one block of all the other
factors' levels) go to LAPACK (``dpotrf``, ``dpotri``) on one BLAS thread
(:mod:`mixedglm.blas_threads`): a 400 x 400 factor in 0.8 ms rather than the numba loop's
6 ms, its inverse in 2.4 ms rather than 6.7. The smaller blocks (a nested model's thousands
of tiny ones, where a Python loop over LAPACK calls would cost more than the arithmetic)
stay in one numba call each. A row-major lower triangle is the upper triangle of the
column-major transpose, so LAPACK works on the blocks' ``.T`` views in place.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

from mixedglm.blas_threads import one_blas_thread
from mixedglm.engines import laplace_kernels as kern

LAPACK_MIN = 64  # effects in a block: at least this many, LAPACK


def _large_blocks(layout: tuple) -> list[tuple[int, int, int]]:
    """``(component, size, offset)`` of the components with at least :data:`LAPACK_MIN`
    effects."""
    size, base = layout[2], layout[3]
    return [(int(c), int(size[c]), int(base[c])) for c in np.flatnonzero(size >= LAPACK_MIN)]


def _square(flat: np.ndarray, base: int, n: int) -> np.ndarray:
    return flat[base : base + n * n].reshape(n, n)


def block_cholesky(S: np.ndarray, layout: tuple, logdet: np.ndarray) -> bool:
    """Cholesky factor of each component block in place (lower triangle, row-major; the
    upper triangle of large blocks is left as it was); ``logdet[p]`` = ``2 log L_pp``.
    False when a block is not positive definite (as the numba kernel: a non-positive or
    NaN pivot)."""
    if not kern.block_cholesky(S, layout, logdet, LAPACK_MIN):
        return False
    blocks = _large_blocks(layout)
    if not blocks:  # no LAPACK call: not even the BLAS thread switch
        return True
    first = layout[1]
    with one_blas_thread():
        for c, n, b in blocks:
            m = _square(S, b, n)
            # OpenBLAS's potrf stops at a non-positive pivot but not at a NaN one
            factor, info = lapack.dpotrf(m.T, lower=0, clean=0, overwrite_a=1)
            if info != 0:
                return False
            if not np.shares_memory(factor, m):  # not in place (f2py copied): copy back
                m.T[...] = factor
            diag = np.diagonal(m)
            if np.isnan(diag).any():
                return False
            logdet[first[c] : first[c] + n] = 2.0 * np.log(diag)
    return True


def block_inverse(L: np.ndarray, layout: tuple) -> np.ndarray:
    """``S^-1`` on the component blocks from their Cholesky factors (same layout, both
    triangles)."""
    out = kern.block_inverse(L, layout, LAPACK_MIN)
    blocks = _large_blocks(layout)
    if not blocks:
        return out
    with one_blas_thread():
        for _, n, b in blocks:
            m = _square(out, b, n)
            m[...] = _square(L, b, n)
            inv, info = lapack.dpotri(m.T, lower=0, overwrite_c=1)
            if info != 0:  # a zero pivot: not from a factor block_cholesky accepted
                m[...] = np.nan
                continue
            if not np.shares_memory(inv, m):
                m.T[...] = inv
            kern.mirror_lower(out, b, n)
    return out
