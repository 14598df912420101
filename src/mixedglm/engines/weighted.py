"""Cluster (group) weights for the AGHQ engine: each top-level cluster's log-likelihood,
score and Hessian multiplied by its weight.

A frequency weight ``w_j`` makes cluster ``j`` count as ``w_j`` copies of itself (Stata's
``fweight`` at the cluster level). The weighting happens outside the quadrature kernel: the
kernel integrates each cluster once, and the weights multiply the per-cluster terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixedglm.engines.aghq import AGHQObjective

__all__ = ["GroupWeightedAGHQ"]


@dataclass
class GroupWeightedAGHQ(AGHQObjective):
    """:class:`AGHQObjective` with ``group_weights`` ``(G,)`` on the clusters' terms."""

    group_weights: np.ndarray | None = None

    def cluster_terms(
        self, params: np.ndarray, order: int, exact: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weighted per-cluster log-likelihoods, gradients and fixed-grid Hessians."""
        ll, grad, hess = super().cluster_terms(params, order, exact)
        w = self.group_weights
        if w is None:
            return ll, grad, hess
        if order >= 2:
            hess = hess * w[:, None, None]
        if order >= 1:
            grad = grad * w[:, None]
        return ll * w, grad, hess
