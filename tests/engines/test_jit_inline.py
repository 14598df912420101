"""``jit_inline``: numba's inliner without its defensive IR copies. The patch is active on the
numba the package is tested with, inlined code computes what the Python code computes (also
when one callee is spliced into several callers, and callees inline others), the copy
module is restored after each splice, and an unexpected numba is left alone."""

from __future__ import annotations

import copy

import numba
import numpy as np
import pytest
from numba.core import inline_closurecall

from mixedglm import jit_inline


@numba.njit(inline="always")
def _clip(v, lo, hi):
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


@numba.njit(inline="always")
def _clipped_sum(x, lo, hi):
    total = 0.0
    for i in range(x.shape[0]):
        total += _clip(x[i], lo, hi)
    return total


@numba.njit
def _twice(x):
    # the same callees spliced at two sites, with different arguments
    return _clipped_sum(x, -1.0, 1.0) + 10.0 * _clipped_sum(x, 0.0, 0.5)


@numba.njit
def _other_caller(x):
    acc = 0.0
    for k in range(3):
        acc += _clip(float(k), 0.5, 1.5) * _clipped_sum(x, -0.25, 0.25)
    return acc


def _py_clipped_sum(x, lo, hi):
    return float(np.clip(x, lo, hi).sum())


def test_the_patch_is_active_on_this_numba():
    # if this fails after a numba upgrade, the inliner changed: check the patch against the
    # new source (nothing breaks without it; nested kernels only compile more slowly)
    assert jit_inline.matches_numba(inline_closurecall.InlineWorker), numba.__version__
    assert jit_inline.install()
    assert getattr(inline_closurecall.InlineWorker.inline_function, "mixedglm_patch", False)


def test_inlined_code_equals_python_and_the_copy_module_is_restored(monkeypatch):
    assert jit_inline.install()
    calls = []
    monkeypatch.setattr(
        jit_inline._NoDeepCopy, "deepcopy", staticmethod(lambda v, m=None: calls.append(1) or v)
    )
    x = np.linspace(-2.0, 2.0, 17)
    expected = _py_clipped_sum(x, -1.0, 1.0) + 10.0 * _py_clipped_sum(x, 0.0, 0.5)
    assert _twice(x) == pytest.approx(expected, rel=1e-15)
    other = sum(min(max(float(k), 0.5), 1.5) for k in range(3)) * _py_clipped_sum(x, -0.25, 0.25)
    assert _other_caller(x) == pytest.approx(other, rel=1e-15)
    # integers: a second specialisation of the same inlined callees
    xi = np.arange(-3, 4)
    assert _twice(xi) == pytest.approx(
        _py_clipped_sum(xi, -1.0, 1.0) + 10.0 * _py_clipped_sum(xi, 0.0, 0.5), rel=1e-15
    )
    assert calls, "the splices did not go through the patched inliner"
    assert inline_closurecall.copy is copy


def test_an_unexpected_numba_is_left_alone(monkeypatch):
    class OtherWorker:
        def inline_function(self, caller_ir, block, i, function, arg_typs=None):
            """Some future numba."""
            callee_ir = self.run_untyped_passes(function, enable_ssa=True)
            return self.inline_ir(caller_ir, block, i, callee_ir, (), arg_typs=arg_typs)

        def inline_ir(self, *args):
            return args

    before = OtherWorker.inline_function
    assert not jit_inline.matches_numba(OtherWorker)
    monkeypatch.setattr(inline_closurecall, "InlineWorker", OtherWorker)
    assert not jit_inline.install()
    assert OtherWorker.inline_function is before
