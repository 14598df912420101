"""``jit.borrow``: views of a record's arrays without reference counting, used by the nested
quadrature's kernels. Reads and writes go to the same memory as the record's arrays, scalar
members pass through, and records nest."""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from mixedglm.jit import borrow


class Inner(NamedTuple):
    a: np.ndarray
    scale: float


class Outer(NamedTuple):
    inner: Inner
    b: np.ndarray
    n: int


@numba.njit
def _use(rec: Outer) -> float:
    r = borrow(rec)
    total = 0.0
    for i in range(r.b.shape[0]):
        r.b[i] += 1.0  # a write through the view
        total += r.b[i] * r.inner.scale
    for i in range(r.inner.a.shape[0]):
        for j in range(r.inner.a.shape[1]):
            total += r.inner.a[i, j]
    return total + r.n


@numba.njit
def _one(x: np.ndarray) -> float:
    v = borrow(x[1:])  # a strided view of a slice
    v[0] = 5.0
    return v.sum() + v.shape[0]


def test_borrowed_views_share_memory_and_keep_scalars():
    a = np.arange(6.0).reshape(2, 3)
    b = np.array([1.0, 2.0, 3.0])
    rec = Outer(Inner(a, 2.0), b, 7)
    got = _use(rec)
    np.testing.assert_array_equal(b, [2.0, 3.0, 4.0])
    assert got == (2.0 + 3.0 + 4.0) * 2.0 + a.sum() + 7
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert _one(x) == 5.0 + 3.0 + 4.0 + 3
    assert x[1] == 5.0
