"""Compiled kernels of the conditional logit likelihood (see :mod:`mixedglm.engines.conditional`).

Per group: a softmax for one event; otherwise the subset-sum recursion carrying the mean and
covariance of the sufficient statistic, on ratios (:func:`_ratio_group`, no logarithms and
vectorised over cells) when the group's linear predictors span a safe range, and in log space
(:func:`_recursion_group`) otherwise. :func:`clogit_parallel` spreads chunks of groups over
threads; :func:`clogit_serial` is the one-thread version.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange


@numba.njit(cache=True)
def eta_rows(X, beta, offset, lo, hi, sign, out):
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
def pack_outer_acc(out, scale, d, p):
    """``out += scale * d d'`` on the packed upper triangle."""
    idx = 0
    for u in range(p):
        su = scale * d[u]
        for v in range(u, p):
            out[idx] += su * d[v]
            idx += 1


@numba.njit(cache=True, inline="always")
def _event_row(y, lo, t, flip, s, order, xc, grad):
    """Whether row ``t`` of the group is an event (after the flip); an event adds its
    centred ``s x_t`` to the score."""
    if (y[lo + t] != 0.0) == flip:
        return False
    if order >= 1:
        for u in range(grad.shape[0]):
            grad[u] += s * xc[t, u]
    return True


@numba.njit(cache=True, inline="always")
def _live_cells(t, n, kk):
    """The cells ``m_lo..m_hi`` of the recursion that row ``t`` updates: those that can
    still reach ``(n, kk)``."""
    return max(1, kk - (n - 1 - t)), min(t + 1, kk)


@numba.njit(cache=True)
def chunk_accumulators(chunks, p):
    """Per chunk of groups: the log-likelihood, score and packed Hessian, zeroed."""
    n_chunks = chunks.shape[0] - 1
    return np.zeros(n_chunks), np.zeros((n_chunks, p)), np.zeros((n_chunks, p * (p + 1) // 2))


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
            pack_outer_acc(hess, -w[t], diff, p)
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
        if _event_row(y, lo, t, flip, s, order, xc, grad):
            ll_num += e_t
        m_lo, m_hi = _live_cells(t, n, kk)
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
        if _event_row(y, lo, t, flip, s, order, xc, grad):
            ll_num += et
        m_lo, m_hi = _live_cells(t, n, kk)
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
def count_events(y, starts):
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
        eta_rows(X, beta, offset, lo, hi, s, e)
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
def clogit_parallel(X, y, beta, offset, starts, k, chunks, order):
    ll, grad, hess = chunk_accumulators(chunks, X.shape[1])
    for c in prange(ll.shape[0]):
        ll[c] = _clogit_chunk(
            X, y, beta, offset, starts, k, chunks[c], chunks[c + 1], order, grad[c], hess[c]
        )
    return ll.sum(), grad.sum(axis=0), hess.sum(axis=0)


@numba.njit(cache=True)
def clogit_serial(X, y, beta, offset, starts, k, order):
    p = X.shape[1]
    grad = np.zeros(p)
    hess = np.zeros(p * (p + 1) // 2)
    ll = _clogit_chunk(X, y, beta, offset, starts, k, 0, starts.shape[0] - 1, order, grad, hess)
    return ll, grad, hess
