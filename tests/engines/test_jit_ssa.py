"""``jit_ssa``: variables living across blocks kept as values in the package's kernels. The
patch is active on this numba; functions with arrays made and released in branches, loops,
early exits and inlined helpers compute what Python computes and release every array
exactly once (numba's allocation counters balance); variables released at a merge of paths
keep their stack slot; other modules' functions are left alone."""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import pytest
from numba.core import lowering
from numba.core.runtime import _nrt_python, rtsys

from mixedglm import jit_ssa


class _Pair(NamedTuple):
    a: np.ndarray
    b: np.ndarray


@numba.njit(inline="always")
def _scaled(p, k):
    out = p.a * k
    if k > 2:
        out = out + p.b
    return out


def _branches(x, flag):
    total = 0.0
    for i in range(x.shape[0]):
        tmp = x * i
        if flag and i % 2 == 0:
            other = tmp + 1.0
            total += other.sum()
            continue
        if i == 7:
            break
        total += tmp[0]
    return total


def _early_exit(x, stop):
    keep = np.zeros(3)
    for i in range(x.shape[0]):
        piece = x[i:] * 2.0
        if piece.sum() > stop:
            return piece.sum() + keep[0]
        keep = keep + piece[0]
    return keep.sum()


def _across(x):
    y = x * 2.0  # read in a later block, released once there: kept as a value
    if x[0] > 0:
        z = 1.0
    else:
        z = 2.0
    return y.sum() * z


def _two_releases(x, flag):
    y = x * 2.0  # released in each branch: every path meets one release, so kept too
    if flag:
        s = y.sum()
    else:
        s = y[0] + 1.0
    return s


def _inlined(x):
    p = _Pair(x.copy(), x + 1.0)
    acc = 0.0
    for k in range(5):
        q = _scaled(p, k)
        if k == 3:
            r = _scaled(_Pair(q, q), 1)
            acc += r[0]
        acc += q.sum()
    return acc


CASES = [(_branches, (np.arange(10.0), True)), (_branches, (np.arange(10.0), False)),
         (_early_exit, (np.arange(6.0), 12.0)), (_early_exit, (np.arange(6.0), 1e9)),
         (_inlined, (np.linspace(0.0, 1.0, 4),)), (_across, (np.arange(3.0),)),
         (_across, (-np.arange(3.0),)), (_two_releases, (np.arange(3.0), True)),
         (_two_releases, (np.arange(3.0), False))]  # fmt: skip


@pytest.fixture
def kept(monkeypatch):
    """Compile this module's functions with the patch; record what it keeps as values."""
    monkeypatch.setattr(jit_ssa, "MODULES", (*jit_ssa.MODULES, __name__))
    seen: dict[str, set[str]] = {}
    original = jit_ssa.kept_as_values

    def record(blocks, skip):
        out = original(blocks, skip)
        seen.setdefault("all", set()).update(out)
        return out

    monkeypatch.setattr(jit_ssa, "kept_as_values", record)
    return seen


def test_the_patch_is_active_on_this_numba():
    # if this fails after a numba upgrade, numba's lowering changed: check the patch against
    # the new source (nothing breaks without it; the nested kernels compile more slowly)
    assert jit_ssa.matches_numba(), numba.__version__
    assert jit_ssa.install()
    assert getattr(lowering.Lower._find_singly_assigned_variable, "mixedglm_patch", False)


@pytest.mark.parametrize("fn,args", CASES)
def test_kernels_compute_as_python_and_release_every_array_once(kept, fn, args):
    compiled = numba.njit(fn)  # a fresh dispatcher: compiled here, under the patch
    want = fn(*args)
    _nrt_python.memsys_enable_stats()
    try:
        compiled(*args)  # compiled (and run once) before counting
        before = rtsys.get_allocation_stats()
        for _ in range(3):
            got = compiled(*args)
        after = rtsys.get_allocation_stats()
    finally:
        _nrt_python.memsys_disable_stats()
    assert got == pytest.approx(want, rel=1e-12)
    assert after.alloc - before.alloc == after.free - before.free
    assert after.mi_alloc - before.mi_alloc == after.mi_free - before.mi_free


def test_a_variable_read_across_blocks_is_kept_as_a_value(kept):
    x = np.arange(1.0, 4.0)
    assert numba.njit(_across)(x) == _across(x) == 12.0
    assert any(name == "y" or name.startswith("y.") for name in kept["all"]), kept


def test_a_variable_released_in_each_branch_is_kept_as_a_value(kept):
    x = np.arange(1.0, 4.0)
    assert numba.njit(_two_releases)(x, False) == _two_releases(x, False) == 3.0
    assert any(name == "y" or name.startswith("y.") for name in kept["all"]), kept


def test_a_variable_released_where_paths_merge_keeps_its_slot(kept):
    def merge(x, flag):
        if flag:
            y = x * 2.0
            s = y.sum()
        else:
            s = 0.0
        return s + x[0]

    compiled = numba.njit(merge)
    assert compiled(np.ones(3), True) == 7.0
    assert compiled(np.ones(3), False) == 1.0
    # y is released on entry to the merge block, which the flag's branch does not dominate
    assert not any(name == "y" or name.startswith("y.") for name in kept["all"])


def test_other_modules_are_left_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(jit_ssa, "kept_as_values", lambda *a: calls.append(a) or set())
    numba.njit(_branches)(np.arange(4.0), True)  # this module is not the package's
    assert not calls
