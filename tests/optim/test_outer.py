"""Newton steps on the clusters' score outer products (BHHH): orders 0 and 1 pass through,
order 2 carries minus the sum of the outer products, Newton reaches the same maximiser as
with the exact Hessian, and the rule for when there are enough clusters."""

from __future__ import annotations

import numpy as np

from mixedglm.engines.base import Contributions
from mixedglm.optim import Evaluation, newton_maximize
from mixedglm.optim.outer import MIN_CLUSTERS, OuterProductSteps, enough_clusters


class ClusteredLogit:
    """A logistic regression whose rows fall into clusters, with exact derivatives and
    per-cluster terms (as an engine gives them)."""

    def __init__(self, n_clusters: int = 200, per: int = 5, seed: int = 3) -> None:
        rng = np.random.default_rng(seed)
        n = n_clusters * per
        self.X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
        self.y = rng.binomial(1, 1 / (1 + np.exp(-(self.X @ [0.2, 0.7, -0.4])))).astype(float)
        self.cluster = np.repeat(np.arange(n_clusters), per)
        self.n_clusters = n_clusters
        self.orders: list[int] = []

    def _rows(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        eta = self.X @ b
        mu = 1 / (1 + np.exp(-eta))
        ll = self.y * eta - np.logaddexp(0.0, eta)
        return ll, (self.y - mu)[:, None] * self.X, mu * (1 - mu)

    def __call__(self, b: np.ndarray, order: int) -> Evaluation:
        self.orders.append(order)
        ll, scores, w = self._rows(b)
        if order == 0:
            return Evaluation(float(ll.sum()))
        hess = -(self.X * w[:, None]).T @ self.X if order == 2 else None
        return Evaluation(float(ll.sum()), scores.sum(axis=0), hess)

    def contributions(self, b: np.ndarray) -> Contributions:
        ll, scores, _ = self._rows(b)
        g = self.n_clusters
        summed = np.stack([np.bincount(self.cluster, s, g) for s in scores.T], axis=1)
        return Contributions(np.bincount(self.cluster, ll, g), summed)


def test_orders_below_two_pass_through_and_order_two_is_minus_the_outer_product():
    model = ClusteredLogit()
    steps = OuterProductSteps(model)
    b = np.array([0.1, 0.5, -0.2])
    assert steps(b, 0).loglik == model(b, 0).loglik
    np.testing.assert_array_equal(steps(b, 1).gradient, model(b, 1).gradient)
    ev = steps(b, 2)
    terms = model.contributions(b)
    np.testing.assert_allclose(ev.hessian, -terms.score.T @ terms.score, rtol=1e-12)
    np.testing.assert_allclose(ev.gradient, model(b, 1).gradient, rtol=1e-10, atol=1e-12)
    assert abs(ev.loglik - model(b, 0).loglik) < 1e-9


def test_newton_on_outer_products_reaches_the_maximiser():
    model = ClusteredLogit()
    exact, _, _ = newton_maximize(model, np.zeros(3))
    model.orders.clear()
    bhhh, _, summary = newton_maximize(OuterProductSteps(model), np.zeros(3), gtol=1e-12)
    assert summary.converged
    np.testing.assert_allclose(bhhh, exact, rtol=1e-6)
    assert 2 not in model.orders  # the objective's own Hessian was never asked for


def test_enough_clusters():
    assert not enough_clusters(MIN_CLUSTERS - 1, 2)
    assert enough_clusters(MIN_CLUSTERS, 2)
    assert not enough_clusters(161, 18)  # guImmun: 161 communities, 18 parameters
    assert enough_clusters(1000, 5)
