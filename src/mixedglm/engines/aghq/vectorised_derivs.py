"""Derivatives for the vectorised one-factor quadrature (q = 1), every cluster at once: the
fixed-grid scores and Louis Hessian (as :func:`.derivatives.fixed_grid_derivatives`) and the
grid's motion (as :func:`.motion.mode_grid_motion` and :func:`.motion.meanvar_motion`).

Parameters are ordered ``[beta (p), theta (n_theta), aux (n_aux)]``; with q = 1,
``Lambda = sum_l theta_l E_l`` is a scalar.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mixedglm.engines.aghq.cluster import CURV_FISHER, RULE_MODE, Data, Flags, Grid
from mixedglm.engines.aghq.vectorised_basics import (
    Clusters,
    family_aux_derivs,
    family_derivs,
    family_fisher,
    is_meanvar,
    spd_inverse_1,
)


class ModeFit(NamedTuple):
    """Each cluster's mode ``m``, ``neg_hess`` = -h''(m), the inverse curvature ``sigma``
    (observed or Fisher) and whether the mode was found."""

    m: np.ndarray
    neg_hess: np.ndarray
    sigma: np.ndarray
    found: np.ndarray


class OnGrid(NamedTuple):
    """The final grids: nodes ``u_nodes`` and posterior weights ``post`` ``(G, K)``, the
    eta-derivatives ``d1s``, ``d2s`` ``(K, N)`` and the grids' scales ``chol`` ``(G,)``."""

    u_nodes: np.ndarray
    post: np.ndarray
    d1s: np.ndarray
    d2s: np.ndarray
    chol: np.ndarray


class _Layout(NamedTuple):
    p: int
    n_theta: int
    n_aux: int

    @property
    def n_par(self) -> int:
        return self.p + self.n_theta + self.n_aux


def _over_nodes(post: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``sum_k post_k values_k`` node by node; ``values`` ``(G, K, ...)``."""
    total = np.zeros(values.shape[:1] + values.shape[2:])
    extra = (slice(None),) + (None,) * (values.ndim - 2)
    for k in range(post.shape[1]):
        total += post[:, k][extra] * values[:, k]
    return total


def _node_sum(values: np.ndarray) -> np.ndarray:
    """``sum_k values[:, k]`` node by node (``values`` ``(N, K)``)."""
    total = np.zeros(values.shape[0])
    for k in range(values.shape[1]):
        total += values[:, k]
    return total


def _node_aux(fam, d: Data, c: Clusters, u_nodes: np.ndarray, n_aux: int):
    """The weighted aux derivatives at every (node, row) ``(K, N, ...)``, or Nones."""
    if n_aux == 0:
        return None, None, None
    eta = np.ascontiguousarray(c.xb[None, :] + c.w[None, :] * u_nodes[c.local].T)
    l_a, l_ea, _, l_aa = family_aux_derivs(fam, c, eta, d.aux)
    return l_a, l_ea, l_aa


def _scores(
    d: Data, g: Grid, c: Clusters, lay: _Layout, on: OnGrid, las: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The complete-data scores at every node ``(G, K, P)`` and ``zs`` = sum_j d1 z_j
    ``(G, K)``."""
    n_nodes = on.u_nodes.shape[1]
    p, n_theta = lay.p, lay.n_theta
    scores = np.empty((c.n, n_nodes, lay.n_par))
    zs = np.empty((c.n, n_nodes))
    z = d.Z[:, 0]
    for k in range(n_nodes):
        d1 = on.d1s[k]
        scores[:, k, :p] = c.column_sums(d1[:, None] * d.X)
        zs[:, k] = c.sums(d1 * z)
        for a in range(lay.n_aux):
            assert las is not None
            scores[:, k, p + n_theta + a] = c.sums(las[k, :, a])
        for t in range(n_theta):
            scores[:, k, p + t] = zs[:, k] * g.E[t, 0, 0] * on.u_nodes[:, k]
    return scores, zs


def _louis_hessian(
    d: Data, g: Grid, c: Clusters, lay: _Layout, on: OnGrid, scores: np.ndarray,
    grad: np.ndarray, aux: tuple,
) -> np.ndarray:  # fmt: skip
    """Every cluster's fixed-grid Hessian ``(G, P, P)`` by Louis' identity, its terms added
    in the order of derivatives.fixed_grid_derivatives."""
    p, n_theta, n_par = lay.p, lay.n_theta, lay.n_par
    hess = np.zeros((c.n, n_par, n_par))
    for k in range(on.post.shape[1]):
        weighted = on.post[:, k, None] * scores[:, k, :]
        hess += weighted[:, :, None] * scores[:, k, None, :]
    hess -= grad[:, :, None] * grad[:, None, :]
    post = on.post[c.local]  # (N, K)
    bins = c.row_major_bins(post.shape[1])
    c2 = post * on.d2s.T
    zeta = [(d.Z[:, 0] * g.E[t, 0, 0])[:, None] * on.u_nodes[c.local] for t in range(n_theta)]
    x_theta = [_node_sum(c2 * zeta[t]) for t in range(n_theta)]
    for t in range(n_theta):
        for t2 in range(t + 1):
            term = c2 * zeta[t] * zeta[t2]
            hess[:, p + t, p + t2] = c.row_major_sums(term, hess[:, p + t, p + t2], bins)
    _, leas, laas = aux
    x_aux = []
    for a in range(lay.n_aux):
        row = p + n_theta + a
        ca = post * leas[:, :, a].T
        x_aux.append(_node_sum(ca))
        for t in range(n_theta):
            hess[:, row, p + t] = c.row_major_sums(ca * zeta[t], hess[:, row, p + t], bins)
        for b in range(a + 1):
            col = p + n_theta + b
            hess[:, row, col] = c.row_major_sums(post * laas[:, :, a, b].T, hess[:, row, col], bins)
    wd2 = _node_sum(c2)
    for r in range(p):
        x_r = d.X[:, r]
        for col in range(r + 1):
            hess[:, r, col] = c.sums(wd2 * x_r * d.X[:, col], hess[:, r, col])
        for t in range(n_theta):
            hess[:, p + t, r] = c.sums(x_theta[t] * x_r, hess[:, p + t, r])
        for a in range(lay.n_aux):
            row = p + n_theta + a
            hess[:, row, r] = c.sums(x_aux[a] * x_r, hess[:, row, r])
    lower = np.tril_indices(n_par, -1)
    hess[:, lower[1], lower[0]] = hess[:, lower[0], lower[1]]
    return hess


def cluster_derivatives(
    fam, d: Data, g: Grid, fl: Flags, c: Clusters, on: OnGrid, fit: ModeFit | None,
    status: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """Every cluster's score ``(G, P)`` (with the grid's motion when ``fl.exact``) and, for
    ``fl.order`` 2, its fixed-grid Hessian ``(G, P, P)``; ``c`` holds all rows."""
    lay = _Layout(d.X.shape[1], g.E.shape[0], d.aux.shape[0])
    aux = _node_aux(fam, d, c, on.u_nodes, lay.n_aux)
    scores, zs = _scores(d, g, c, lay, on, aux[0])
    grad = _over_nodes(on.post, scores)
    hess = _louis_hessian(d, g, c, lay, on, scores, grad, aux) if fl.order >= 2 else None
    if fl.exact and fl.rule == RULE_MODE:
        assert fit is not None  # the mode rule always searches the modes
        grad += mode_grid_motion(fam, d, g, fl.curvature, c, lay, on, zs, fit)
    elif fl.exact and is_meanvar(fl, g):
        ok = status == 0
        grad[ok] -= meanvar_motion(g, on, scores, zs)[ok]
    return grad, hess


# --------------------------------------------------------------------------------------------
# the grid's motion


def _grad_u(on: OnGrid, zs: np.ndarray, lam: float) -> np.ndarray:
    """grad_u h at every node ``(G, K)``: ``Lambda' zs - u``."""
    return -on.u_nodes + lam * zs


def mode_grid_motion(
    fam, d: Data, g: Grid, curvature: int, c: Clusters, lay: _Layout, on: OnGrid,
    zs: np.ndarray, fit: ModeFit,
) -> np.ndarray:  # fmt: skip
    """motion.mode_grid_motion for every cluster: the term ``(G, P)`` to add to the score."""
    p, n_theta, n_aux = lay.p, lay.n_theta, lay.n_aux
    nodes = g.nodes[:, 0]
    grad_u = _grad_u(on, zs, g.lam[0, 0])
    f_m = np.zeros(c.n)
    f_r = np.zeros(c.n)
    for k in range(nodes.shape[0]):
        f_m += on.post[:, k] * grad_u[:, k]
        f_r += on.post[:, k] * grad_u[:, k] * nodes[k]
    f_r += 1.0 / on.chol
    eta = c.eta(fit.m)[None, :]
    _, d1, d2, d3 = (v[0] for v in family_derivs(fam, c, eta, d.aux))
    if curvature == CURV_FISHER:
        fw, dfw = family_fisher(fam, c, eta)
        c1m, c2m = -fw[0], -dfw[0]
    else:
        c1m, c2m = d2, d3
    w, z, m_rows = c.w, d.Z[:, 0], fit.m[c.local]
    g_theta = np.zeros((c.n, lay.n_par))
    caux = np.zeros((c.rows.shape[0], n_aux))
    if n_aux > 0:
        _, l_ea, l_eea, _ = (v[0] for v in family_aux_derivs(fam, c, eta, d.aux))
        caux = l_eea
        for a in range(n_aux):
            g_theta[:, p + n_theta + a] = c.sums(l_ea[:, a] * w)
    zem = [z * g.E[t, 0, 0] * m_rows for t in range(n_theta)]
    ez = [g.E[t, 0, 0] * z for t in range(n_theta)]
    g_theta[:, :p] = c.column_sums((d2 * w)[:, None] * d.X)
    for t in range(n_theta):
        g_theta[:, p + t] = c.sums(d2 * zem[t] * w + d1 * ez[t])
    m_theta = spd_inverse_1(fit.neg_hess)[:, None] * g_theta
    chol_inv = 1.0 / on.chol
    motion = np.empty((c.n, lay.n_par))
    for r in range(lay.n_par):
        if r < p:
            delta = d.X[:, r] + w * m_theta[c.local, r]
        elif r < p + n_theta:
            delta = zem[r - p] + w * m_theta[c.local, r]
        else:
            delta = w * m_theta[c.local, r]
        coef = c2m * delta
        if r >= p + n_theta:
            coef = coef + caux[:, r - p - n_theta]
        if p <= r < p + n_theta:
            e_t = ez[r - p]
            both = np.stack([-(coef * w * w), -(c1m * (e_t * w + w * e_t))], axis=1)
            d_curv = c.row_major_sums(both)
        else:
            d_curv = c.sums(-(coef * w * w))
        # dSigma = -Sigma dH Sigma; dR = R Phi(R^-1 dSigma R^-T)
        inner = chol_inv * ((fit.sigma * d_curv) * fit.sigma) * chol_inv
        inner *= -0.5
        motion[:, r] = f_m * m_theta[:, r] + f_r * (on.chol * inner)
    return motion


def meanvar_motion(g: Grid, on: OnGrid, scores: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """motion.meanvar_motion for every cluster: the term ``(G, P)`` to subtract from the
    score (q = 1: the grid's parameters are its centre and scale)."""
    nodes = g.nodes[:, 0]
    grad_u = _grad_u(on, zs, g.lam[0, 0])
    g_nodes = np.stack([grad_u, grad_u * nodes[None, :]], axis=2)  # (G, K, 2)
    moments = np.stack([nodes, nodes * nodes], axis=1)  # (K, 2)
    g_bar = _over_nodes(on.post, g_nodes)
    s_bar = _over_nodes(on.post, scores)
    n_clusters = scores.shape[0]
    j_a_t = np.zeros((n_clusters, 2, 2))
    j_theta = np.zeros((n_clusters, 2, scores.shape[2]))
    for k in range(nodes.shape[0]):
        for e in range(2):
            weight = on.post[:, k] * moments[k, e]
            j_a_t[:, :, e] += weight[:, None] * (g_nodes[:, k, :] - g_bar)
            j_theta[:, e, :] += weight[:, None] * (scores[:, k, :] - s_bar)
    f_a = g_bar.copy()
    f_a[:, 1] += 1.0 / on.chol
    v0, v1 = _solve_2x2(j_a_t, f_a)
    return v0[:, None] * j_theta[:, 0, :] + v1[:, None] * j_theta[:, 1, :]


def _solve_2x2(a: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """linalg.solve_small for ``(G, 2, 2)`` systems: elimination with partial pivoting."""
    swap = np.abs(a[:, 1, 0]) > np.abs(a[:, 0, 0])
    a = np.where(swap[:, None, None], a[:, ::-1, :], a)
    x = np.where(swap[:, None], x[:, ::-1], x)
    f = a[:, 1, 0] / a[:, 0, 0]
    a11 = a[:, 1, 1] - f * a[:, 0, 1]
    x1 = (x[:, 1] - f * x[:, 0]) / a11
    x0 = (x[:, 0] - a[:, 0, 1] * x1) / a[:, 0, 0]
    return x0, x1
