"""Fixed-grid derivatives of one cluster's log-likelihood: the gradient is the posterior
mean of the complete-data scores, the Hessian follows Louis' identity.

Parameters are ordered ``[beta (p), theta (n_theta), aux (n_aux)]`` with
``Lambda = sum_l theta_l E_l`` linear in ``theta``.
"""

from __future__ import annotations

import numpy as np

from mixedglm.engines.aghq.cluster import Data, Grid, eta_at, obs_aux_derivs
from mixedglm.jit import kernel


@kernel
def fixed_grid_derivatives(
    fam,
    d: Data,
    g: Grid,
    s: int,
    e: int,
    order: int,
    u_nodes: np.ndarray,
    post: np.ndarray,
    d1s: np.ndarray,
    d2s: np.ndarray,
    scores: np.ndarray,
    zs: np.ndarray,
    grad: np.ndarray,
    hess: np.ndarray,
    aux_scratch: tuple,
) -> None:
    """Fixed-grid gradient (posterior mean of the complete-data scores) and, for order 2,
    the Louis Hessian. ``scores`` (K, P) and ``zs`` (K, q) are left filled (the grid-motion
    term uses ``zs``)."""
    X, Z = d.X, d.Z
    nodes, E, aux = g.nodes, g.E, d.aux
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
                eta = eta_at(d, j, u_nodes[k])
                obs_aux_derivs(fam, d, j, eta, l_a, l_ea, l_eea, l_aa)
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
