"""Newton steps on the outer product of the clusters' scores (BHHH).

The joint Laplace engine differentiates its exact gradient numerically for its Hessian: one
more gradient per parameter at every Newton step. Where the Laplace fit only provides start
values for adaptive quadrature and the top level has many independent clusters, the sum of
the clusters' score outer products (the Berndt-Hall-Hall-Hausman estimate of the
information) steers Newton's steps as well, at the cost of one gradient. The covariance of
the estimates never comes from it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mixedglm.engines.base import Contributions
from mixedglm.optim.newton import Evaluation

MIN_CLUSTERS = 50  # and ten per parameter: the outer product needs many clusters


class ClusteredObjective(Protocol):
    """An objective that also gives its per-top-level-cluster terms."""

    def __call__(self, params: np.ndarray, order: int) -> Evaluation: ...

    def contributions(self, params: np.ndarray) -> Contributions: ...


def enough_clusters(n_clusters: int, n_params: int) -> bool:
    """Whether the outer product of ``n_clusters`` scores can stand in for the Hessian."""
    return n_clusters >= max(MIN_CLUSTERS, 10 * n_params)


class OuterProductSteps:
    """``objective`` whose order-2 evaluations carry minus the sum of the clusters' score
    outer products as the Hessian; orders 0 and 1 pass through."""

    def __init__(self, objective: ClusteredObjective) -> None:
        self.objective = objective

    def __call__(self, params: np.ndarray, order: int) -> Evaluation:
        if order < 2:
            return self.objective(params, order)
        terms = self.objective.contributions(params)
        score = np.asarray(terms.score, dtype=float)
        loglik = float(np.sum(terms.loglik))
        return Evaluation(loglik, score.sum(axis=0), -(score.T @ score))
