"""Collinear columns are found left to right, as Stata's _rmcoll keeps the first of a set."""

from __future__ import annotations

import numpy as np

from mixedglm.design.collinear import find_collinear


def test_exact_combinations_and_zero_columns_are_dropped_later_ones_first():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 3))
    X = np.column_stack([np.ones(500), x, x[:, 0] - 2 * x[:, 2], np.zeros(500), x[:, 1] * 1e6])
    assert find_collinear(X) == [4, 5, 6]


def test_nearly_collinear_columns_are_kept():
    rng = np.random.default_rng(4)
    x = rng.normal(size=500)
    X = np.column_stack([x, x + 1e-5 * rng.normal(size=500)])
    assert find_collinear(X) == []


def test_no_columns():
    assert find_collinear(np.zeros((5, 0))) == []
