"""Per-group log-likelihoods and scores of the conditional models (``clogit``,
``xtpoisson, fe``): the :meth:`~mixedglm.engines.base.Engine.contributions` of the engine
interface, for sandwich standard errors and group weights.

The logit evaluates the exact conditional likelihood one group at a time with the engine's
own kernel (each group's terms are independent of the others); the Poisson model's score is
closed-form (multinomial given the group total), so it is vectorised over all groups.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from mixedglm.engines.base import Contributions
from mixedglm.engines.conditional import clogit_evaluate, cpoisson_evaluate
from mixedglm.optim import Evaluation

__all__ = ["conditional_contributions", "weighted_conditional_objective"]


def _clogit(beta, X, y, starts, offset) -> Contributions:
    g = starts.shape[0] - 1
    ll = np.empty(g)
    score = np.empty((g, X.shape[1]))
    for j in range(g):
        lo, hi = int(starts[j]), int(starts[j + 1])
        ev = clogit_evaluate(
            beta,
            X[lo:hi],
            y[lo:hi],
            np.array([0, hi - lo], dtype=np.int64),
            1,
            offset=None if offset is None else offset[lo:hi],
        )
        ll[j] = ev.loglik
        score[j] = ev.gradient
    return Contributions(ll, score)


def _cpoisson(beta, X, y, starts, offset) -> Contributions:
    eta = X @ beta + (0.0 if offset is None else offset)
    sizes = np.diff(starts)
    codes = np.repeat(np.arange(sizes.shape[0]), sizes)
    top = np.maximum.reduceat(eta, starts[:-1])
    e = np.exp(eta - top[codes])
    denom = np.add.reduceat(e, starts[:-1])
    prob = e / denom[codes]
    total = np.add.reduceat(y, starts[:-1])
    resid = y - total[codes] * prob
    score = np.add.reduceat(X * resid[:, None], starts[:-1], axis=0)
    log_prob = eta - top[codes] - np.log(denom)[codes]
    ll = (
        gammaln(total + 1.0)
        - np.add.reduceat(gammaln(y + 1.0), starts[:-1])
        + np.add.reduceat(y * log_prob, starts[:-1])
    )
    return Contributions(ll, score)


def conditional_contributions(
    kind: str,
    beta: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    starts: np.ndarray,
    offset: np.ndarray | None = None,
) -> Contributions:
    """Per-group log-likelihoods ``(G,)`` and scores ``(G, p)`` at ``beta``; ``kind`` is
    ``logit`` or ``poisson``; rows sorted by group, ``starts`` ``(G + 1,)``."""
    beta = np.asarray(beta, dtype=float)
    X = np.ascontiguousarray(X, dtype=float)
    y = np.ascontiguousarray(y, dtype=float)
    if kind == "logit":
        return _clogit(beta, X, y, starts, offset)
    return _cpoisson(beta, X, y, starts, offset)


def weighted_conditional_objective(
    kind: str,
    X: np.ndarray,
    y: np.ndarray,
    starts: np.ndarray,
    offset: np.ndarray | None,
    weights: np.ndarray,
):
    """The conditional log-likelihood with group ``weights`` ``(G,)`` multiplying each
    group's log-likelihood, score and Hessian: ``objective(beta, order)`` for the Newton
    optimiser. Groups are evaluated one at a time with the engine's kernels."""
    X = np.ascontiguousarray(X, dtype=float)
    y = np.ascontiguousarray(y, dtype=float)
    pieces = []
    for j in range(starts.shape[0] - 1):
        lo, hi = int(starts[j]), int(starts[j + 1])
        off = None if offset is None else np.ascontiguousarray(offset[lo:hi])
        pieces.append((X[lo:hi], y[lo:hi], np.array([0, hi - lo], dtype=np.int64), off))

    def objective(beta: np.ndarray, order: int) -> Evaluation:
        p = X.shape[1]
        ll, grad, hess = 0.0, np.zeros(p), np.zeros((p, p))
        for w, (Xj, yj, sj, oj) in zip(weights, pieces, strict=True):
            if kind == "logit":
                ev = clogit_evaluate(beta, Xj, yj, sj, order, offset=oj)
            else:
                ev = cpoisson_evaluate(beta, Xj, yj, oj, sj, order)
            ll += w * ev.loglik
            if order >= 1:
                grad += w * ev.gradient
            if order >= 2:
                hess += w * ev.hessian
        return Evaluation(ll, grad if order >= 1 else None, hess if order >= 2 else None)

    return objective
