"""``blas_threads.one_blas_thread``: every loaded OpenBLAS on one thread inside the block,
the previous counts restored after it (also after an error), the results unchanged."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
import scipy.linalg

from mixedglm.blas_threads import controls, one_blas_thread


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="found through /proc")
def test_numpy_and_scipy_openblas_are_found():
    assert len(controls()) >= 1


def test_one_thread_inside_restored_after():
    before = [get() for get, _ in controls()]
    with one_blas_thread():
        assert all(get() == 1 for get, _ in controls())
    assert [get() for get, _ in controls()] == before
    with pytest.raises(ZeroDivisionError), one_blas_thread():
        1 / 0  # noqa: B018
    assert [get() for get, _ in controls()] == before


def test_a_factor_under_one_thread_equals_the_default():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 300))
    s = a @ a.T + 300 * np.eye(300)
    with one_blas_thread():
        lower = scipy.linalg.cholesky(s, lower=True)
    np.testing.assert_allclose(lower, np.linalg.cholesky(s), rtol=1e-12, atol=1e-12)


def test_nested_use_in_one_thread_does_not_deadlock():
    before = [get() for get, _ in controls()]
    inside: list[bool] = []

    def nested() -> None:
        with one_blas_thread(), one_blas_thread():  # a plain lock would wait here forever
            inside.append(all(get() == 1 for get, _ in controls()))

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "one_blas_thread deadlocked when nested"
    assert inside == [True]
    assert [get() for get, _ in controls()] == before
