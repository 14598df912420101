"""Product Gauss-Hermite rules for N(0, I_q)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import factorial2

from mixedglm.engines.quadrature import gauss_hermite_rule


def _normal_moment(k: int) -> float:
    return 0.0 if k % 2 else float(factorial2(k - 1)) if k > 0 else 1.0


@pytest.mark.parametrize(("n", "q"), [(1, 1), (3, 1), (7, 1), (12, 1), (3, 2), (7, 2), (4, 3)])
def test_rule_integrates_polynomials_exactly_up_to_its_degree(n, q):
    rule = gauss_hermite_rule(n, q)
    weights = np.exp(rule.log_weights)
    assert rule.size == n**q
    assert weights.sum() == pytest.approx(1.0, rel=1e-13)
    for powers in itertools.product(range(2 * n), repeat=q):
        exact = np.prod([_normal_moment(k) for k in powers])
        terms = weights * np.prod(rule.nodes ** np.array(powers), axis=1)
        scale = np.sum(np.abs(terms))  # rounding grows with the size of the terms
        assert abs(terms.sum() - exact) <= 1e-12 * max(scale, 1.0), powers


def test_rule_is_not_exact_beyond_its_degree():
    rule = gauss_hermite_rule(3, 1)
    got = np.sum(np.exp(rule.log_weights) * rule.nodes[:, 0] ** 6)
    assert abs(got - 15.0) > 1.0


def test_one_point_is_the_laplace_rule():
    rule = gauss_hermite_rule(1, 2)
    assert rule.nodes.tolist() == [[0.0, 0.0]]
    assert rule.log_weights.tolist() == [0.0]


def test_invalid_number_of_points():
    with pytest.raises(ValueError, match="at least 1"):
        gauss_hermite_rule(0, 1)
