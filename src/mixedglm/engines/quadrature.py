"""Gauss-Hermite rules for integrals against standard normal densities.

``integral f(t) phi_q(t) dt ~= sum_k w_k f(t_k)`` with the product rule of ``n`` points
per dimension (``n**q`` nodes). One point is the Laplace approximation's rule (t = 0,
w = 1). The rule with ``n`` points integrates polynomials of degree ``2n - 1`` in each
coordinate exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class ProductRule:
    """Nodes ``(K, q)`` and log-weights ``(K,)`` of a product Gauss-Hermite rule for N(0, I_q)."""

    nodes: np.ndarray
    log_weights: np.ndarray

    @property
    def size(self) -> int:
        return self.nodes.shape[0]


@lru_cache(maxsize=64)
def _hermite_normal(n: int) -> tuple[np.ndarray, np.ndarray]:
    """1-D rule for the standard normal density (probabilists' Hermite polynomials)."""
    if n == 1:
        return np.zeros(1), np.ones(1)
    nodes, weights = np.polynomial.hermite_e.hermegauss(n)
    weights = weights / np.sqrt(2.0 * np.pi)
    return nodes, weights


def gauss_hermite_rule(n_points: int, dim: int) -> ProductRule:
    """The product rule with ``n_points`` per dimension in ``dim`` dimensions."""
    if n_points < 1:
        raise ValueError(f"the number of quadrature points must be at least 1, not {n_points}")
    nodes_1d, weights_1d = _hermite_normal(n_points)
    if dim == 0:
        return ProductRule(np.zeros((1, 0)), np.zeros(1))
    grids = np.meshgrid(*([nodes_1d] * dim), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1)
    wgrids = np.meshgrid(*([np.log(weights_1d)] * dim), indexing="ij")
    log_weights = np.sum(np.stack([g.ravel() for g in wgrids], axis=1), axis=1)
    return ProductRule(np.ascontiguousarray(nodes), np.ascontiguousarray(log_weights))
