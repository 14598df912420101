"""The derivative of the adaptive grid's movement, added to the fixed-grid gradient so that
the gradient is exact for any number of points.

* Mode-curvature grids (lme4, ``mcaghermite``, Laplace): the mode m solves h'(m) = 0 and the
  scale R = chol(H^-1) moves with the curvature H = -h''(m); implicit differentiation, with
  the third eta-derivative of the family for dH.
* Mean-variance grids (Stata's ``mvaghermite``): the grid (m, R) is the fixed point of the
  posterior moments computed on it; implicit differentiation of that fixed point.
"""

from __future__ import annotations

import numpy as np

from mixedglm.engines.aghq.cluster import (
    CURV_FISHER,
    Data,
    Grid,
    eta_at,
    obs_aux_derivs,
    obs_derivs,
    obs_fisher,
)
from mixedglm.engines.aghq.linalg import (
    inv_lower_into,
    matmul_into,
    solve_small,
    spd_inverse_into,
)
from mixedglm.jit import kernel


@kernel
def mode_grid_motion(
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
    fam,
    d: Data,
    g: Grid,
    curvature: int,
) -> None:
    """Add dF/dm * dm/dtheta + dF/dR * dR/dtheta to ``grad`` (mode-curvature grid).

    F(theta, m, R) is the cluster's log-likelihood on the grid m + R t_k. The mode m solves
    h'(m) = 0, so dm/dtheta = (-h'')^-1 d(h')/dtheta; R = chol(H^-1) moves with H = -h''(m)
    (or the Fisher curvature), whose total derivative involves the third derivative of l.
    """
    X, Z, W = d.X, d.Z, d.W
    nodes, E, lam, aux = g.nodes, g.E, g.lam, d.aux
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
        eta = eta_at(d, j, m)
        _, d1, d2, d3 = obs_derivs(fam, d, j, eta)
        if curvature == CURV_FISHER:
            fw, dfw = obs_fisher(fam, d, j, eta)
            c1m[jj] = -fw
            c2m[jj] = -dfw
        else:
            c1m[jj] = d2
            c2m[jj] = d3
        if n_aux > 0:
            obs_aux_derivs(fam, d, j, eta, l_a, l_ea, l_eea, l_aa)
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
    spd_inverse_into(neg_hess, work, work2, inv_neg_hess)
    m_theta = np.empty((q, n_par))
    matmul_into(inv_neg_hess, g_theta, m_theta)
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
    inv_lower_into(chol, chol_inv)
    chol_inv_t = np.empty((q, q))
    for a in range(q):
        for b in range(q):
            chol_inv_t[a, b] = chol_inv[b, a]
    tmp = np.empty((q, q))
    d_sigma = np.empty((q, q))
    inner = np.empty((q, q))
    d_chol = np.empty((q, q))
    for r in range(n_par):
        total = 0.0
        for a in range(q):
            total += f_m[a] * m_theta[a, r]
        # dSigma = -Sigma dH Sigma; dR = R Phi(R^-1 dSigma R^-T)
        matmul_into(sigma, d_curv[r], tmp)
        matmul_into(tmp, sigma, d_sigma)
        matmul_into(chol_inv, d_sigma, tmp)
        matmul_into(tmp, chol_inv_t, inner)
        for a in range(q):
            inner[a, a] *= -0.5
            for b in range(a):
                inner[a, b] = -inner[a, b]
            for b in range(a + 1, q):
                inner[a, b] = 0.0
        matmul_into(chol, inner, d_chol)
        for a in range(q):
            for b in range(a + 1):
                total += f_r[a, b] * d_chol[a, b]
        grad[r] += total


@kernel
def meanvar_motion(
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
    j_a_t = np.zeros((n_a, n_a))  # the Jacobian J_a, transposed
    j_theta = np.zeros((n_a, n_par))
    for k in range(n_nodes):
        for e in range(n_a):
            w = post[k] * mom[k, e]
            for f in range(n_a):
                j_a_t[f, e] += w * (g[k, f] - g_bar[f])
            for r in range(n_par):
                j_theta[e, r] += w * (scores[k, r] - s_bar[r])
    f_a = np.empty(n_a)
    for f in range(n_a):
        f_a[f] = g_bar[f]
    idx = q
    for c in range(q):
        for d in range(c + 1):
            if c == d:
                f_a[idx] += 1.0 / chol[c, c]
            idx += 1
    # v = J_a^-T F_a; correction_r = -v . J_theta[:, r]
    v = solve_small(j_a_t, f_a)
    for r in range(n_par):
        total = 0.0
        for e in range(n_a):
            total += v[e] * j_theta[e, r]
        grad[r] -= total
