"""Conditional likelihoods of fixed-effects logit and Poisson (``clogit``, ``xtpoisson, fe``).

Conditioning on the sufficient statistic of each group's intercept removes it from the
likelihood. Rows are sorted by group; group ``g`` is ``rows starts[g]:starts[g + 1]``.

Logit. Given ``k`` events among the ``n`` rows of a group, the conditional probability of the
observed events is ``exp(sum_{y=1} eta) / e_k(exp(eta))`` with ``e_k`` the elementary symmetric
polynomial of degree ``k``: a sum over all ``C(n, k)`` subsets, computed by the subset-sum
recursion ``B(j, m) = B(j-1, m) + w_j B(j-1, m-1)`` (Gail, Lubin and Rubinstein 1981) in
``O(n k)``. We run it in log space and carry, per cell, the mean and covariance of the
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


# ---------------------------------------------------------------------------------------------
# Conditional logit: numba kernels


@numba.njit(cache=True)
def _eta_rows(X, beta, offset, lo, hi, sign, out):
    """``out[t] = sign * (x_{lo+t} beta + offset_{lo+t})``: the linear predictor is formed
    group by group inside the kernels, where the rows are in cache anyway."""
    p = X.shape[1]
    use_offset = offset.shape[0] > 0
    for t in range(hi - lo):
        acc = offset[lo + t] if use_offset else 0.0
        for u in range(p):
            acc += X[lo + t, u] * beta[u]
        out[t] = sign * acc


@numba.njit(cache=True)
def _pack_outer_acc(out, scale, d, p):
    """``out += scale * d d'`` on the packed upper triangle."""
    idx = 0
    for u in range(p):
        su = scale * d[u]
        for v in range(u, p):
            out[idx] += su * d[v]
            idx += 1


@numba.njit(cache=True)
def _softmax_group(X, y, lo, hi, flip, s, order, e, w, xbar, diff, grad, hess):
    """One event among ``n`` rows (after the flip): ``eta_event - logsumexp(eta)``."""
    n = hi - lo
    p = X.shape[1]
    mx = -np.inf
    for t in range(n):
        mx = max(mx, e[t])
    tot = 0.0
    for t in range(n):
        w[t] = math.exp(e[t] - mx)
        tot += w[t]
    lse = mx + math.log(tot)
    t_event = 0
    for t in range(n):
        if (y[lo + t] != 0.0) != flip:  # an event (after the flip)
            t_event = t
    if order == 0:
        return e[t_event] - lse
    for u in range(p):
        xbar[u] = 0.0
    for t in range(n):
        w[t] /= tot
        for u in range(p):
            xbar[u] += w[t] * X[lo + t, u]
    for u in range(p):
        grad[u] += s * (X[lo + t_event, u] - xbar[u])
    if order == 2:
        for t in range(n):
            for u in range(p):
                diff[u] = X[lo + t, u] - xbar[u]
            _pack_outer_acc(hess, -w[t], diff, p)
    return e[t_event] - lse


@numba.njit(cache=True)
def _recursion_group(X, y, lo, hi, kk, flip, s, order, e, xc, logb, mean, cov, diff, grad, hess):
    """``kk >= 2`` events among ``n`` rows: the log-space subset-sum recursion carrying the
    mean and covariance of the sufficient statistic."""
    n = hi - lo
    p = X.shape[1]
    P = cov.shape[1]
    # The likelihood is invariant to shifting x within the group: centring keeps the sums
    # in T small and the differences in the covariance update free of cancellation.
    if order >= 1:
        for u in range(p):
            diff[u] = 0.0
        for t in range(n):
            for u in range(p):
                diff[u] += X[lo + t, u]
        for t in range(n):
            for u in range(p):
                xc[t, u] = X[lo + t, u] - diff[u] / n
        for m in range(kk + 1):
            for u in range(p):
                mean[m, u] = 0.0
    if order == 2:
        for m in range(kk + 1):
            for u in range(P):
                cov[m, u] = 0.0
    logb[0] = 0.0
    for m in range(1, kk + 1):
        logb[m] = -np.inf
    ll_num = 0.0
    for t in range(n):
        e_t = e[t]
        if (y[lo + t] != 0.0) != flip:  # an event (after the flip)
            ll_num += e_t
            if order >= 1:
                for u in range(p):
                    grad[u] += s * xc[t, u]
        m_hi = min(t + 1, kk)
        m_lo = max(1, kk - (n - 1 - t))  # only cells that can still reach (n, kk)
        for m in range(m_hi, m_lo - 1, -1):
            # B(t+1, m) = B(t, m) + w_t B(t, m-1) = a-part + b-part, a + b = 1
            la = logb[m]
            lb = e_t + logb[m - 1]
            if la == -np.inf:
                a = 0.0
                b = 1.0
                new = lb
            elif la >= lb:
                r = math.exp(lb - la)
                new = la + math.log1p(r)
                a = 1.0 / (1.0 + r)
                b = r * a
            else:
                r = math.exp(la - lb)
                new = lb + math.log1p(r)
                b = 1.0 / (1.0 + r)
                a = r * b
            logb[m] = new
            if order == 0:
                continue
            if order == 2:
                for u in range(p):
                    diff[u] = mean[m - 1, u] + xc[t, u] - mean[m, u]
                ab = a * b
                idx = 0
                for u in range(p):
                    du = ab * diff[u]
                    for v in range(u, p):
                        cov[m, idx] = a * cov[m, idx] + b * cov[m - 1, idx] + du * diff[v]
                        idx += 1
            for u in range(p):
                mean[m, u] = a * mean[m, u] + b * (mean[m - 1, u] + xc[t, u])
    if order >= 1:
        for u in range(p):
            grad[u] -= s * mean[kk, u]
    if order == 2:
        for u in range(P):
            hess[u] -= cov[kk, u]
    return ll_num - logb[kk]


# The scaled recursion below is used when the linear predictors of a group span less than
# this minus the log of its size: its ratios, and the shares a, b >= exp(-spread) / n, then
# stay inside the range of normal doubles (exp(-708)). Wider groups take the log-space one.
RATIO_MAX_SPREAD = 600.0


@numba.njit(cache=True, fastmath={"nsz", "arcp", "contract"})
def _ratio_group(X, y, lo, hi, kk, flip, s, order, e, xc, work, d, mean, cov, grad, hess):
    """``kk >= 2`` events among ``n`` rows: the subset-sum recursion on ratios, no logs.

    With ``w_t = exp(e_t - c)`` and ``B(t, m) = e_m(w_0..w_t)``, the kernel carries
    ``R(t, m) = B(t, m) / B(t, m - 1)``, which stays within ``[min w / n, n max w]``: row
    ``t`` gives ``a(m) = R(t-1, m) / (R(t-1, m) + w_t)`` (the share of ``B(t, m)`` without
    row ``t``), ``b(m) = 1 - a(m)`` and ``R(t, m) = (R(t-1, m) + w_t) a(m - 1)``; one
    logarithm per row follows ``log B`` of the lowest cell still needed. Mean and
    covariance of ``T`` are carried as in :func:`_recursion_group`, stored cell-last in two
    buffers that swap at every row, so the loops over cells vectorise.
    """
    n = hi - lo
    p = X.shape[1]
    P = p * (p + 1) // 2
    K = kk + 1
    # workspace rows: R, a, b, ab, s; mean and cov: two buffers each
    R = work[0]
    a = work[1]
    b = work[2]
    ab = work[3]
    sm = work[4]
    e_lo = np.inf
    e_hi = -np.inf
    for t in range(n):
        e_lo = min(e_lo, e[t])
        e_hi = max(e_hi, e[t])
    c = 0.5 * (e_lo + e_hi)
    if order >= 1:
        for u in range(p):
            acc = 0.0
            for t in range(n):
                acc += X[lo + t, u]
            acc /= n
            for t in range(n):
                xc[t, u] = X[lo + t, u] - acc
        for j in range(2):
            for u in range(p):
                for m in range(K):
                    mean[j, u, m] = 0.0
    if order == 2:
        for j in range(2):
            for u in range(P):
                for m in range(K):
                    cov[j, u, m] = 0.0
    for m in range(K):
        R[m] = 0.0
    a[0] = 1.0
    log_low = 0.0  # log B(t, m_lo(t)), the lowest cell still needed
    m_lo_prev = 1
    ll_num = 0.0
    cur = 0
    for t in range(n):
        et = e[t] - c
        wt = math.exp(et)
        if (y[lo + t] != 0.0) != flip:  # an event (after the flip)
            ll_num += et
            if order >= 1:
                for u in range(p):
                    grad[u] += s * xc[t, u]
        m_hi = min(t + 1, kk)
        m_lo = max(1, kk - (n - 1 - t))  # only cells that can still reach (n, kk)
        if m_lo > 1:
            a[m_lo - 1] = R[m_lo - 1] / (R[m_lo - 1] + wt)
        for m in range(m_lo, m_hi + 1):
            sm[m] = R[m] + wt
            inv = 1.0 / sm[m]
            a[m] = R[m] * inv
            b[m] = wt * inv
            ab[m] = a[m] * b[m]
        # log B(t, m_lo(t)) from log B(t-1, .) = log B(t, .) + log a
        if t == 0:
            log_low = et
        elif m_lo == m_lo_prev:
            log_low -= math.log(a[m_lo])
        else:
            log_low += math.log(R[m_lo]) - math.log(a[m_lo])
        m_lo_prev = m_lo
        for m in range(m_lo, m_hi + 1):
            R[m] = sm[m] * a[m - 1]
        if order == 0:
            continue
        new = 1 - cur
        # 0-based views of the cells m_lo..m_hi (``*_dn``: the cells m - 1): loops from 0
        # let the compiler drop the negative-index checks and vectorise
        L = m_hi - m_lo + 1
        av = a[m_lo : m_hi + 1]
        bv = b[m_lo : m_hi + 1]
        abv = ab[m_lo : m_hi + 1]
        if order == 2:
            for u in range(p):
                xu = xc[t, u]
                mo_up = mean[cur, u, m_lo : m_hi + 1]
                mo_dn = mean[cur, u, m_lo - 1 : m_hi]
                du = d[u]
                for i in range(L):
                    du[i] = mo_dn[i] + xu - mo_up[i]
            idx = 0
            for u in range(p):
                du = d[u]
                for v in range(u, p):
                    dv = d[v]
                    co_up = cov[cur, idx, m_lo : m_hi + 1]
                    co_dn = cov[cur, idx, m_lo - 1 : m_hi]
                    cn = cov[new, idx, m_lo : m_hi + 1]
                    for i in range(L):
                        cn[i] = av[i] * co_up[i] + bv[i] * co_dn[i] + abv[i] * du[i] * dv[i]
                    idx += 1
        for u in range(p):
            xu = xc[t, u]
            mo_up = mean[cur, u, m_lo : m_hi + 1]
            mo_dn = mean[cur, u, m_lo - 1 : m_hi]
            mn = mean[new, u, m_lo : m_hi + 1]
            for i in range(L):
                mn[i] = av[i] * mo_up[i] + bv[i] * (mo_dn[i] + xu)
        cur = new
    if order >= 1:
        for u in range(p):
            grad[u] -= s * mean[cur, u, kk]
    if order == 2:
        for u in range(P):
            hess[u] -= cov[cur, u, kk]
    return ll_num - log_low


@numba.njit(cache=True)
def _count_events(y, starts):
    """Number of non-zero ``y`` per group."""
    G = starts.shape[0] - 1
    k = np.zeros(G, dtype=np.int64)
    for g in range(G):
        for i in range(starts[g], starts[g + 1]):
            if y[i] != 0.0:
                k[g] += 1
    return k


@numba.njit(cache=True)
def _clogit_chunk(X, y, beta, offset, starts, k, g0, g1, order, grad, hess):
    """Groups ``g0:g1``: add score and packed Hessian into ``grad``, ``hess``; return loglik."""
    p = X.shape[1]
    P = p * (p + 1) // 2
    # workspace sized for the largest group of the chunk
    n_max = 1
    k_max = 1
    for g in range(g0, g1):
        n = starts[g + 1] - starts[g]
        n_max = max(n_max, n)
        k_max = max(k_max, min(k[g], n - k[g]))
    e = np.empty(n_max)
    w = np.empty(n_max)
    xc = np.empty((n_max if order >= 1 and k_max > 1 else 1, p))
    logb = np.empty(k_max + 1)
    mean = np.empty((k_max + 1, p))
    cov = np.empty((k_max + 1 if order == 2 else 1, P))
    work = np.empty((5, k_max + 1))
    d = np.empty((p, k_max + 1 if order == 2 else 1))
    mean2 = np.empty((2, p, k_max + 1 if order >= 1 else 1))
    cov2 = np.empty((2, P, k_max + 1 if order == 2 else 1))
    diff = np.empty(p)
    xbar = np.empty(p)
    ll = 0.0
    for g in range(g0, g1):
        lo = starts[g]
        hi = starts[g + 1]
        n = hi - lo
        if k[g] == 0 or k[g] == n:
            continue  # no information
        # with more events than non-events, condition on the non-events instead
        flip = 2 * k[g] > n
        s = -1.0 if flip else 1.0
        kk = n - k[g] if flip else k[g]
        _eta_rows(X, beta, offset, lo, hi, s, e)
        if kk == 1:
            ll += _softmax_group(X, y, lo, hi, flip, s, order, e, w, xbar, diff, grad, hess)
            continue
        e_lo = np.inf
        e_hi = -np.inf
        for t in range(n):
            e_lo = min(e_lo, e[t])
            e_hi = max(e_hi, e[t])
        if e_hi - e_lo + math.log(n) <= RATIO_MAX_SPREAD:
            ll += _ratio_group(
                X, y, lo, hi, kk, flip, s, order, e, xc, work, d, mean2, cov2, grad, hess
            )
        else:
            ll += _recursion_group(
                X, y, lo, hi, kk, flip, s, order, e, xc, logb, mean, cov, diff, grad, hess
            )
    return ll


@numba.njit(cache=True, parallel=True)
def _clogit_parallel(X, y, beta, offset, starts, k, chunks, order):
    p = X.shape[1]
    n_chunks = chunks.shape[0] - 1
    ll = np.zeros(n_chunks)
    grad = np.zeros((n_chunks, p))
    hess = np.zeros((n_chunks, p * (p + 1) // 2))
    for c in prange(n_chunks):
        ll[c] = _clogit_chunk(
            X, y, beta, offset, starts, k, chunks[c], chunks[c + 1], order, grad[c], hess[c]
        )
    return ll.sum(), grad.sum(axis=0), hess.sum(axis=0)


@numba.njit(cache=True)
def _clogit_serial(X, y, beta, offset, starts, k, order):
    p = X.shape[1]
    grad = np.zeros(p)
    hess = np.zeros(p * (p + 1) // 2)
    ll = _clogit_chunk(X, y, beta, offset, starts, k, 0, starts.shape[0] - 1, order, grad, hess)
    return ll, grad, hess


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
    k = _count_events(y, starts)
    n = np.diff(starts)
    cost = n * np.maximum(1, np.minimum(k, n - k)).astype(np.float64)
    if use_threads(cost):
        with numba.parallel_chunksize(1):
            ll, grad, packed = _clogit_parallel(
                X, y, beta, offset, starts, k, cost_chunks(cost), order
            )
    else:
        ll, grad, packed = _clogit_serial(X, y, beta, offset, starts, k, order)
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
        _eta_rows(X, beta, offset, lo, hi, 1.0, e)
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
                _pack_outer_acc(hess, -total * e[t], diff, p)
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
