"""The conditional logit's two recursions: ratios (linear predictors spanning up to
``RATIO_MAX_SPREAD`` within a group) and logarithms (wider), each against enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from mixedglm.engines.clogit_kernels import RATIO_MAX_SPREAD
from mixedglm.engines.conditional import clogit_evaluate


def enumerate_group(beta, X, y):
    """Loglik, score and Hessian of one group by summing over all subsets of size k."""
    n, k = y.size, int(y.sum())
    T = np.array([X[list(s)].sum(axis=0) for s in itertools.combinations(range(n), k)])
    le = T @ beta
    w = np.exp(le - logsumexp(le))
    mean = w @ T
    observed = X[y == 1].sum(axis=0)
    return observed @ beta - logsumexp(le), observed - mean, -((T - mean).T * w) @ (T - mean)


@pytest.mark.parametrize("spread", [30.0, 0.9 * RATIO_MAX_SPREAD, 1.5 * RATIO_MAX_SPREAD])
@pytest.mark.parametrize("k", [2, 5, 9])
def test_both_recursions_equal_enumeration(spread, k):
    rng = np.random.default_rng(int(spread) + k)
    n = 14
    X = rng.normal(size=(n, 2))
    X[:, 0] = np.linspace(-0.5, 0.5, n)[rng.permutation(n)]  # x0 * spread spans `spread`
    y = np.zeros(n)
    y[rng.choice(n, k, replace=False)] = 1.0
    beta = np.array([spread, 0.3])
    eta = X @ beta
    assert (eta.max() - eta.min() > RATIO_MAX_SPREAD) == (spread > RATIO_MAX_SPREAD)
    ll, grad, hess = enumerate_group(beta, X, y)
    ev = clogit_evaluate(beta, X, y, np.array([0, n]), 2)
    scale = max(1.0, abs(ll))
    assert ev.loglik == pytest.approx(ll, rel=1e-12, abs=1e-12 * scale)
    np.testing.assert_allclose(ev.gradient, grad, rtol=1e-9, atol=1e-9 * np.abs(grad).max())
    np.testing.assert_allclose(ev.hessian, hess, rtol=1e-8, atol=1e-10 * np.abs(hess).max())
