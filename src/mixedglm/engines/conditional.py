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
from collections.abc import Callable
from functools import partial

import numba
import numpy as np
from numba import prange
from scipy.special import gammaln, logsumexp

from mixedglm.engines.clogit_kernels import (
    chunk_accumulators,
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


_Terms = tuple[float, np.ndarray, np.ndarray]


def _reference_sum(
    group_terms: Callable[[np.ndarray, np.ndarray, np.ndarray], _Terms | None],
    beta: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    offset: np.ndarray | None,
    starts: np.ndarray,
    order: int,
) -> Evaluation:
    """A NumPy reference: ``group_terms(X_g, y_g, eta_g)`` (log-likelihood, score and
    Hessian of one group, None for a group without information) summed over the groups."""
    eta = _linear_predictor(beta, X, offset)
    p = X.shape[1]
    ll, grad, hess = 0.0, np.zeros(p), np.zeros((p, p))
    for lo, hi in itertools.pairwise(starts):
        terms = group_terms(X[lo:hi], y[lo:hi], eta[lo:hi])
        if terms is not None:
            ll += terms[0]
            grad += terms[1]
            hess += terms[2]
    return Evaluation(ll, grad if order >= 1 else None, hess if order == 2 else None)


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
    *,
    reference: bool = False,
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
    reference : the NumPy version of the same recursion, vectorised over the cells (slow,
        for tests; also :func:`clogit_evaluate_reference`).

    Returns
    -------
    Evaluation
        ``loglik`` is the conditional log-likelihood (Stata's ``clogit`` / ``xtlogit, fe``
        value); groups with all or no events contribute 0. ``hessian`` is minus the
        conditional covariance of the sufficient statistic, computed exactly.
    """
    beta, X, y, starts = _check_arrays(beta, X, y, starts, order)
    if reference:
        return _reference_sum(_clogit_group_reference, beta, X, y, offset, starts, order)
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


def _clogit_group_reference(X: np.ndarray, y: np.ndarray, eta: np.ndarray) -> _Terms | None:
    """One group's conditional logit terms, the recursion vectorised over the cells
    (see :func:`clogit_evaluate`, ``reference=True``)."""
    n, p = X.shape
    d = y != 0.0
    k = int(d.sum())
    if k == 0 or k == n:
        return None
    s = -1.0 if 2 * k > n else 1.0
    if s < 0:
        d, k = ~d, n - k
    e = s * eta
    x = X - X.mean(axis=0)
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
    return e[d].sum() - logb[k], s * (x[d].sum(axis=0) - mean[k]), -cov[k]


clogit_evaluate_reference = partial(clogit_evaluate, reference=True)
"""The NumPy version of :func:`clogit_evaluate` (slow, for tests)."""


# ---------------------------------------------------------------------------------------------
# Conditional Poisson


@numba.njit(cache=True)
def _cpoisson_group(X, y, beta, offset, lo, hi, order, e, xbar, diff, grad, hess):
    """The group of rows ``lo:hi``: add its score and packed Hessian into ``grad``, ``hess``;
    return its log-likelihood (``e``, ``xbar``, ``diff``: scratch)."""
    p = X.shape[1]
    total = 0.0
    for i in range(lo, hi):
        total += y[i]
    if total == 0.0:
        return 0.0  # all zeros: probability 1 whatever beta
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
    if order == 0:
        return llg
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
    return llg


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
        ll += _cpoisson_group(
            X, y, beta, offset, starts[g], starts[g + 1], order, e, xbar, diff, grad, hess
        )
    return ll


@numba.njit(cache=True, parallel=True)
def _cpoisson_parallel(X, y, beta, offset, starts, chunks, order):
    ll, grad, hess = chunk_accumulators(chunks, X.shape[1])
    for c in prange(ll.shape[0]):
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
    *,
    reference: bool = False,
) -> Evaluation:
    """Conditional (fixed-effects) Poisson log-likelihood, score and Hessian at ``beta``.

    The parameters are those of :func:`clogit_evaluate` (``offset`` before ``starts``),
    except ``y``: (N,) non-negative counts; ``offset`` (N,) or None is the log exposure for
    ``exposure()``; ``reference=True`` computes the same in plain NumPy (slow, for tests;
    also :func:`cpoisson_evaluate_reference`).

    Returns
    -------
    Evaluation
        ``loglik`` is Stata's ``xtpoisson, fe`` log-likelihood, constants included:
        ``sum_g [lnGamma(Y_g + 1) - sum_t lnGamma(y_t + 1) + sum_t y_t (eta_t - log sum_s
        exp(eta_s))]``. Groups whose counts are all zero contribute 0.
    """
    beta, X, y, starts = _check_arrays(beta, X, y, starts, order)
    if reference:
        return _reference_sum(_cpoisson_group_reference, beta, X, y, offset, starts, order)
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


def _cpoisson_group_reference(X: np.ndarray, y: np.ndarray, eta: np.ndarray) -> _Terms | None:
    """One group's conditional Poisson terms in NumPy (see :func:`cpoisson_evaluate`)."""
    total = y.sum()
    if total == 0:
        return None
    prob = np.exp(eta - logsumexp(eta))
    ll = gammaln(total + 1) - gammaln(y + 1).sum() + y @ (eta - logsumexp(eta))
    dx = X - prob @ X
    return ll, y @ dx, -(total * (dx.T * prob) @ dx)


cpoisson_evaluate_reference = partial(cpoisson_evaluate, reference=True)
"""The NumPy version of :func:`cpoisson_evaluate` (slow, for tests)."""
