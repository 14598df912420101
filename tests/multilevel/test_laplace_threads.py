"""The joint Laplace engine's kernels by chunks (threads) equal the kernels in one piece:
the assembly by chunks of block levels (rows in the data's order or not), the selected
inverse by chunks of levels, the leverages and the gradient's rows by chunks of rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedglm.design.multilevel import build_multilevel_design
from mixedglm.engines import laplace_pattern
from mixedglm.engines.laplace_joint import JointLaplaceEngine
from mixedglm.engines.laplace_pattern import rows_by_level
from mixedglm.engines.laplace_rows import RowChunks
from mixedglm.families import Family
from mixedglm.formula import parse_formula

BERNOULLI = Family("bernoulli", "logit")
FORMULA = "y ~ x + (1 + x | s) + (1 | i)"


def _data(shuffle: bool, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(40), 12)
    i = np.concatenate([rng.choice(15, 12, replace=False) for _ in range(40)])
    x = rng.normal(size=s.size)
    eta = 0.2 + 0.5 * x + rng.normal(0, 0.8, 40)[s] + rng.normal(0, 0.5, 15)[i]
    data = pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x, "s": s, "i": i})
    return data.sample(frac=1.0, random_state=3) if shuffle else data


def _engine(data: pd.DataFrame) -> JointLaplaceEngine:
    design = build_multilevel_design(parse_formula(FORMULA), data, BERNOULLI)
    return JointLaplaceEngine(design, BERNOULLI)


PARAMS = np.array([0.2, 0.5, 0.8, 0.1, 0.3, 0.5])


@pytest.mark.parametrize("width", [1, 2])
def test_levels_met_by_marking_equal_those_by_sorting(monkeypatch, width):
    """``_levels_meet``: the keys marked in an array of all keys (few levels x positions)
    give the pattern the sorted keys give."""
    rng = np.random.default_rng(4)
    g1, m, n = 30, 20, 400
    c1 = rng.integers(0, g1 - 1, n)  # the last level meets nothing
    pos = np.column_stack([c1, g1 + rng.integers(0, m, (n, width))]).astype(np.int64)
    monkeypatch.setattr(laplace_pattern, "DENSE_KEYS", 10**6)
    marked = laplace_pattern._levels_meet(pos, c1, g1, 1, m)
    monkeypatch.setattr(laplace_pattern, "DENSE_KEYS", 0)
    sorted_ = laplace_pattern._levels_meet(pos, c1, g1, 1, m)
    for a, b in zip(marked, sorted_, strict=True):
        np.testing.assert_array_equal(a, b)
    kptr, kpos, loc = marked
    for i in range(n):  # each row's local indices point at its own rest positions
        np.testing.assert_array_equal(kpos[kptr[c1[i]] + loc[i]], pos[i, 1:] - g1)


def test_rows_by_level():
    c1 = np.array([2, 0, 1, 0, 2, 2, 0])
    rptr, order = rows_by_level(c1, 4)
    np.testing.assert_array_equal(rptr, [0, 3, 4, 7, 7])
    np.testing.assert_array_equal(order, [1, 3, 6, 2, 0, 4, 5])
    rptr, order = rows_by_level(np.array([0, 0, 1, 3]), 4)
    np.testing.assert_array_equal(order, np.arange(4))


def test_shuffled_rows_same_loglik_and_gradient():
    ll0, g0 = _engine(_data(False)).gradient(PARAMS)
    ll1, g1 = _engine(_data(True)).gradient(PARAMS)
    assert ll1 == pytest.approx(ll0, rel=1e-12)
    np.testing.assert_allclose(g1, g0, rtol=1e-9, atol=1e-10)


def _split(bounds_end: int, pieces: int) -> np.ndarray:
    return np.unique(np.linspace(0, bounds_end, pieces + 1).astype(np.int64))


@pytest.mark.parametrize("shuffle", [False, True])
def test_chunked_kernels_equal_one_piece(shuffle: bool):
    eng = _engine(_data(shuffle))
    st, a, _, _ = eng._at(PARAMS)
    fac = st["fac"]
    one, many = (RowChunks(eng.rptr, eng.m + eng.n_flat, eng._schur_cost, 6) for _ in "12")
    for chunks, pieces in ((one, 1), (many, 3)):
        chunks.assembly = _split(eng.g1, pieces)
        chunks.levels = _split(eng.g1, pieces)
        chunks.terms = chunks.score = _split(eng.y.shape[0], pieces)
    q1, g1 = eng.q1, eng.g1
    args = (eng.pos, a, eng.loc, st["l1"], st["w"], st["u"], q1, eng.kptr, eng.rptr, eng.order)
    out = []
    for chunks in (one, many):
        grad = np.full(eng.n_u, np.nan)
        arrays = (
            np.full((g1, q1, q1), np.nan),
            np.full(eng.kpos.shape[0] * q1, np.nan),
            np.full(eng.n_flat, np.nan),
        )
        chunks.assemble(args, grad, arrays, eng.layout)
        out.append((grad, *arrays))
    (g_1, d_1, b_1, c_1), (g_m, d_m, b_m, c_m) = out
    n1 = g1 * q1
    np.testing.assert_array_equal(g_m[:n1], g_1[:n1])  # each level's own: same sums
    np.testing.assert_array_equal(d_m, d_1)
    np.testing.assert_array_equal(b_m, b_1)
    np.testing.assert_allclose(g_m[n1:], g_1[n1:], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(c_m, c_1, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(g_1, fac["grad"], rtol=1e-13, atol=1e-13)
    sinv = eng._sinv(fac)
    sel = (q1, eng.kptr, eng.kpos, fac["Dinv"], fac["F"], sinv, eng.layout)
    p_1, h_1 = one.selected_inverse(*sel)
    p_m, h_m = many.selected_inverse(*sel)
    np.testing.assert_array_equal(p_m, p_1)
    np.testing.assert_array_equal(h_m, h_1)
    lev = (eng.c1, eng.pos, a, eng.loc, q1, eng.kptr, p_1, h_1, sinv, eng.layout)
    v_1, v_m = np.full_like(a, np.nan), np.full_like(a, np.nan)
    np.testing.assert_array_equal(many.row_leverages(lev, v_m), one.row_leverages(lev, v_1))
    np.testing.assert_array_equal(v_m, v_1)
    h = one.row_leverages(lev, v_1)
    As = np.arange(a.shape[0]) / a.shape[0]  # any values: the same for both
    rows = (st["eta"], eng.y, eng.trials, np.zeros(0), BERNOULLI.token, st["l1"], st["w"])
    args = (eng.X, eng.pos, eng._da, *rows, st["l3"], h, As, v_1, st["u"], st["u"], eng.top)
    score_1, score_m = np.zeros((1, eng.n_params)), np.zeros((1, eng.n_params))
    one.gradient_rows(args, score_1)
    many.gradient_rows(args, score_m)
    np.testing.assert_allclose(score_m, score_1, rtol=1e-13, atol=1e-13)
