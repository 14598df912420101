"""Conditional likelihoods of fixed-effects logit and Poisson (``clogit``, ``xtpoisson, fe``).

Conditioning on the sufficient statistic of each group's intercept removes it from the
likelihood. Rows are sorted by group; group ``g`` is ``rows starts[g]:starts[g + 1]``.

Logit. Given ``k`` events among the ``n`` rows of a group, the conditional probability of the
observed events is ``exp(sum_{y=1} eta) / e_k(exp(eta))`` with ``e_k`` the elementary symmetric
polynomial of degree ``k``: a sum over all ``C(n, k)`` subsets, computed by the subset-sum
recursion ``B(j, m) = B(j-1, m) + w_j B(j-1, m-1)`` (Gail, Lubin and Rubinstein 1981) in
``O(n k)``. We run it on scaled values (ratios of neighbouring cells, see
:mod:`mixedglm.engines.clogit_kernels`; in log space for groups whose linear predictors span
hundreds of log units) and carry, per cell, the mean and covariance of the
sufficient statistic ``T = sum_{i in S} x_i`` under the subset distribution ``P(S) ~ prod w_i``:
the cell is a two-component mixture (row ``j`` in or out of ``S``) with weights ``a`` and
``b = 1 - a``, so its mean and covariance are convex combinations plus ``a b d d'``. Nothing
overflows and nothing cancels, for any group size. The score is ``sum_{y=1} x - E[T]`` and the
information is ``Cov[T]``, both exact. With ``k > n / 2`` the events and non-events swap roles
(``y -> 1 - y``, ``eta -> -eta``), so the recursion runs to ``min(k, n - k)``; ``k = 1`` is a
softmax.

Poisson. Given the group total ``Y``, the counts are multinomial with probabilities
``softmax(eta)``; the log-likelihood keeps Stata's constants,
``lnGamma(Y + 1) - sum lnGamma(y + 1) + sum y (eta - log sum exp(eta))``.

The numba kernels run over chunks of groups of about equal cost in parallel; the
``*_reference`` functions are short NumPy versions of the same algorithms, used by the tests.
"""

from __future__ import annotations

import itertools
import math

import numba
import numpy as np
from numba import prange
from scipy.special import gammaln, logsumexp

from mixedglm.engines.clogit_kernels import (
    clogit_parallel,
    clogit_serial,
    count_events,
    eta_rows,
    pack_outer_acc,
)
from mixedglm.engines.parallel import cost_chunks, use_threads
from mixedglm.optim.newton import Evaluation

__all__ = [
    "clogit_evaluate",
    "clogit_evaluate_reference",
    "cpoisson_evaluate",
    "cpoisson_evaluate_reference",
]


# ---------------------------------------------------------------------------------------------
# Argument handling shared by the fast and the reference versions


def _check_arrays(
    beta: np.ndarray, X: np.ndarray, y: np.ndarray, starts: np.ndarray, order: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coerce to the dtypes the kernels are compiled for and check the shapes."""
    beta = np.ascontiguousarray(beta, dtype=np.float64).reshape(-1)
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64).reshape(-1)
    starts = np.ascontiguousarray(starts, dtype=np.int64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[1] != beta.shape[0]:
        raise ValueError(f"shapes do not match: X {X.shape}, y {y.shape}, beta {beta.shape}")
    if starts.size < 1 or starts[0] != 0 or starts[-1] != y.shape[0]:
        raise ValueError("starts must run from 0 to the number of rows")
    if np.any(np.diff(starts) < 0):
        raise ValueError("starts must be non-decreasing")
    if order not in (0, 1, 2):
        raise ValueError(f"order must be 0, 1 or 2, not {order!r}")
    return beta, X, y, starts


def _check_offset(offset: np.ndarray | None, n: int) -> np.ndarray:
    """The offset as a float64 vector; an empty one stands for none (one compiled kernel)."""
    if offset is None:
        return np.zeros(0)
    offset = np.ascontiguousarray(offset, dtype=np.float64).reshape(-1)
    if offset.shape[0] != n:
        raise ValueError(f"offset has {offset.shape[0]} rows, X has {n}")
    return offset


def _linear_predictor(beta: np.ndarray, X: np.ndarray, offset: np.ndarray | None) -> np.ndarray:
    eta = X @ beta if X.shape[1] else np.zeros(X.shape[0])
    return eta + _check_offset(offset, X.shape[0]) if offset is not None else eta


def _unpack(ll: float, grad: np.ndarray, packed: np.ndarray, p: int, order: int) -> Evaluation:
    """Evaluation from summed chunk results; ``packed`` is the upper triangle, row-major."""
    if order == 0:
        return Evaluation(float(ll))
    if order == 1:
        return Evaluation(float(ll), grad)
    hess = np.zeros((p, p))
    iu = np.triu_indices(p)
    hess[iu] = packed
    hess = hess + np.triu(hess, 1).T
    return Evaluation(float(ll), grad, hess)


def clogit_evaluate(
    beta: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    starts: np.ndarray,
    order: int = 2,
    offset: np.ndarray | None = None,
) -> Evaluation:
    """Conditional (fixed-effects) logit log-likelihood, score and Hessian at ``beta``.

    Parameters
    ----------
    beta : (p,) coefficients.
    X : (N, p) covariates, rows sorted by group.
    y : (N,) outcome coded 0/1; as in Stata's ``clogit``, any non-zero value is an event.
    starts : (G + 1,) int64, first row of each group and N at the end.
    order : 0 for the log-likelihood only, 1 adds the gradient, 2 the Hessian.
    offset : (N,) optional term added to the linear predictor with coefficient 1.

    Returns
    -------
    Evaluation
        ``loglik`` is the conditional log-likelihood (Stata's ``clogit`` / ``xtlogit, fe``
        value); groups with all or no events contribute 0. ``hessian`` is minus the
        conditional covariance of the sufficient statistic, computed exactly.
    """
    beta, X, y, starts = _check_arrays(beta, X, y, starts, order)
    offset = _check_offset(offset, y.shape[0])
    k = count_events(y, starts)
    n = np.diff(starts)
    cost = n * np.maximum(1, np.minimum(k, n - k)).astype(np.float64)
    if use_threads(cost):
        with numba.parallel_chunksize(1):
            ll, grad, packed = clogit_parallel(
                X, y, beta, offset, starts, k, cost_chunks(cost), order
            )
    else:
        ll, grad, packed = clogit_serial(X, y, beta, offset, starts, k, order)
    return _unpack(ll, grad, packed, X.shape[1], order)


# ---------------------------------------------------------------------------------------------
# Conditional logit: NumPy reference


def clogit_evaluate_reference(
    beta: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    starts: np.ndarray,
    order: int = 2,
    offset: np.ndarray | None = None,
) -> Evaluation:
    """The same as :func:`clogit_evaluate`, vectorised over ``m`` in NumPy (slow, for tests)."""
    beta, X, y, starts = _check_arrays(beta, X, y, starts, order)
    eta = _linear_predictor(beta, X, offset)
    p = X.shape[1]
    ll, grad, hess = 0.0, np.zeros(p), np.zeros((p, p))
    for lo, hi in itertools.pairwise(starts):
        n = hi - lo
        d = y[lo:hi] != 0.0
        k = int(d.sum())
        if k == 0 or k == n:
            continue
        s = -1.0 if 2 * k > n else 1.0
        if s < 0:
            d, k = ~d, n - k
        e = s * eta[lo:hi]
        x = X[lo:hi] - X[lo:hi].mean(axis=0)
        logb = np.full(k + 1, -np.inf)
        logb[0] = 0.0
        mean = np.zeros((k + 1, p))
        cov = np.zeros((k + 1, p, p))
        for t in range(n):
            m = min(t + 1, k)  # cells 1..m change
            la, lb = logb[1 : m + 1], e[t] + logb[:m]
            # a = B(t, m) / B(t+1, m), b = 1 - a, each computed without cancellation
            r = np.exp(-np.abs(la - lb))
            big, small = 1.0 / (1.0 + r), r / (1.0 + r)
            a, b = np.where(la >= lb, big, small), np.where(la >= lb, small, big)
            new = np.maximum(la, lb) + np.log1p(r)
            with_t = mean[:m] + x[t]
            dm = with_t - mean[1 : m + 1]
            cov[1 : m + 1] = (
                a[:, None, None] * cov[1 : m + 1]
                + b[:, None, None] * cov[:m]
                + (a * b)[:, None, None] * dm[:, :, None] * dm[:, None, :]
            )
            mean[1 : m + 1] = a[:, None] * mean[1 : m + 1] + b[:, None] * with_t
            logb[1 : m + 1] = new
        ll += e[d].sum() - logb[k]
        grad += s * (x[d].sum(axis=0) - mean[k])
        hess -= cov[k]
    return Evaluation(ll, grad if order >= 1 else None, hess if order == 2 else None)


# ---------------------------------------------------------------------------------------------
# Conditional Poisson


@numba.njit(cache=True)
def _cpoisson_chunk(X, y, beta, offset, starts, g0, g1, order, grad, hess):
    """Groups ``g0:g1``: add score and packed Hessian into ``grad``, ``hess``; return loglik."""
    p = X.shape[1]
    n_max = 1
    for g in range(g0, g1):
        n_max = max(n_max, starts[g + 1] - starts[g])
    e = np.empty(n_max)
    xbar = np.empty(p)
    diff = np.empty(p)
    ll = 0.0
    for g in range(g0, g1):
        lo = starts[g]
        hi = starts[g + 1]
        total = 0.0
        for i in range(lo, hi):
            total += y[i]
        if total == 0.0:
            continue  # all zeros: probability 1 whatever beta
        eta_rows(X, beta, offset, lo, hi, 1.0, e)
        mx = -np.inf
        for t in range(hi - lo):
            mx = max(mx, e[t])
        tot = 0.0
        for t in range(hi - lo):
            tot += math.exp(e[t] - mx)
        lse = mx + math.log(tot)
        llg = math.lgamma(total + 1.0)
        for t in range(hi - lo):
            if y[lo + t] != 0.0:
                llg += y[lo + t] * (e[t] - lse) - math.lgamma(y[lo + t] + 1.0)
        ll += llg
        if order == 0:
            continue
        for u in range(p):
            xbar[u] = 0.0
        for t in range(hi - lo):
            e[t] = math.exp(e[t] - lse)  # now the multinomial probabilities
            for u in range(p):
                xbar[u] += e[t] * X[lo + t, u]
        for t in range(hi - lo):
            for u in range(p):
                diff[u] = X[lo + t, u] - xbar[u]
            if y[lo + t] != 0.0:
                for u in range(p):
                    grad[u] += y[lo + t] * diff[u]
            if order == 2:
                pack_outer_acc(hess, -total * e[t], diff, p)
    return ll


@numba.njit(cache=True, parallel=True)
def _cpoisson_parallel(X, y, beta, offset, starts, chunks, order):
    p = X.shape[1]
    n_chunks = chunks.shape[0] - 1
    ll = np.zeros(n_chunks)
    grad = np.zeros((n_chunks, p))
    hess = np.zeros((n_chunks, p * (p + 1) // 2))
    for c in prange(n_chunks):
        ll[c] = _cpoisson_chunk(
            X, y, beta, offset, starts, chunks[c], chunks[c + 1], order, grad[c], hess[c]
        )
    return ll.sum(), grad.sum(axis=0), hess.sum(axis=0)


@numba.njit(cache=True)
def _cpoisson_serial(X, y, beta, offset, starts, order):
    p = X.shape[1]
    grad = np.zeros(p)
    hess = np.zeros(p * (p + 1) // 2)
    ll = _cpoisson_chunk(X, y, beta, offset, starts, 0, starts.shape[0] - 1, order, grad, hess)
    return ll, grad, hess


def cpoisson_evaluate(
    beta: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    offset: np.ndarray | None,
    starts: np.ndarray,
    order: int = 2,
) -> Evaluation:
    """Conditional (fixed-effects) Poisson log-likelihood, score and Hessian at ``beta``.

    Parameters
    ----------
    beta : (p,) coefficients.
    X : (N, p) covariates, rows sorted by group.
    y : (N,) non-negative counts.
    offset : (N,) or None, added to the linear predictor (log exposure for ``exposure()``).
    starts : (G + 1,) int64, first row of each group and N at the end.
    order : 0 for the log-likelihood only, 1 adds the gradient, 2 the Hessian.

    Returns
    -------
    Evaluation
        ``loglik`` is Stata's ``xtpoisson, fe`` log-likelihood, constants included:
        ``sum_g [lnGamma(Y_g + 1) - sum_t lnGamma(y_t + 1) + sum_t y_t (eta_t - log sum_s
        exp(eta_s))]``. Groups whose counts are all zero contribute 0.
    """
    beta, X, y, starts = _check_arrays(beta, X, y, starts, order)
    offset = _check_offset(offset, y.shape[0])
    cost = np.diff(starts).astype(np.float64) + 1.0
    if use_threads(cost):
        with numba.parallel_chunksize(1):
            ll, grad, packed = _cpoisson_parallel(
                X, y, beta, offset, starts, cost_chunks(cost), order
            )
    else:
        ll, grad, packed = _cpoisson_serial(X, y, beta, offset, starts, order)
    return _unpack(ll, grad, packed, X.shape[1], order)


def cpoisson_evaluate_reference(
    beta: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    offset: np.ndarray | None,
    starts: np.ndarray,
    order: int = 2,
) -> Evaluation:
    """The same as :func:`cpoisson_evaluate` in plain NumPy (for tests)."""
    beta, X, y, starts = _check_arrays(beta, X, y, starts, order)
    eta = _linear_predictor(beta, X, offset)
    p = X.shape[1]
    ll, grad, hess = 0.0, np.zeros(p), np.zeros((p, p))
    for lo, hi in itertools.pairwise(starts):
        yg, eg, xg = y[lo:hi], eta[lo:hi], X[lo:hi]
        total = yg.sum()
        if total == 0:
            continue
        prob = np.exp(eg - logsumexp(eg))
        ll += gammaln(total + 1) - gammaln(yg + 1).sum() + yg @ (eg - logsumexp(eg))
        dx = xg - prob @ xg
        grad += yg @ dx
        hess -= total * (dx.T * prob) @ dx
    return Evaluation(ll, grad if order >= 1 else None, hess if order == 2 else None)
