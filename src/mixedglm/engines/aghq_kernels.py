"""Compiled per-cluster kernels of adaptive Gauss-Hermite quadrature (AGHQ).

Model for cluster i: ``eta_ij = xb_ij + w_ij' u_i`` with ``w_ij = Lambda' z_ij`` and
``u_i ~ N(0, I_q)``. The integrand ``h(u) = sum_j l(eta_ij) - u'u/2`` is integrated on a
grid ``u_k = m + R t_k`` (``t_k``, ``omega_k`` a product Gauss-Hermite rule for N(0, I)):

    log L_i = log|det R| + log sum_k omega_k exp(h(m + R t_k) + t_k't_k / 2) + const_i.

The grid's centre and scale come from one of two rules:

* mode-curvature (``RULE_MODE``; lme4, Stata's ``mcaghermite``, Laplace when K = 1):
  ``m`` is the mode of ``h`` and ``R R' = H^-1`` with ``H = -h''(m)`` (or the expected
  information, ``CURV_FISHER``, as lme4's PIRLS weights for non-canonical links).
* mean-variance (``RULE_MEANVAR``; Stata's default ``mvaghermite``): ``m`` and ``R R'`` are
  the posterior mean and covariance of ``u`` computed by the same quadrature, iterated to a
  fixed point.

Derivatives. With the grid held fixed, the gradient is the posterior-weighted mean of the
complete-data scores and the Hessian follows Louis' identity. For the mode-curvature rule
the kernel adds the exact derivative of the grid's movement (the mode and curvature depend
on the parameters; implicit differentiation), so the gradient is exact for any K, Laplace
included. For the mean-variance rule that term is the quadrature estimate of an integral
that is exactly zero (the integral does not depend on where the grid sits), so the fixed-grid
derivatives are those of the objective up to quadrature error.

Parameters are ordered ``[beta (p), theta (n_theta), aux (n_aux)]`` with
``Lambda = sum_l theta_l E_l`` linear in ``theta``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from mixedglm.families.kernels import (
    BINOMIAL,
    LOGIT,
    aux_derivs,
    eta_derivs,
    fisher_weight,
    logit_loglik_mean,
)

RULE_MODE = 0
RULE_MEANVAR = 1
CURV_OBSERVED = 0
CURV_FISHER = 1

_MODE_TOL = 1e-11
_MEANVAR_TOL = 1e-10
_MEANVAR_MAXIT = 200

# --------------------------------------------------------------------------------------------
# small dense algebra (q is 1 to 4): loops, no BLAS calls, no allocations in the hot paths


@numba.njit(cache=True, inline="always")
def _chol_into(a: np.ndarray, out: np.ndarray) -> bool:
    """Lower Cholesky factor of a small SPD matrix into ``out``; False if not PD."""
    q = a.shape[0]
    for i in range(q):
        for j in range(q):
            out[i, j] = 0.0
    for i in range(q):
        for j in range(i + 1):
            s = a[i, j]
            for k in range(j):
                s -= out[i, k] * out[j, k]
            if i == j:
                if not s > 0.0:
                    return False
                out[i, i] = math.sqrt(s)
            else:
                out[i, j] = s / out[j, j]
    return True


@numba.njit(cache=True, inline="always")
def _inv_lower_into(lower: np.ndarray, out: np.ndarray) -> None:
    q = lower.shape[0]
    for i in range(q):
        for j in range(q):
            out[i, j] = 0.0
    for i in range(q):
        out[i, i] = 1.0 / lower[i, i]
        for j in range(i):
            s = 0.0
            for k in range(j, i):
                s -= lower[i, k] * out[k, j]
            out[i, j] = s / lower[i, i]


@numba.njit(cache=True, inline="always")
def _spd_inverse_into(a: np.ndarray, work: np.ndarray, work2: np.ndarray, out: np.ndarray) -> bool:
    """``out = a^-1`` through the Cholesky factor (``work``, ``work2`` scratch q x q)."""
    if not _chol_into(a, work):
        return False
    _inv_lower_into(work, work2)
    q = a.shape[0]
    for i in range(q):
        for j in range(q):
            s = 0.0
            for k in range(max(i, j), q):
                s += work2[k, i] * work2[k, j]
            out[i, j] = s
    return True


@numba.njit(cache=True, inline="always")
def _matmul_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            s = 0.0
            for k in range(a.shape[1]):
                s += a[i, k] * b[k, j]
            out[i, j] = s


# --------------------------------------------------------------------------------------------
# one cluster's pieces


@numba.njit(cache=True)
def _mode(
    u: np.ndarray,
    neg_hess: np.ndarray,
    xb: np.ndarray,
    w: np.ndarray,
    y: np.ndarray,
    ntr: np.ndarray,
    aux: np.ndarray,
    family: int,
    link: int,
    s: int,
    e: int,
    ws: tuple,
) -> bool:
    """Mode of h(u) by Newton with step halving, in place in ``u``; ``neg_hess`` = -h''."""
    q = w.shape[1]
    grad, delta, u_prev, chol, chol_inv = ws
    h_prev = -np.inf
    step = 1.0
    for _ in range(200):
        h = 0.0
        for a in range(q):
            grad[a] = -u[a]
            h -= 0.5 * u[a] * u[a]
            for b in range(q):
                neg_hess[a, b] = 1.0 if a == b else 0.0
        for j in range(s, e):
            eta = xb[j]
            for a in range(q):
                eta += w[j, a] * u[a]
            l0, d1, d2, _ = eta_derivs(family, link, y[j], ntr[j], eta, aux)
            h += l0
            for a in range(q):
                grad[a] += d1 * w[j, a]
                for b in range(a + 1):
                    neg_hess[a, b] -= d2 * w[j, a] * w[j, b]
        for a in range(q):
            for b in range(a):
                neg_hess[b, a] = neg_hess[a, b]
        if not (h >= h_prev - 1e-13 * abs(h_prev)) and step > 1e-10:
            step *= 0.5  # the last step went downhill: back up
            for a in range(q):
                u[a] = u_prev[a] + step * delta[a]
            continue
        damped = False
        if not _chol_into(neg_hess, chol):
            # -h'' is not positive definite here (a log-likelihood that is not concave in
            # eta, such as NB1's): take a damped step on -h'' + tau I instead (the line
            # search above keeps it uphill); the mode itself must have a PD curvature
            damped = True
            tau = 1e-3
            for a in range(q):
                tau = max(tau, 1e-3 * abs(neg_hess[a, a]))
            for _ in range(60):
                for a in range(q):
                    neg_hess[a, a] += tau
                ok = _chol_into(neg_hess, chol)
                for a in range(q):
                    neg_hess[a, a] -= tau
                if ok:
                    break
                tau *= 4.0
            else:
                return False
        _inv_lower_into(chol, chol_inv)
        decrement = 0.0
        for a in range(q):
            v = 0.0
            for b in range(a + 1):
                v += chol_inv[a, b] * grad[b]
            decrement += v * v
        for a in range(q):
            v = 0.0
            for b in range(q):
                for c in range(max(a, b), q):
                    v += chol_inv[c, a] * chol_inv[c, b] * grad[b]
            delta[a] = v
        if decrement < _MODE_TOL * _MODE_TOL and not damped:
            return True
        h_prev = h
        step = 1.0
        for a in range(q):
            u_prev[a] = u[a]
            u[a] += delta[a]
    return False


@numba.njit(cache=True)
def _fisher_curvature(
    m: np.ndarray,
    out: np.ndarray,
    xb: np.ndarray,
    w: np.ndarray,
    ntr: np.ndarray,
    family: int,
    link: int,
    s: int,
    e: int,
) -> None:
    q = w.shape[1]
    for a in range(q):
        for b in range(q):
            out[a, b] = 1.0 if a == b else 0.0
    for j in range(s, e):
        eta = xb[j]
        for a in range(q):
            eta += w[j, a] * m[a]
        fw, _ = fisher_weight(family, link, ntr[j], eta)
        for a in range(q):
            for b in range(q):
                out[a, b] += fw * w[j, a] * w[j, b]


@numba.njit(cache=True)
def _grid_values(
    m: np.ndarray,
    chol: np.ndarray,
    nodes: np.ndarray,
    logw_adj: np.ndarray,
    xb: np.ndarray,
    w: np.ndarray,
    y: np.ndarray,
    ntr: np.ndarray,
    aux: np.ndarray,
    family: int,
    link: int,
    s: int,
    e: int,
    u_nodes: np.ndarray,
    log_terms: np.ndarray,
    d1s: np.ndarray,
    d2s: np.ndarray,
) -> float:
    """Fill the grid's nodes, the log integrand terms and the first two derivatives of the
    kernel at every (node, observation) in ``d1s``, ``d2s`` ``(K, n_i)``; return
    log sum_k exp(term_k). The logit has its own copy of the loop (the hottest loop of
    xtlogit/melogit fits: a third faster without the family dispatch inside it)."""
    if family == BINOMIAL and link == LOGIT:
        return _grid_values_logit(
            m, chol, nodes, logw_adj, xb, w, y, ntr, s, e, u_nodes, log_terms, d1s, d2s
        )
    n_nodes, q = nodes.shape
    for k in range(n_nodes):
        hk = 0.0
        for a in range(q):
            v = m[a]
            for b in range(a + 1):
                v += chol[a, b] * nodes[k, b]
            u_nodes[k, a] = v
            hk -= 0.5 * v * v
        for j in range(s, e):
            eta = xb[j]
            for a in range(q):
                eta += w[j, a] * u_nodes[k, a]
            l0, d1, d2, _ = eta_derivs(family, link, y[j], ntr[j], eta, aux)
            hk += l0
            d1s[k, j - s] = d1
            d2s[k, j - s] = d2
        log_terms[k] = logw_adj[k] + hk
    top = -np.inf
    for k in range(n_nodes):
        if log_terms[k] > top:
            top = log_terms[k]
    acc = 0.0
    for k in range(n_nodes):
        acc += math.exp(log_terms[k] - top)
    return top + math.log(acc)


@numba.njit(cache=True, inline="always")
def _grid_values_logit(
    m: np.ndarray,
    chol: np.ndarray,
    nodes: np.ndarray,
    logw_adj: np.ndarray,
    xb: np.ndarray,
    w: np.ndarray,
    y: np.ndarray,
    ntr: np.ndarray,
    s: int,
    e: int,
    u_nodes: np.ndarray,
    log_terms: np.ndarray,
    d1s: np.ndarray,
    d2s: np.ndarray,
) -> float:
    """:func:`_grid_values` for the binomial logit (see ``families.kernels.eta_derivs``)."""
    n_nodes, q = nodes.shape
    for k in range(n_nodes):
        hk = 0.0
        for a in range(q):
            v = m[a]
            for b in range(a + 1):
                v += chol[a, b] * nodes[k, b]
            u_nodes[k, a] = v
            hk -= 0.5 * v * v
        for j in range(s, e):
            eta = xb[j]
            for a in range(q):
                eta += w[j, a] * u_nodes[k, a]
            n = ntr[j]
            l0, mu = logit_loglik_mean(y[j], n, eta)
            hk += l0
            d1s[k, j - s] = y[j] - n * mu
            d2s[k, j - s] = -n * mu * (1.0 - mu)
        log_terms[k] = logw_adj[k] + hk
    top = -np.inf
    for k in range(n_nodes):
        if log_terms[k] > top:
            top = log_terms[k]
    acc = 0.0
    for k in range(n_nodes):
        acc += math.exp(log_terms[k] - top)
    return top + math.log(acc)


@numba.njit(cache=True, inline="always")
def _moments_into(
    u_nodes: np.ndarray,
    log_terms: np.ndarray,
    lse: float,
    post: np.ndarray,
    mean: np.ndarray,
    cov: np.ndarray,
) -> None:
    """Posterior weights, mean and covariance of ``u`` on the grid."""
    n_nodes, q = u_nodes.shape
    for a in range(q):
        mean[a] = 0.0
        for b in range(q):
            cov[a, b] = 0.0
    for k in range(n_nodes):
        post[k] = math.exp(log_terms[k] - lse)
        for a in range(q):
            mean[a] += post[k] * u_nodes[k, a]
    for k in range(n_nodes):
        for a in range(q):
            da = u_nodes[k, a] - mean[a]
            for b in range(a + 1):
                cov[a, b] += post[k] * da * (u_nodes[k, b] - mean[b])
    for a in range(q):
        for b in range(a):
            cov[b, a] = cov[a, b]


@numba.njit(cache=True)
def _derivatives(
    i: int,
    s: int,
    e: int,
    order: int,
    data: tuple,
    rule: tuple,
    u_nodes: np.ndarray,
    post: np.ndarray,
    d1s: np.ndarray,
    d2s: np.ndarray,
    scores: np.ndarray,
    zs: np.ndarray,
    grad: np.ndarray,
    hess: np.ndarray,
    aux_scratch: tuple,
    family: int,
    link: int,
) -> None:
    """Fixed-grid gradient (posterior mean of the complete-data scores) and, for order 2,
    the Louis Hessian. ``scores`` (K, P) and ``zs`` (K, q) are left filled (the grid-motion
    term uses ``zs``)."""
    beta_xb, X, Z, W, y, ntr, _, _ = data
    nodes, _, E, _, aux = rule
    las, leas, laas, l_a, l_ea, l_eea, l_aa, zeta, x_theta, x_aux = aux_scratch
    n_nodes, q = nodes.shape
    p = X.shape[1]
    n_theta = E.shape[0]
    n_aux = aux.shape[0]
    n_par = p + n_theta + n_aux
    n_i = e - s
    if n_aux > 0:
        for jj in range(n_i):
            j = s + jj
            for k in range(n_nodes):
                eta = beta_xb[j]
                for a in range(q):
                    eta += W[j, a] * u_nodes[k, a]
                aux_derivs(family, link, y[j], ntr[j], eta, aux, l_a, l_ea, l_eea, l_aa)
                for a in range(n_aux):
                    las[jj, k, a] = l_a[a]
                    leas[jj, k, a] = l_ea[a]
                    for b in range(n_aux):
                        laas[jj, k, a, b] = l_aa[a, b]
    for k in range(n_nodes):
        for r in range(n_par):
            scores[k, r] = 0.0
        for a in range(q):
            zs[k, a] = 0.0
        for jj in range(n_i):
            j = s + jj
            d1 = d1s[k, jj]
            for r in range(p):
                scores[k, r] += d1 * X[j, r]
            for a in range(q):
                zs[k, a] += d1 * Z[j, a]
            for a in range(n_aux):
                scores[k, p + n_theta + a] += las[jj, k, a]
        for t in range(n_theta):
            v = 0.0
            for a in range(q):
                for b in range(q):
                    v += zs[k, a] * E[t, a, b] * u_nodes[k, b]
            scores[k, p + t] = v
    for r in range(n_par):
        grad[r] = 0.0
    for k in range(n_nodes):
        for r in range(n_par):
            grad[r] += post[k] * scores[k, r]
    if order < 2:
        return
    for r in range(n_par):
        for c in range(n_par):
            hess[r, c] = 0.0
    # Louis: sum_k post_k S_k S_k' - grad grad'
    for k in range(n_nodes):
        for r in range(n_par):
            sr = post[k] * scores[k, r]
            for c in range(r + 1):
                hess[r, c] += sr * scores[k, c]
    for r in range(n_par):
        for c in range(r + 1):
            hess[r, c] -= grad[r] * grad[c]
    # plus the posterior mean of the complete-data Hessian
    for jj in range(n_i):
        j = s + jj
        wd2 = 0.0
        for t in range(n_theta):
            x_theta[t] = 0.0
        for a in range(n_aux):
            x_aux[a] = 0.0
        for k in range(n_nodes):
            pk = post[k]
            c2 = pk * d2s[k, jj]
            wd2 += c2
            for t in range(n_theta):
                v = 0.0
                for a in range(q):
                    for b in range(q):
                        v += Z[j, a] * E[t, a, b] * u_nodes[k, b]
                zeta[t] = v
            for t in range(n_theta):
                ct = c2 * zeta[t]
                x_theta[t] += ct
                for t2 in range(t + 1):
                    hess[p + t, p + t2] += ct * zeta[t2]
            for a in range(n_aux):
                ca = pk * leas[jj, k, a]
                row = p + n_theta + a
                x_aux[a] += ca
                for t in range(n_theta):
                    hess[row, p + t] += ca * zeta[t]
                for b in range(a + 1):
                    hess[row, p + n_theta + b] += pk * laas[jj, k, a, b]
        for r in range(p):
            xr = X[j, r]
            wr = wd2 * xr
            for c in range(r + 1):
                hess[r, c] += wr * X[j, c]
            for t in range(n_theta):
                hess[p + t, r] += x_theta[t] * xr
            for a in range(n_aux):
                hess[p + n_theta + a, r] += x_aux[a] * xr
    for r in range(n_par):
        for c in range(r):
            hess[c, r] = hess[r, c]


@numba.njit(cache=True)
def _grid_motion(
    grad: np.ndarray,
    m: np.ndarray,
    neg_hess: np.ndarray,
    sigma: np.ndarray,
    chol: np.ndarray,
    u_nodes: np.ndarray,
    post: np.ndarray,
    zs: np.ndarray,
    s: int,
    e: int,
    data: tuple,
    rule: tuple,
    family: int,
    link: int,
    curvature: int,
) -> None:
    """Add dF/dm * dm/dtheta + dF/dR * dR/dtheta to ``grad`` (mode-curvature grid).

    F(theta, m, R) is the cluster's log-likelihood on the grid m + R t_k. The mode m solves
    h'(m) = 0, so dm/dtheta = (-h'')^-1 d(h')/dtheta; R = chol(H^-1) moves with H = -h''(m)
    (or the Fisher curvature), whose total derivative involves the third derivative of l.
    """
    beta_xb, X, Z, W, y, ntr, _, _ = data
    nodes, _, E, lam, aux = rule
    n_nodes, q = nodes.shape
    p = X.shape[1]
    n_theta = E.shape[0]
    n_aux = aux.shape[0]
    n_par = p + n_theta + n_aux
    # dF/dm = sum_k post_k grad_u h(u_k);  dF/dR = R^-T + sum_k post_k grad_u h(u_k) t_k'
    f_m = np.zeros(q)
    f_r = np.zeros((q, q))
    grad_u = np.zeros(q)
    for k in range(n_nodes):
        for a in range(q):
            v = -u_nodes[k, a]
            for b in range(q):
                v += lam[b, a] * zs[k, b]
            grad_u[a] = v
        for a in range(q):
            f_m[a] += post[k] * grad_u[a]
            for b in range(a + 1):
                f_r[a, b] += post[k] * grad_u[a] * nodes[k, b]
    for a in range(q):
        f_r[a, a] += 1.0 / chol[a, a]
    # derivatives of the score equation at the mode (q x n_par) and of the curvature
    g_theta = np.zeros((q, n_par))
    l_a = np.zeros(n_aux)
    l_ea = np.zeros(n_aux)
    l_eea = np.zeros(n_aux)
    l_aa = np.zeros((n_aux, n_aux))
    n_i = e - s
    c1m = np.empty(n_i)
    c2m = np.empty(n_i)
    caux = np.zeros((n_i, n_aux))
    zem = np.empty((n_i, n_theta))  # z_j' E_l m
    ez = np.empty((n_i, n_theta, q))  # E_l' z_j
    for jj in range(n_i):
        j = s + jj
        eta = beta_xb[j]
        for a in range(q):
            eta += W[j, a] * m[a]
        _, d1, d2, d3 = eta_derivs(family, link, y[j], ntr[j], eta, aux)
        if curvature == CURV_FISHER:
            fw, dfw = fisher_weight(family, link, ntr[j], eta)
            c1m[jj] = -fw
            c2m[jj] = -dfw
        else:
            c1m[jj] = d2
            c2m[jj] = d3
        if n_aux > 0:
            aux_derivs(family, link, y[j], ntr[j], eta, aux, l_a, l_ea, l_eea, l_aa)
            for a in range(n_aux):
                caux[jj, a] = l_eea[a]
                for b in range(q):
                    g_theta[b, p + n_theta + a] += l_ea[a] * W[j, b]
        for t in range(n_theta):
            v = 0.0
            for a in range(q):
                ez_ta = 0.0
                for b in range(q):
                    v += Z[j, b] * E[t, b, a] * m[a]
                    ez_ta += E[t, b, a] * Z[j, b]
                ez[jj, t, a] = ez_ta
            zem[jj, t] = v
        for b in range(q):
            for r in range(p):
                g_theta[b, r] += d2 * W[j, b] * X[j, r]
            for t in range(n_theta):
                g_theta[b, p + t] += d2 * zem[jj, t] * W[j, b] + d1 * ez[jj, t, b]
    # dm/dtheta = (-h'')^-1 g_theta
    work = np.empty((q, q))
    work2 = np.empty((q, q))
    inv_neg_hess = np.empty((q, q))
    _spd_inverse_into(neg_hess, work, work2, inv_neg_hess)
    m_theta = np.empty((q, n_par))
    _matmul_into(inv_neg_hess, g_theta, m_theta)
    d_curv = np.zeros((n_par, q, q))
    for jj in range(n_i):
        j = s + jj
        for r in range(n_par):
            delta = 0.0
            if r < p:
                delta = X[j, r]
            elif r < p + n_theta:
                delta = zem[jj, r - p]
            for a in range(q):
                delta += W[j, a] * m_theta[a, r]
            coef = c2m[jj] * delta
            if r >= p + n_theta:
                coef += caux[jj, r - p - n_theta]
            for a in range(q):
                for b in range(q):
                    d_curv[r, a, b] -= coef * W[j, a] * W[j, b]
            if p <= r < p + n_theta:
                t = r - p
                for a in range(q):
                    for b in range(q):
                        d_curv[r, a, b] -= c1m[jj] * (
                            ez[jj, t, a] * W[j, b] + W[j, a] * ez[jj, t, b]
                        )
    chol_inv = np.empty((q, q))
    _inv_lower_into(chol, chol_inv)
    tmp = np.empty((q, q))
    d_sigma = np.empty((q, q))
    inner = np.empty((q, q))
    d_chol = np.empty((q, q))
    for r in range(n_par):
        total = 0.0
        for a in range(q):
            total += f_m[a] * m_theta[a, r]
        # dSigma = -Sigma dH Sigma; dR = R Phi(R^-1 dSigma R^-T)
        _matmul_into(sigma, d_curv[r], tmp)
        _matmul_into(tmp, sigma, d_sigma)
        _matmul_into(chol_inv, d_sigma, tmp)
        _matmul_into(tmp, chol_inv.T, inner)
        for a in range(q):
            inner[a, a] *= -0.5
            for b in range(a):
                inner[a, b] = -inner[a, b]
            for b in range(a + 1, q):
                inner[a, b] = 0.0
        _matmul_into(chol, inner, d_chol)
        for a in range(q):
            for b in range(a + 1):
                total += f_r[a, b] * d_chol[a, b]
        grad[r] += total


@numba.njit(cache=True)
def _meanvar_motion(
    grad: np.ndarray,
    chol: np.ndarray,
    nodes: np.ndarray,
    u_nodes: np.ndarray,
    post: np.ndarray,
    scores: np.ndarray,
    zs: np.ndarray,
    lam: np.ndarray,
) -> None:
    """Add the derivative of the mean-variance grid's movement to ``grad``.

    The grid (m, R) is the fixed point of the posterior moments computed on it:
    ``sum_k post_k t_k = 0`` and ``sum_k post_k t_k t_k' = I`` (lower triangle). With
    ``d post_k / dx = post_k (g_k(x) - mean_k g_k(x))`` for x = theta (g = the node's score),
    m (g = grad_u h(u_k)) or R (g = grad_u h(u_k) t_k'), implicit differentiation gives
    ``d(m, R)/dtheta = -J_a^-1 J_theta`` with both Jacobians posterior covariances between
    moments of t and those scores; the gradient gains ``F_a . d(m, R)/dtheta`` with
    ``F_m = sum_k post_k grad_u h(u_k)``, ``F_R = R^-T + sum_k post_k grad_u h(u_k) t_k'``.
    """
    n_nodes, q = nodes.shape
    n_par = scores.shape[1]
    n_a = q + q * (q + 1) // 2
    g = np.empty((n_nodes, n_a))  # scores of the grid parameters at each node
    mom = np.empty((n_nodes, n_a))  # the moments whose posterior means define the grid
    grad_u = np.empty(q)
    for k in range(n_nodes):
        for a in range(q):
            v = -u_nodes[k, a]
            for b in range(q):
                v += lam[b, a] * zs[k, b]
            grad_u[a] = v
        for a in range(q):
            g[k, a] = grad_u[a]
            mom[k, a] = nodes[k, a]
        idx = q
        for c in range(q):
            for d in range(c + 1):
                g[k, idx] = grad_u[c] * nodes[k, d]
                mom[k, idx] = nodes[k, c] * nodes[k, d]
                idx += 1
    g_bar = np.zeros(n_a)
    s_bar = np.zeros(n_par)
    for k in range(n_nodes):
        for f in range(n_a):
            g_bar[f] += post[k] * g[k, f]
        for r in range(n_par):
            s_bar[r] += post[k] * scores[k, r]
    j_a = np.zeros((n_a, n_a))
    j_theta = np.zeros((n_a, n_par))
    for k in range(n_nodes):
        for e in range(n_a):
            w = post[k] * mom[k, e]
            for f in range(n_a):
                j_a[e, f] += w * (g[k, f] - g_bar[f])
            for r in range(n_par):
                j_theta[e, r] += w * (scores[k, r] - s_bar[r])
    f_a = g_bar.copy()
    idx = q
    for c in range(q):
        for d in range(c + 1):
            if c == d:
                f_a[idx] += 1.0 / chol[c, c]
            idx += 1
    # v = J_a^-T F_a; correction_r = -v . J_theta[:, r]
    v = np.linalg.solve(j_a.T, f_a)
    for r in range(n_par):
        total = 0.0
        for e in range(n_a):
            total += v[e] * j_theta[e, r]
        grad[r] -= total


# --------------------------------------------------------------------------------------------
# clusters, chunks, threads


@numba.njit(cache=True)
def _chunk(
    g0: int,
    g1: int,
    data: tuple,
    rule: tuple,
    flags: tuple,
    state: tuple,
    out: tuple,
) -> None:
    """Clusters ``g0 .. g1 - 1`` with scratch arrays shared by the chunk."""
    beta_xb, X, _, W, y, ntr, const, starts = data
    nodes, logw_adj, E, lam, aux = rule
    family, link, rule_code, curvature, order, exact, warm = flags
    modes, grid_m, grid_r = state
    out_ll, out_grad, out_hess, post_mean, post_cov, status = out
    n_nodes, q = nodes.shape
    p = X.shape[1]
    n_theta = E.shape[0]
    n_aux = aux.shape[0]
    n_par = p + n_theta + n_aux
    max_n = 1
    for i in range(g0, g1):
        max_n = max(max_n, starts[i + 1] - starts[i])
    u_nodes = np.empty((n_nodes, q))
    log_terms = np.empty(n_nodes)
    d1s = np.empty((n_nodes, max_n))
    d2s = np.empty((n_nodes, max_n))
    post = np.empty(n_nodes)
    mean = np.empty(q)
    cov = np.empty((q, q))
    m = np.empty(q)
    neg_hess = np.empty((q, q))
    curv = np.empty((q, q))
    sigma = np.empty((q, q))
    centre = np.empty(q)
    chol = np.empty((q, q))
    new_chol = np.empty((q, q))
    work = np.empty((q, q))
    work2 = np.empty((q, q))
    mode_ws = (np.empty(q), np.empty(q), np.empty(q), np.empty((q, q)), np.empty((q, q)))
    scores = np.empty((n_nodes, n_par))
    zs = np.empty((n_nodes, q))
    grad = np.empty(n_par)
    hess = np.empty((n_par, n_par))
    aux_n = max_n if n_aux > 0 else 0
    aux_scratch = (
        np.zeros((aux_n, n_nodes, n_aux)),
        np.zeros((aux_n, n_nodes, n_aux)),
        np.zeros((aux_n, n_nodes, n_aux, n_aux)),
        np.zeros(n_aux),
        np.zeros(n_aux),
        np.zeros(n_aux),
        np.zeros((n_aux, n_aux)),
        np.zeros(n_theta),
        np.zeros(n_theta),
        np.zeros(n_aux),
    )
    meanvar = rule_code == RULE_MEANVAR and n_nodes > 1
    for i in range(g0, g1):
        s = starts[i]
        e = starts[i + 1]
        status[i] = 0
        # 1. mode and curvature (a warm mean-variance grid does not need them)
        for a in range(q):
            m[a] = modes[i, a]
        if not (meanvar and warm):
            if not _mode(m, neg_hess, beta_xb, W, y, ntr, aux, family, link, s, e, mode_ws):
                status[i] = 1
            for a in range(q):
                modes[i, a] = m[a]
            if curvature == CURV_FISHER:
                _fisher_curvature(m, curv, beta_xb, W, ntr, family, link, s, e)
            else:
                curv[:, :] = neg_hess
            _spd_inverse_into(curv, work, work2, sigma)
        # 2. the grid, and the values on it
        lse = 0.0
        evaluated = False  # values computed on the final grid already
        if meanvar:
            if warm:
                for a in range(q):
                    centre[a] = grid_m[i, a]
                    for b in range(q):
                        chol[a, b] = grid_r[i, a, b]
            else:
                centre[:] = m
                _chol_into(sigma, chol)
            for _ in range(_MEANVAR_MAXIT):
                lse = _grid_values(
                    centre,
                    chol,
                    nodes,
                    logw_adj,
                    beta_xb,
                    W,
                    y,
                    ntr,
                    aux,
                    family,
                    link,
                    s,
                    e,
                    u_nodes,
                    log_terms,
                    d1s,
                    d2s,
                )
                _moments_into(u_nodes, log_terms, lse, post, mean, cov)
                if not _chol_into(cov, new_chol):
                    break
                change = 0.0
                for a in range(q):
                    scale = new_chol[a, a]
                    change = max(change, abs(mean[a] - centre[a]) / scale)
                    for b in range(a + 1):
                        change = max(change, abs(new_chol[a, b] - chol[a, b]) / scale)
                if change < _MEANVAR_TOL:
                    evaluated = True  # the values were computed on this grid
                    break
                centre[:] = mean
                chol[:, :] = new_chol
            if not evaluated:
                # no fixed point: fall back to the mode-curvature grid for this cluster
                status[i] = 2
                for a in range(q):
                    m[a] = modes[i, a]
                _mode(m, neg_hess, beta_xb, W, y, ntr, aux, family, link, s, e, mode_ws)
                for a in range(q):
                    modes[i, a] = m[a]
                _spd_inverse_into(neg_hess, work, work2, sigma)
        if not evaluated:
            centre[:] = m
            _chol_into(sigma, chol)
            lse = _grid_values(
                centre,
                chol,
                nodes,
                logw_adj,
                beta_xb,
                W,
                y,
                ntr,
                aux,
                family,
                link,
                s,
                e,
                u_nodes,
                log_terms,
                d1s,
                d2s,
            )
        log_det = 0.0
        for a in range(q):
            grid_m[i, a] = centre[a]
            log_det += math.log(chol[a, a])
            for b in range(q):
                grid_r[i, a, b] = chol[a, b]
        out_ll[i] = log_det + lse + const[i]
        _moments_into(u_nodes, log_terms, lse, post, mean, cov)
        for a in range(q):
            post_mean[i, a] = mean[a]
            for b in range(q):
                post_cov[i, a, b] = cov[a, b]
        if order == 0:
            continue
        # 3. derivatives on the fixed grid, and the movement of a mode-curvature grid
        _derivatives(
            i,
            s,
            e,
            order,
            data,
            rule,
            u_nodes,
            post,
            d1s,
            d2s,
            scores,
            zs,
            grad,
            hess,
            aux_scratch,
            family,
            link,
        )
        if exact and rule_code == RULE_MODE:
            _grid_motion(
                grad,
                m,
                neg_hess,
                sigma,
                chol,
                u_nodes,
                post,
                zs,
                s,
                e,
                data,
                rule,
                family,
                link,
                curvature,
            )
        elif exact and meanvar and status[i] == 0:
            _meanvar_motion(grad, chol, nodes, u_nodes, post, scores, zs, lam)
        for r in range(n_par):
            out_grad[i, r] = grad[r]
        if order >= 2:
            for r in range(n_par):
                for c in range(n_par):
                    out_hess[i, r, c] = hess[r, c]


@numba.njit(cache=True, parallel=True)
def _chunks_parallel(
    chunks: np.ndarray, data: tuple, rule: tuple, flags: tuple, state: tuple, out: tuple
) -> None:
    for c in numba.prange(chunks.shape[0] - 1):
        _chunk(chunks[c], chunks[c + 1], data, rule, flags, state, out)


@numba.njit(cache=True)
def _chunks_serial(data: tuple, rule: tuple, flags: tuple, state: tuple, out: tuple) -> None:
    starts = data[7]
    _chunk(0, starts.shape[0] - 1, data, rule, flags, state, out)


@numba.njit(cache=True, parallel=True)
def _linear_predictors_parallel(X, beta, offset, Z, lam, xb, w):
    for j in numba.prange(X.shape[0]):
        v = offset[j]
        for r in range(X.shape[1]):
            v += X[j, r] * beta[r]
        xb[j] = v
        for a in range(lam.shape[1]):
            v = 0.0
            for b in range(Z.shape[1]):
                v += Z[j, b] * lam[b, a]
            w[j, a] = v


def linear_predictors(
    X: np.ndarray, beta: np.ndarray, offset: np.ndarray, Z: np.ndarray, lam: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``X beta + offset`` and ``W = Z Lambda`` by a compiled loop, not BLAS: a BLAS call's
    own threads keep spinning for a while after it returns and slow the threaded kernel that
    follows (measured: 42 ms -> 75 ms per evaluation on papers, 2 cores)."""
    xb = np.empty(X.shape[0])
    w = np.empty((Z.shape[0], lam.shape[1]))
    _linear_predictors_parallel(X, np.ascontiguousarray(beta), offset, Z, lam, xb, w)
    return xb, w


def aghq_clusters(data: tuple, rule: tuple, flags: tuple, state: tuple, out: tuple) -> None:
    """Per-cluster log-likelihood, gradient and Hessian contributions (see module doc).

    ``data = (X beta + offset, X, Z, W = Z Lambda, y, trials, const, starts)``;
    ``rule = (nodes, log weights + t't/2, E, Lambda, aux)``;
    ``flags = (family, link, rule, curvature, order, exact, warm)``;
    ``state = (modes, grid_m, grid_r)`` carry each cluster's mode and grid between calls
    (warm starts); ``out = (ll, grad, hess, post_mean, post_cov, status)``, ``status[i]``
    0 when the cluster's inner problems converged. Threads share chunks of clusters of
    about equal cost when the work is large enough.
    """
    from mixedglm.engines.parallel import cost_chunks, use_threads

    starts = data[7]
    cost = np.diff(starts).astype(np.float64) * rule[0].shape[0]
    if use_threads(cost):
        with numba.parallel_chunksize(1):
            _chunks_parallel(cost_chunks(cost), data, rule, flags, state, out)
    else:
        _chunks_serial(data, rule, flags, state, out)
