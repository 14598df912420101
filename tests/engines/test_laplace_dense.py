"""The joint Laplace engine's dense component blocks (:mod:`mixedglm.engines.laplace_dense`):
LAPACK for the large blocks gives the numba kernels' factors, log determinants and inverses;
a block that is not positive definite (or holds a NaN) is reported."""

from __future__ import annotations

import numpy as np
import pytest

from mixedglm.engines import laplace_dense as dense
from mixedglm.engines import laplace_kernels as kern

SIZES = (3, dense.LAPACK_MIN + 6, 1, 5, 2 * dense.LAPACK_MIN + 3)
ALL_NUMBA = 1 << 30


def _layout(sizes: tuple[int, ...]) -> tuple:
    size = np.array(sizes, dtype=np.int64)
    first = (np.cumsum(size) - size).astype(np.int64)
    base = (np.cumsum(size**2) - size**2).astype(np.int64)
    comp = np.repeat(np.arange(size.size), size).astype(np.int64)
    return comp, first, size, base


def _blocks(sizes: tuple[int, ...], seed: int = 3) -> tuple[np.ndarray, list[np.ndarray]]:
    """Flat row-major SPD blocks (lower triangle only, as the engine leaves them)."""
    rng = np.random.default_rng(seed)
    mats, flat = [], []
    for n in sizes:
        x = rng.normal(size=(n, 2 * n + 1))
        s = x @ x.T / n + 0.1 * np.eye(n)
        mats.append(s)
        flat.append(np.tril(s).ravel())
    return np.concatenate(flat), mats


def test_lapack_blocks_equal_numba_kernels():
    lay = _layout(SIZES)
    flat, mats = _blocks(SIZES)
    ref, got = flat.copy(), flat.copy()
    ld_ref, ld_got = np.empty(sum(SIZES)), np.empty(sum(SIZES))
    assert kern.block_cholesky(ref, lay, ld_ref, ALL_NUMBA)
    assert dense.block_cholesky(got, lay, ld_got)
    base = lay[3]
    for c, n in enumerate(SIZES):
        b = base[c]
        lower_ref = np.tril(ref[b : b + n * n].reshape(n, n))
        lower_got = np.tril(got[b : b + n * n].reshape(n, n))
        np.testing.assert_allclose(lower_got, lower_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(lower_got @ lower_got.T, mats[c], rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(ld_got, ld_ref, rtol=1e-12, atol=1e-12)
    inv_ref = kern.block_inverse(ref, lay, ALL_NUMBA)
    inv_got = dense.block_inverse(got, lay)
    np.testing.assert_allclose(inv_got, inv_ref, rtol=1e-10, atol=1e-12)
    for c, n in enumerate(SIZES):
        b = base[c]
        block = inv_got[b : b + n * n].reshape(n, n)
        np.testing.assert_array_equal(block, block.T)
        np.testing.assert_allclose(block, np.linalg.inv(mats[c]), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("component", [1, 3, 4])
@pytest.mark.parametrize("bad", ["indefinite", "nan"])
def test_not_positive_definite_reported(component: int, bad: str):
    lay = _layout(SIZES)
    flat, _ = _blocks(SIZES)
    n, b = SIZES[component], lay[3][component]
    block = flat[b : b + n * n].reshape(n, n)
    if bad == "indefinite":
        block[n - 1, n - 1] = -1.0
    else:
        block[n - 1, 0] = np.nan
    ld = np.empty(sum(SIZES))
    assert not kern.block_cholesky(flat.copy(), lay, ld, ALL_NUMBA)
    assert not dense.block_cholesky(flat, lay, ld)
