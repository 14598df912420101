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

from mixedglm.families.kernels import aux_derivs, eta_derivs, fisher_weight

RULE_MODE = 0
RULE_MEANVAR = 1
CURV_OBSERVED = 0
CURV_FISHER = 1

_MODE_TOL = 1e-11
_MEANVAR_TOL = 1e-10
_MEANVAR_MAXIT = 200


@numba.njit(cache=True)
def _cholesky(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a small SPD matrix (NaN if not positive definite)."""
    q = a.shape[0]
    out = np.zeros((q, q))
    for i in range(q):
        for j in range(i + 1):
            s = a[i, j]
            for k in range(j):
                s -= out[i, k] * out[j, k]
            if i == j:
                out[i, i] = math.sqrt(s) if s > 0.0 else np.nan
            else:
                out[i, j] = s / out[j, j]
    return out


@numba.njit(cache=True)
def _inv_lower(lower: np.ndarray) -> np.ndarray:
    q = lower.shape[0]
    inv = np.zeros((q, q))
    for i in range(q):
        inv[i, i] = 1.0 / lower[i, i]
        for j in range(i):
            s = 0.0
            for k in range(j, i):
                s -= lower[i, k] * inv[k, j]
            inv[i, j] = s / lower[i, i]
    return inv


@numba.njit(cache=True)
def _spd_inverse(a: np.ndarray) -> np.ndarray:
    li = _inv_lower(_cholesky(a))
    return li.T @ li


@numba.njit(cache=True)
def _mode(
    u0: np.ndarray,
    xb: np.ndarray,
    w: np.ndarray,
    y: np.ndarray,
    ntr: np.ndarray,
    aux: np.ndarray,
    family: int,
    link: int,
    s: int,
    e: int,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Mode of h(u) for one cluster by Newton with step halving; returns (mode, -h'', ok)."""
    q = w.shape[1]
    u = u0.copy()
    u_prev = u0.copy()
    delta = np.zeros(q)
    h_prev = -np.inf
    step = 1.0
    neg_hess = np.eye(q)
    for _ in range(200):
        grad = -u.copy()
        neg_hess = np.eye(q)
        h = 0.0
        for a in range(q):
            h -= 0.5 * u[a] * u[a]
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
            # the last step went downhill: back up
            step *= 0.5
            for a in range(q):
                u[a] = u_prev[a] + step * delta[a]
            continue
        chol = _cholesky(neg_hess)
        if np.isnan(chol[0, 0]):
            return u, neg_hess, False
        # delta = neg_hess^-1 grad
        li = _inv_lower(chol)
        tmp = li @ grad
        delta = li.T @ tmp
        decrement = 0.0
        for a in range(q):
            decrement += tmp[a] * tmp[a]
        if decrement < _MODE_TOL * _MODE_TOL:
            return u, neg_hess, True
        h_prev = h
        step = 1.0
        for a in range(q):
            u_prev[a] = u[a]
            u[a] = u[a] + delta[a]
    return u, neg_hess, False


@numba.njit(cache=True)
def _fisher_curvature(
    m: np.ndarray,
    xb: np.ndarray,
    w: np.ndarray,
    ntr: np.ndarray,
    family: int,
    link: int,
    s: int,
    e: int,
) -> np.ndarray:
    q = w.shape[1]
    curv = np.eye(q)
    for j in range(s, e):
        eta = xb[j]
        for a in range(q):
            eta += w[j, a] * m[a]
        fw, _ = fisher_weight(family, link, ntr[j], eta)
        for a in range(q):
            for b in range(q):
                curv[a, b] += fw * w[j, a] * w[j, b]
    return curv


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
    """Fill the grid's nodes, log integrand terms and the first two derivatives of the
    kernel at every (node, observation) in ``d1s``, ``d2s`` ``(K, n_i)``; return
    log sum_k exp(term_k)."""
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


@numba.njit(cache=True)
def _posterior_moments(
    u_nodes: np.ndarray, log_terms: np.ndarray, lse: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_nodes, q = u_nodes.shape
    post = np.empty(n_nodes)
    mean = np.zeros(q)
    for k in range(n_nodes):
        post[k] = math.exp(log_terms[k] - lse)
        for a in range(q):
            mean[a] += post[k] * u_nodes[k, a]
    cov = np.zeros((q, q))
    for k in range(n_nodes):
        for a in range(q):
            da = u_nodes[k, a] - mean[a]
            for b in range(a + 1):
                cov[a, b] += post[k] * da * (u_nodes[k, b] - mean[b])
    for a in range(q):
        for b in range(a):
            cov[b, a] = cov[a, b]
    return post, mean, cov


@numba.njit(cache=True, parallel=True)
def aghq_clusters(
    beta_xb: np.ndarray,
    lam: np.ndarray,
    aux: np.ndarray,
    X: np.ndarray,
    Z: np.ndarray,
    W: np.ndarray,
    y: np.ndarray,
    ntr: np.ndarray,
    const: np.ndarray,
    starts: np.ndarray,
    nodes: np.ndarray,
    logw_adj: np.ndarray,
    E: np.ndarray,
    family: int,
    link: int,
    rule: int,
    curvature: int,
    order: int,
    exact: bool,
    warm: bool,
    modes: np.ndarray,
    grid_m: np.ndarray,
    grid_r: np.ndarray,
    out_ll: np.ndarray,
    out_grad: np.ndarray,
    out_hess: np.ndarray,
    post_mean: np.ndarray,
    post_cov: np.ndarray,
    status: np.ndarray,
) -> None:
    """Per-cluster log-likelihood, gradient and Hessian contributions (see module doc).

    ``beta_xb`` is ``X beta + offset`` and ``W = Z Lambda``. State arrays ``modes``,
    ``grid_m``, ``grid_r`` carry each cluster's mode and grid between calls (warm starts).
    ``status[i]`` is 0 when the cluster's inner problems converged.
    """
    n_clusters = starts.shape[0] - 1
    n_nodes, q = nodes.shape
    p = X.shape[1]
    n_theta = E.shape[0]
    n_aux = aux.shape[0]
    n_par = p + n_theta + n_aux
    for i in numba.prange(n_clusters):
        s = starts[i]
        e = starts[i + 1]
        n_i = e - s
        status[i] = 0
        u_nodes = np.empty((n_nodes, q))
        log_terms = np.empty(n_nodes)
        d1s = np.empty((n_nodes, n_i))
        d2s = np.empty((n_nodes, n_i))
        meanvar = rule == RULE_MEANVAR and n_nodes > 1
        # 1. mode and curvature (a warm mean-variance grid does not need them)
        m = modes[i].copy()
        neg_hess = np.eye(q)
        curv = np.eye(q)
        sigma = np.eye(q)
        if not (meanvar and warm):
            m, neg_hess, ok = _mode(modes[i], beta_xb, W, y, ntr, aux, family, link, s, e)
            if not ok:
                status[i] = 1
            for a in range(q):
                modes[i, a] = m[a]
            if curvature == CURV_FISHER:
                curv = _fisher_curvature(m, beta_xb, W, ntr, family, link, s, e)
            else:
                curv = neg_hess
            sigma = _spd_inverse(curv)
        # 2. the grid, and the values on it
        if meanvar:
            if warm:
                centre = grid_m[i].copy()
                chol = grid_r[i].copy()
            else:
                centre = m.copy()
                chol = _cholesky(sigma)
            converged = False
            lse = 0.0
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
                _, mean, cov = _posterior_moments(u_nodes, log_terms, lse)
                new_chol = _cholesky(cov)
                if np.isnan(new_chol[0, 0]):
                    break
                change = 0.0
                for a in range(q):
                    scale = new_chol[a, a]
                    change = max(change, abs(mean[a] - centre[a]) / scale)
                    for b in range(a + 1):
                        change = max(change, abs(new_chol[a, b] - chol[a, b]) / scale)
                if change < _MEANVAR_TOL:
                    converged = True  # the values were computed on this grid
                    break
                centre = mean
                chol = new_chol
            if not converged:
                # fall back to the mode-curvature grid for this cluster
                status[i] = 2
                m, neg_hess, ok = _mode(modes[i], beta_xb, W, y, ntr, aux, family, link, s, e)
                for a in range(q):
                    modes[i, a] = m[a]
                centre = m.copy()
                chol = _cholesky(_spd_inverse(neg_hess))
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
        else:
            centre = m.copy()
            chol = _cholesky(sigma)
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
        for a in range(q):
            grid_m[i, a] = centre[a]
            for b in range(q):
                grid_r[i, a, b] = chol[a, b]
        log_det = 0.0
        for a in range(q):
            log_det += math.log(chol[a, a])
        out_ll[i] = log_det + lse + const[i]
        post, mean, cov = _posterior_moments(u_nodes, log_terms, lse)
        for a in range(q):
            post_mean[i, a] = mean[a]
            for b in range(q):
                post_cov[i, a, b] = cov[a, b]
        if order == 0:
            continue
        # 4. derivatives on the fixed grid (d1s, d2s were filled with the values)
        las = np.zeros((n_i, n_nodes, n_aux))
        leas = np.zeros((n_i, n_nodes, n_aux))
        laas = np.zeros((n_i, n_nodes, n_aux, n_aux))
        if n_aux > 0:
            l_a = np.zeros(n_aux)
            l_ea = np.zeros(n_aux)
            l_eea = np.zeros(n_aux)
            l_aa = np.zeros((n_aux, n_aux))
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
        # per-node complete-data scores S_k (n_par) and z-scores zs_k (q)
        scores = np.zeros((n_nodes, n_par))
        zs = np.zeros((n_nodes, q))
        for jj in range(n_i):
            j = s + jj
            for k in range(n_nodes):
                d1 = d1s[k, jj]
                for r in range(p):
                    scores[k, r] += d1 * X[j, r]
                for a in range(q):
                    zs[k, a] += d1 * Z[j, a]
                for a in range(n_aux):
                    scores[k, p + n_theta + a] += las[jj, k, a]
        for k in range(n_nodes):
            for t in range(n_theta):
                v = 0.0
                for a in range(q):
                    for b in range(q):
                        v += zs[k, a] * E[t, a, b] * u_nodes[k, b]
                scores[k, p + t] = v
        grad = np.zeros(n_par)
        for k in range(n_nodes):
            for r in range(n_par):
                grad[r] += post[k] * scores[k, r]
        if order >= 2:
            hess = np.zeros((n_par, n_par))
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
            zeta = np.zeros(n_theta)
            x_theta = np.zeros(n_theta)
            x_aux = np.zeros(n_aux)
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
            for r in range(n_par):
                for c in range(n_par):
                    out_hess[i, r, c] = hess[r, c]
        # 5. exact correction for the movement of a mode-curvature grid
        if exact and rule == RULE_MODE:
            _grid_motion(
                grad,
                m,
                neg_hess,
                curv,
                sigma,
                chol,
                nodes,
                u_nodes,
                post,
                zs,
                lam,
                aux,
                beta_xb,
                X,
                Z,
                W,
                y,
                ntr,
                E,
                family,
                link,
                curvature,
                s,
                e,
            )
        for r in range(n_par):
            out_grad[i, r] = grad[r]


@numba.njit(cache=True)
def _grid_motion(
    grad: np.ndarray,
    m: np.ndarray,
    neg_hess: np.ndarray,
    curv: np.ndarray,
    sigma: np.ndarray,
    chol: np.ndarray,
    nodes: np.ndarray,
    u_nodes: np.ndarray,
    post: np.ndarray,
    zs: np.ndarray,
    lam: np.ndarray,
    aux: np.ndarray,
    beta_xb: np.ndarray,
    X: np.ndarray,
    Z: np.ndarray,
    W: np.ndarray,
    y: np.ndarray,
    ntr: np.ndarray,
    E: np.ndarray,
    family: int,
    link: int,
    curvature: int,
    s: int,
    e: int,
) -> None:
    """Add dF/dm * dm/dtheta + dF/dR * dR/dtheta to ``grad`` (mode-curvature grid).

    F(theta, m, R) is the cluster's log-likelihood on the grid m + R t_k. The mode m solves
    h'(m) = 0, so dm/dtheta = (-h'')^-1 d(h')/dtheta; R = chol(H^-1) moves with H = -h''(m)
    (or the Fisher curvature), whose total derivative involves the third derivative of l.
    """
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
    # derivatives of the score equation at the mode: g_theta (q x n_par)
    g_theta = np.zeros((q, n_par))
    l_a = np.zeros(n_aux)
    l_ea = np.zeros(n_aux)
    l_eea = np.zeros(n_aux)
    l_aa = np.zeros((n_aux, n_aux))
    n_i = e - s
    d1m = np.empty(n_i)
    d2m = np.empty(n_i)
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
        d1m[jj] = d1
        d2m[jj] = d2
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
    m_theta = _spd_inverse(neg_hess) @ g_theta
    # total derivative of the curvature matrix in each parameter
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
    chol_inv = _inv_lower(chol)
    for r in range(n_par):
        total = 0.0
        for a in range(q):
            total += f_m[a] * m_theta[a, r]
        # dSigma = -Sigma dH Sigma; dR = R Phi(R^-1 dSigma R^-T)
        d_sigma = -(sigma @ d_curv[r] @ sigma)
        inner = chol_inv @ d_sigma @ chol_inv.T
        for a in range(q):
            inner[a, a] *= 0.5
            for b in range(a + 1, q):
                inner[a, b] = 0.0
        d_chol = chol @ inner
        for a in range(q):
            for b in range(a + 1):
                total += f_r[a, b] * d_chol[a, b]
        grad[r] += total
