"""A refined start for the joint Laplace fit of crossed factors: one EM step on the
variance parameters from the best node of the start grid.

At the conditional modes ``u^`` and conditional covariances ``V_j`` (each level's block of
``H^-1``, :meth:`~mixedglm.engines.laplace_joint.JointLaplaceEngine.posterior`) the EM
update of a factor's covariance is ``Sigma = Lambda M Lambda'`` with
``M = mean_j (u^_j u^_j' + V_j)``: ``Lambda M^(1/2)`` (lower triangular) for an unstructured
``Lambda``, ``theta_l sqrt(M_ll)`` for independent effects; other structures keep their
``theta``. The start grid scales all factors' SDs together; where one factor has many
observations per level (the items of the crossed benchmark: 500 each) its modes are
nearly unshrunk and one step puts its SD close to the estimate. On the benchmark the grid's
best node has SDs 1.0 and 1.0 (estimates 0.996 and 0.611); there the Hessian is nearly flat
along the items' SD and Newton's first step went to -5.1 (two halvings, then three Newton
Hessians); from the EM step's 0.965 and 0.605 it converges in 4 iterations instead of 6.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mixedglm.engines.base import Posterior
    from mixedglm.engines.covariance import CovarianceStructure
    from mixedglm.engines.laplace_joint import JointLaplaceEngine


def em_step(engine: JointLaplaceEngine, params: np.ndarray) -> np.ndarray:
    """``params`` with each factor's ``theta`` moved by one EM step (the modes at
    ``params`` are found first, from the engine's current ones)."""
    params = np.asarray(params, dtype=float)
    post = engine.posterior(params)
    beta, theta, aux = engine.split(params)
    parts = []
    for k, f in enumerate(engine.design.factors):
        own = engine.theta_of(theta, k)  # the factor's theta (factors in formula order)
        parts.append(_em_theta(f.structure, own, post[f.name]))
    return np.concatenate([beta, *parts, aux])


def _em_theta(structure: CovarianceStructure, theta: np.ndarray, post: Posterior) -> np.ndarray:
    """One factor's ``theta`` after the EM step (unchanged where it does not apply)."""
    m = (np.einsum("ga,gb->ab", post.mean, post.mean) + post.cov.sum(axis=0)) / post.mean.shape[0]
    if not np.all(np.isfinite(m)):
        return theta
    kind = structure.effective_kind
    if kind == "independent":
        return theta * np.sqrt(np.maximum(np.diag(m), 0.0))
    if kind == "unstructured":
        try:
            root = np.linalg.cholesky(m)
        except np.linalg.LinAlgError:
            return theta
        return np.einsum("lab,ab->l", structure.basis(), structure.lam(theta) @ root)
    return theta
