"""A weighted GLMM fit's last steps: the weighted model without random effects (the LR
test's reference) and the weight description on the result. The weights themselves are
checked and turned into arrays in :mod:`mixedglm.design.weights`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mixedglm.design.weights import WeightInfo
from mixedglm.optim import Evaluation, newton_maximize

__all__ = ["attach", "weighted_pooled_loglik"]


def weighted_pooled_loglik(engine, params: np.ndarray, n_beta: int, n_theta: int) -> float:
    """The weighted model without random effects (``theta = 0``), maximised in
    ``[beta, aux]``: the LR test's reference."""
    keep = np.r_[np.arange(n_beta), np.arange(n_beta + n_theta, params.size)]

    def restricted(x: np.ndarray, order: int) -> Evaluation:
        full = np.zeros(params.size)
        full[keep] = x
        ev = engine(full, order)
        grad = ev.gradient[keep] if ev.gradient is not None else None
        hess = ev.hessian[np.ix_(keep, keep)] if ev.hessian is not None else None
        return Evaluation(ev.loglik, grad, hess)

    _, ev, _ = newton_maximize(restricted, params[keep].copy(), maxiter=100)
    return float(ev.loglik)


def attach(res, info: WeightInfo, engine=None):
    """The result with its weight description (and the weighted pooled log-likelihood)."""
    out = replace(res, weights=info)
    if engine is not None:
        pooled = weighted_pooled_loglik(engine, res.params_all, res.n_beta, res.n_theta)
        out = replace(out, loglik_pooled=pooled)
    return out
