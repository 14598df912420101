"""A vectorised numpy mirror of the one-factor quadrature kernel (:mod:`.chunk`) for one
random effect per cluster (q = 1), for a fit whose compiled kernel is not built yet.

:func:`run_clusters_vectorised` has the semantics of :func:`.chunk.run_clusters`: the same
Newton search for the mode (step halving, damping, stopping rule), the same mean-variance
fixed point and fallback, the same formulas for the derivatives and the grid's motion, the
same state updates. Clusters are processed together: the per-cluster iterations run on the
clusters still active, sums over a cluster's rows are ``np.bincount`` in row order. The
family is reached through the small compiled row kernels of :mod:`mixedglm.families.rows`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mixedglm.engines.aghq.chunk import _MEANVAR_MAXIT
from mixedglm.engines.aghq.cluster import (
    _MODE_TOL,
    CURV_FISHER,
    Data,
    Flags,
    Grid,
    Out,
    State,
)
from mixedglm.engines.aghq.vectorised_basics import (
    Clusters,
    all_clusters,
    chol_1,
    family_derivs,
    family_fisher,
    is_meanvar,
    running_max,
    spd_inverse_1,
)
from mixedglm.engines.aghq.vectorised_derivs import ModeFit, OnGrid, cluster_derivatives


class GridValues(NamedTuple):
    """Every cluster's grid: nodes ``u`` ``(G, K)``, log integrand terms ``(G, K)``, their
    log-sum-exp ``(G,)``, and the first two eta-derivatives at every (node, row) ``(K, N)``."""

    u_nodes: np.ndarray
    log_terms: np.ndarray
    lse: np.ndarray
    d1s: np.ndarray
    d2s: np.ndarray

    def take(self, c: Clusters, keep: np.ndarray) -> tuple[Clusters, GridValues]:
        """The clusters of ``c`` (whose values these are) where ``keep``, with their values."""
        rows = keep[c.local]
        values = GridValues(
            self.u_nodes[keep], self.log_terms[keep], self.lse[keep], self.d1s[:, rows],
            self.d2s[:, rows],
        )  # fmt: skip
        return c.subset(keep), values

    def store(self, c: Clusters, values: GridValues) -> None:
        """Copy the values of the clusters ``c`` (computed on them alone) into these."""
        self.u_nodes[c.ids] = values.u_nodes
        self.log_terms[c.ids] = values.log_terms
        self.lse[c.ids] = values.lse
        self.d1s[:, c.rows] = values.d1s
        self.d2s[:, c.rows] = values.d2s


# --------------------------------------------------------------------------------------------
# mode and curvature


class _Newton(NamedTuple):
    """The mode search's per-cluster state (cluster.find_mode's locals)."""

    u: np.ndarray
    u_prev: np.ndarray
    delta: np.ndarray
    neg_hess: np.ndarray
    h_prev: np.ndarray
    step: np.ndarray


def _newton_values(fam, d: Data, c: Clusters, u: np.ndarray):
    """h(u), h'(u) and -h''(u) of each cluster of ``c``."""
    l0, d1, d2, _ = family_derivs(fam, c, c.eta(u)[None, :], d.aux)
    h = c.sums(l0[0], -(0.5 * u * u))
    grad = c.sums(d1[0] * c.w, -u)
    neg_hess = c.sums(-(d2[0] * c.w * c.w), 1.0)
    return h, grad, neg_hess


def _damped_chol(neg_hess: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """find_mode's damping of a curvature that is not positive: the Cholesky factor of
    -h'' + tau I, -h'' after its in-place shifts and back, and whether a tau was found."""
    tau = np.maximum(1e-3, 1e-3 * np.abs(neg_hess))
    chol = np.zeros_like(neg_hess)
    trying = np.ones(neg_hess.shape[0], dtype=bool)
    for _ in range(60):
        shifted = neg_hess[trying] + tau[trying]
        ok = shifted > 0.0
        chol[np.flatnonzero(trying)[ok]] = np.sqrt(shifted[ok])
        neg_hess[trying] = shifted - tau[trying]
        tau[trying] = np.where(ok, tau[trying], tau[trying] * 4.0)
        trying[np.flatnonzero(trying)[ok]] = False
        if not trying.any():
            break
    return chol, neg_hess, ~trying


def find_modes(fam, d: Data, c: Clusters, u0: np.ndarray) -> tuple[np.ndarray, ...]:
    """cluster.find_mode for every cluster of ``c`` from ``u0``: the modes, -h'' there and
    whether each was found."""
    n = c.n
    s = _Newton(u0.copy(), np.zeros(n), np.zeros(n), np.zeros(n), np.full(n, -np.inf), np.ones(n))
    found = np.zeros(n, dtype=bool)
    active = np.ones(n, dtype=bool)
    for _ in range(200):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        sub = c if idx.size == n else c.subset(active)
        u = s.u[idx]
        h, grad, neg_hess = _newton_values(fam, d, sub, u)
        h_prev = s.h_prev[idx]
        back = ~(h >= h_prev - 1e-13 * np.abs(h_prev)) & (s.step[idx] > 1e-10)
        # the last step went downhill: back up
        b = idx[back]
        s.step[b] *= 0.5
        s.u[b] = s.u_prev[b] + s.step[b] * s.delta[b]
        s.neg_hess[b] = neg_hess[back]
        go = ~back
        idx, h, grad, neg_hess = idx[go], h[go], grad[go], neg_hess[go]
        damped = ~(neg_hess > 0.0)
        chol = chol_1(neg_hess)
        if damped.any():
            chol_d, neg_hess_d, ok = _damped_chol(neg_hess[damped])
            chol[damped] = chol_d
            neg_hess[damped] = neg_hess_d
            failed = np.flatnonzero(damped)[~ok]
            active[idx[failed]] = False  # no shift makes -h'' positive: no mode
            s.neg_hess[idx[failed]] = neg_hess[failed]
            keep = np.ones(idx.size, dtype=bool)
            keep[failed] = False
            idx, h, grad, neg_hess, chol = (v[keep] for v in (idx, h, grad, neg_hess, chol))
            damped = damped[keep]
        s.neg_hess[idx] = neg_hess
        chol_inv = 1.0 / chol
        v = chol_inv * grad
        decrement = v * v
        s.delta[idx] = chol_inv * chol_inv * grad
        done = (decrement < _MODE_TOL * _MODE_TOL) & ~damped
        found[idx[done]] = True
        active[idx[done]] = False
        move = idx[~done]
        s.h_prev[move] = h[~done]
        s.step[move] = 1.0
        s.u_prev[move] = s.u[move]
        s.u[move] = s.u[move] + s.delta[move]
    return s.u, s.neg_hess, found


def mode_and_curvature(fam, d: Data, fl: Flags, st: State, c: Clusters) -> ModeFit:
    """chunk._mode_and_curvature for the clusters ``c``: modes warm-started from (and
    stored into) ``st.modes``, -h'' there, the inverse curvature, whether found."""
    m, neg_hess, found = find_modes(fam, d, c, st.modes[c.ids, 0].copy())
    st.modes[c.ids, 0] = m
    if fl.curvature == CURV_FISHER:
        fw, _ = family_fisher(fam, c, c.eta(m)[None, :])
        sigma = spd_inverse_1(c.sums(fw[0] * c.w * c.w, 1.0))
    else:
        sigma = spd_inverse_1(neg_hess)
    return ModeFit(m, neg_hess, sigma, found)


# --------------------------------------------------------------------------------------------
# grids


def grid_values(
    fam, d: Data, g: Grid, c: Clusters, centre: np.ndarray, chol: np.ndarray
) -> GridValues:
    """cluster.grid_values for the clusters ``c`` on the grids ``centre + chol t_k``."""
    nodes = g.nodes[:, 0]
    u_nodes = centre[:, None] + chol[:, None] * nodes[None, :]
    eta = c.xb[None, :] + c.w[None, :] * u_nodes[c.local].T
    l0, d1, d2, _ = family_derivs(fam, c, np.ascontiguousarray(eta), d.aux)
    h = c.block_sums(l0, -(0.5 * u_nodes * u_nodes).T)
    log_terms = g.logw_adj[None, :] + h.T
    top = np.full(c.n, -np.inf)
    for k in range(nodes.shape[0]):
        top = np.where(log_terms[:, k] > top, log_terms[:, k], top)
    acc = np.zeros(c.n)
    for k in range(nodes.shape[0]):
        acc += np.exp(log_terms[:, k] - top)
    return GridValues(u_nodes, log_terms, top + np.log(acc), d1, d2)


def moments(
    u_nodes: np.ndarray, log_terms: np.ndarray, lse: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cluster.moments_into: posterior weights ``(G, K)``, means and variances ``(G,)``."""
    post = np.exp(log_terms - lse[:, None])
    mean = np.zeros(lse.shape[0])
    for k in range(u_nodes.shape[1]):
        mean += post[:, k] * u_nodes[:, k]
    var = np.zeros(lse.shape[0])
    for k in range(u_nodes.shape[1]):
        dev = u_nodes[:, k] - mean
        var += post[:, k] * dev * dev
    return post, mean, var


def meanvar_grids(
    fam, d: Data, g: Grid, c: Clusters, centre: np.ndarray, chol: np.ndarray, tol: float,
    out: GridValues,
) -> np.ndarray:  # fmt: skip
    """chunk._meanvar_grid for every cluster: iterate ``centre``, ``chol`` (in place) to
    the posterior mean and SD computed on the grid; the values on the final grids go to
    ``out``. Returns whether each cluster reached the fixed point."""
    converged = np.zeros(c.n, dtype=bool)
    idx = np.arange(c.n)  # the clusters still iterating, ``sub`` with their rows
    sub = c
    for _ in range(_MEANVAR_MAXIT):
        values = grid_values(fam, d, g, sub, centre[idx], chol[idx])
        _, mean, var = moments(values.u_nodes, values.log_terms, values.lse)
        positive = var > 0.0
        new_chol = chol_1(var)
        change = running_max(np.zeros(idx.size), np.abs(mean - centre[idx]) / new_chol)
        change = running_max(change, np.abs(new_chol - chol[idx]) / new_chol)
        done = positive & (change < tol)
        converged[idx[done]] = True
        move = positive & ~done
        centre[idx[move]] = mean[move]
        chol[idx[move]] = new_chol[move]
        if move.all():
            continue
        out.store(*values.take(sub, ~move))  # the values of the clusters that stop here
        if not move.any():
            break
        sub, idx = sub.subset(move), idx[move]  # (a few clusters iterate 60 times)
    return converged


def _empty_grid(n_clusters: int, n_nodes: int, n_rows: int) -> GridValues:
    return GridValues(
        np.empty((n_clusters, n_nodes)), np.empty((n_clusters, n_nodes)), np.empty(n_clusters),
        np.empty((n_nodes, n_rows)), np.empty((n_nodes, n_rows)),
    )  # fmt: skip


def _place_grids(
    fam, d: Data, g: Grid, fl: Flags, st: State, c: Clusters
) -> tuple[np.ndarray, np.ndarray, np.ndarray, ModeFit | None, GridValues]:
    """chunk._place_grid for every cluster: the statuses, grid centres and scales, the mode
    fit (None if no mode was searched) and the values on the grids."""
    meanvar = is_meanvar(fl, g)
    status = np.zeros(c.n, dtype=np.int64)
    fit = None
    if meanvar and fl.warm:
        centre = st.grid_m[:, 0].copy()
        chol = st.grid_r[:, 0, 0].copy()
    else:
        fit = mode_and_curvature(fam, d, fl, st, c)
        status[~fit.found] = 1
        centre = fit.m.copy()
        chol = chol_1(fit.sigma)
    if not meanvar:
        return status, centre, chol, fit, grid_values(fam, d, g, c, centre, chol)
    values = _empty_grid(c.n, g.nodes.shape[0], c.rows.shape[0])
    failed = ~meanvar_grids(fam, d, g, c, centre, chol, fl.tolerance, values)
    if failed.any():  # no fixed point: fall back to the mode-curvature grid
        status[failed] = 2
        sub = c.subset(failed)
        fallback = mode_and_curvature(fam, d, fl, st, sub)
        centre[failed] = fallback.m
        chol[failed] = chol_1(fallback.sigma)
        values.store(sub, grid_values(fam, d, g, sub, centre[failed], chol[failed]))
    return status, centre, chol, fit, values


def run_clusters_vectorised(fam, d: Data, g: Grid, fl: Flags, st: State, n_par: int) -> Out:
    """What :func:`.chunk.run_clusters` returns (and writes into ``st``), for q = 1, computed
    by numpy over all clusters at once; the Hessian sum is in ``hess[0]``."""
    if g.nodes.shape[1] != 1:
        q = g.nodes.shape[1]
        raise ValueError(f"the vectorised quadrature is for one random effect, not {q}")
    with np.errstate(all="ignore"):  # as the compiled kernels (numpy's error model, quiet)
        return _run(fam, d, g, fl, st, n_par)


def _run(fam, d: Data, g: Grid, fl: Flags, st: State, n_par: int) -> Out:
    c = all_clusters(d)
    status, centre, chol, fit, values = _place_grids(fam, d, g, fl, st, c)
    st.grid_m[:, 0] = centre
    st.grid_r[:, 0, 0] = chol
    cw = d.cwts if d.cwts.shape[0] > 0 else np.ones(c.n)
    ll = cw * (np.log(chol) + values.lse + d.const)
    post, mean, var = moments(values.u_nodes, values.log_terms, values.lse)
    grad = np.zeros((c.n, n_par if fl.order >= 1 else 0))
    hess = np.zeros((1, n_par, n_par) if fl.order >= 2 else (1, 0, 0))
    if fl.order >= 1:
        on_grid = OnGrid(values.u_nodes, post, values.d1s, values.d2s, chol)
        scores, per_cluster = cluster_derivatives(fam, d, g, fl, c, on_grid, fit, status)
        grad[:] = cw[:, None] * scores
        if per_cluster is not None:
            hess[0] = total_hessian(per_cluster, cw)
    return Out(ll, grad, hess, mean[:, None], var[:, None, None], status)


def total_hessian(per_cluster: np.ndarray, cw: np.ndarray) -> np.ndarray:
    """``sum_i cw_i H_i`` added cluster by cluster, as the compiled loop does."""
    n_clusters, n_par, _ = per_cluster.shape
    flat = (cw[:, None] * per_cluster.reshape(n_clusters, -1)).ravel()
    bins = np.tile(np.arange(n_par * n_par), n_clusters)
    return np.bincount(bins, weights=flat, minlength=n_par * n_par).reshape(n_par, n_par)
