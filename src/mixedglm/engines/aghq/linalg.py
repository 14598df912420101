"""Small dense algebra for the per-cluster kernels (q is 1 to 4): loops, no BLAS calls, no
allocations in the hot paths."""

from __future__ import annotations

import math

import numpy as np

from mixedglm.jit import kernel


@kernel
def chol_into(a: np.ndarray, out: np.ndarray) -> bool:
    """Lower Cholesky factor of a small SPD matrix into ``out``; False if not PD."""
    q = a.shape[0]
    out[:, :] = 0.0
    for i in range(q):
        for j in range(i + 1):
            s = a[i, j]
            for k in range(j):
                s -= out[i, k] * out[j, k]
            if i == j:
                if not s > 0.0:
                    return False
                out[i, i] = math.sqrt(s)
            else:
                out[i, j] = s / out[j, j]
    return True


@kernel
def inv_lower_into(lower: np.ndarray, out: np.ndarray) -> None:
    q = lower.shape[0]
    out[:, :] = 0.0
    for i in range(q):
        out[i, i] = 1.0 / lower[i, i]
        for j in range(i):
            s = 0.0
            for k in range(j, i):
                s -= lower[i, k] * out[k, j]
            out[i, j] = s / lower[i, i]


@kernel
def spd_inverse_into(a: np.ndarray, work: np.ndarray, work2: np.ndarray, out: np.ndarray) -> bool:
    """``out = a^-1`` through the Cholesky factor (``work``, ``work2`` scratch q x q)."""
    if not chol_into(a, work):
        return False
    inv_lower_into(work, work2)
    q = a.shape[0]
    for i in range(q):
        for j in range(q):
            s = 0.0
            for k in range(max(i, j), q):
                s += work2[k, i] * work2[k, j]
            out[i, j] = s
    return True


@kernel
def matmul_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            s = 0.0
            for k in range(a.shape[1]):
                s += a[i, k] * b[k, j]
            out[i, j] = s


@kernel(inline=True)
def solve_in_place(a: np.ndarray, x: np.ndarray, n: int) -> None:
    """``x <- a^-1 x`` on the leading ``n x n`` block of ``a`` (overwritten), by Gaussian
    elimination with partial pivoting."""
    for col in range(n):
        pivot = col
        for r in range(col + 1, n):
            if abs(a[r, col]) > abs(a[pivot, col]):
                pivot = r
        if pivot != col:
            for j in range(n):
                a[col, j], a[pivot, j] = a[pivot, j], a[col, j]
            x[col], x[pivot] = x[pivot], x[col]
        for r in range(col + 1, n):
            f = a[r, col] / a[col, col]
            for j in range(col, n):
                a[r, j] -= f * a[col, j]
            x[r] -= f * x[col]
    for i in range(n - 1, -1, -1):
        v = x[i]
        for j in range(i + 1, n):
            v -= a[i, j] * x[j]
        x[i] = v / a[i, i]


@kernel
def solve_small(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` for a small square ``a`` (a plain loop: numba's LAPACK-backed
    ``np.linalg.solve`` costs seconds to compile)."""
    n = a.shape[0]
    m = np.empty((n, n))
    x = np.empty(n)
    for i in range(n):
        x[i] = b[i]
        for j in range(n):
            m[i, j] = a[i, j]
    solve_in_place(m, x, n)
    return x
