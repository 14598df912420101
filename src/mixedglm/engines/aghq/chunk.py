"""Clusters, chunks and threads: the compiled loop over clusters of adaptive quadrature.

For each cluster: (1) the mode and curvature of the integrand, (2) the grid (at the mode
with the inverse curvature, or iterated to the posterior mean and covariance), (3) the
log-likelihood and posterior moments on it, (4) on request the fixed-grid derivatives plus
the derivative of the grid's movement. Threads take chunks of clusters of about equal cost.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from mixedglm.compile_cache import compile_in_background as background
from mixedglm.compile_cache import ready
from mixedglm.engines.aghq.cluster import (
    CURV_FISHER,
    RULE_MEANVAR,
    RULE_MODE,
    Data,
    Flags,
    Grid,
    Out,
    State,
    find_mode,
    fisher_curvature,
    grid_values,
    moments_into,
)
from mixedglm.engines.aghq.derivatives import fixed_grid_derivatives
from mixedglm.engines.aghq.linalg import chol_into, spd_inverse_into
from mixedglm.engines.aghq.motion import meanvar_motion, mode_grid_motion
from mixedglm.engines.parallel import cost_chunks, run_chunks, use_threads
from mixedglm.jit import kernel

_MEANVAR_MAXIT = 200


class Scratch(NamedTuple):
    """Work arrays one chunk shares between its clusters."""

    u_nodes: np.ndarray
    log_terms: np.ndarray
    d1s: np.ndarray
    d2s: np.ndarray
    post: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    m: np.ndarray
    neg_hess: np.ndarray
    sigma: np.ndarray
    centre: np.ndarray
    chol: np.ndarray
    new_chol: np.ndarray
    work: np.ndarray
    work2: np.ndarray
    scores: np.ndarray
    zs: np.ndarray
    grad: np.ndarray
    hess: np.ndarray


@kernel(inline=True)
def _mode_and_curvature(
    fam, d: Data, fl: Flags, i: int, s: int, e: int, w: Scratch, mode_ws, st: State
) -> bool:
    """The mode of cluster ``i`` (warm-started) into ``w.m``, ``w.neg_hess`` = -h''(m) and
    ``w.sigma`` = the inverse curvature (observed or Fisher). False if no mode was found."""
    for a in range(w.m.shape[0]):
        w.m[a] = st.modes[i, a]
    ok = find_mode(fam, d, s, e, w.m, w.neg_hess, mode_ws)
    for a in range(w.m.shape[0]):
        st.modes[i, a] = w.m[a]
    if fl.curvature == CURV_FISHER:
        fisher_curvature(fam, d, s, e, w.m, w.new_chol)  # new_chol: free here
        spd_inverse_into(w.new_chol, w.work, w.work2, w.sigma)
    else:
        spd_inverse_into(w.neg_hess, w.work, w.work2, w.sigma)
    return ok


@kernel(inline=True)
def _copy_grid(m: np.ndarray, r: np.ndarray, m_out: np.ndarray, r_out: np.ndarray) -> None:
    for a in range(m.shape[0]):
        m_out[a] = m[a]
        for b in range(m.shape[0]):
            r_out[a, b] = r[a, b]


@kernel(inline=True)
def _meanvar_grid(
    fam, d: Data, g: Grid, s: int, e: int, w: Scratch, tolerance: float
) -> tuple[bool, float]:
    """Iterate the grid from ``w.centre``/``w.chol`` to the posterior mean and covariance
    computed on it; True (and the values on the final grid) at the fixed point: every
    entry moves by less than ``tolerance`` posterior SDs."""
    q = w.m.shape[0]
    lse = 0.0
    for _ in range(_MEANVAR_MAXIT):
        lse = grid_values(fam, d, s, e, w.centre, w.chol, g, w.u_nodes, w.log_terms, w.d1s, w.d2s)
        moments_into(w.u_nodes, w.log_terms, lse, w.post, w.mean, w.cov)
        if not chol_into(w.cov, w.new_chol):
            return False, lse
        change = 0.0
        for a in range(q):
            scale = w.new_chol[a, a]
            change = max(change, abs(w.mean[a] - w.centre[a]) / scale)
            for b in range(a + 1):
                change = max(change, abs(w.new_chol[a, b] - w.chol[a, b]) / scale)
        if change < tolerance:
            return True, lse
        _copy_grid(w.mean, w.new_chol, w.centre, w.chol)
    return False, lse


@kernel(inline=True)
def _place_grid(
    fam, d: Data, g: Grid, fl: Flags, st: State, i: int, s: int, e: int, w: Scratch, mode_ws
) -> tuple[int, float]:
    """Place cluster ``i``'s grid and evaluate the integrand on it: returns the status and
    log sum_k exp(term_k); ``w.centre``, ``w.chol`` hold the grid."""
    q = w.m.shape[0]
    meanvar = fl.rule == RULE_MEANVAR and g.nodes.shape[0] > 1
    status = 0
    if meanvar and fl.warm:
        for a in range(q):
            w.centre[a] = st.grid_m[i, a]
            for b in range(q):
                w.chol[a, b] = st.grid_r[i, a, b]
    else:
        if not _mode_and_curvature(fam, d, fl, i, s, e, w, mode_ws, st):
            status = 1
        for a in range(q):
            w.centre[a] = w.m[a]
        chol_into(w.sigma, w.chol)
    if meanvar:
        converged, lse = _meanvar_grid(fam, d, g, s, e, w, fl.tolerance)
        if converged:
            return status, lse
        # no fixed point: fall back to the mode-curvature grid for this cluster
        status = 2
        _mode_and_curvature(fam, d, fl, i, s, e, w, mode_ws, st)
        for a in range(q):
            w.centre[a] = w.m[a]
        chol_into(w.sigma, w.chol)
    lse = grid_values(fam, d, s, e, w.centre, w.chol, g, w.u_nodes, w.log_terms, w.d1s, w.d2s)
    return status, lse


@kernel(nogil=True)
def chunk(
    fam, d: Data, g: Grid, fl: Flags, st: State, out: Out, g0: int, g1: int, slot: int
) -> None:
    """Clusters ``g0 .. g1 - 1``; their Hessians are summed into ``out.hess[slot]``."""
    n_nodes, q = g.nodes.shape
    p = d.X.shape[1]
    n_theta = g.E.shape[0]
    n_par = p + n_theta + d.aux.shape[0]
    max_n = 1
    for i in range(g0, g1):
        max_n = max(max_n, d.starts[i + 1] - d.starts[i])
    w = Scratch(
        np.empty((n_nodes, q)), np.empty(n_nodes), np.empty((n_nodes, max_n)),
        np.empty((n_nodes, max_n)), np.empty(n_nodes), np.empty(q), np.empty((q, q)),
        np.empty(q), np.empty((q, q)), np.empty((q, q)), np.empty(q), np.empty((q, q)),
        np.empty((q, q)), np.empty((q, q)), np.empty((q, q)), np.empty((n_nodes, n_par)),
        np.empty((n_nodes, q)), np.empty(n_par), np.empty((n_par, n_par)),
    )  # fmt: skip
    mode_ws = (np.empty(q), np.empty(q), np.empty(q), np.empty((q, q)), np.empty((q, q)))
    n_aux = d.aux.shape[0]
    aux_n = max_n if n_aux > 0 else 0
    aux_scratch = (
        np.zeros((aux_n, n_nodes, n_aux)), np.zeros((aux_n, n_nodes, n_aux)),
        np.zeros((aux_n, n_nodes, n_aux, n_aux)), np.zeros(n_aux), np.zeros(n_aux),
        np.zeros(n_aux), np.zeros((n_aux, n_aux)), np.zeros(n_theta), np.zeros(n_theta),
        np.zeros(n_aux),
    )  # fmt: skip
    meanvar = fl.rule == RULE_MEANVAR and n_nodes > 1
    for i in range(g0, g1):
        s = d.starts[i]
        e = d.starts[i + 1]
        status, lse = _place_grid(fam, d, g, fl, st, i, s, e, w, mode_ws)
        out.status[i] = status
        cw = d.cwts[i] if d.cwts.shape[0] > 0 else 1.0
        log_det = 0.0
        for a in range(q):
            st.grid_m[i, a] = w.centre[a]
            log_det += math.log(w.chol[a, a])
            for b in range(q):
                st.grid_r[i, a, b] = w.chol[a, b]
        out.ll[i] = cw * (log_det + lse + d.const[i])
        moments_into(w.u_nodes, w.log_terms, lse, w.post, w.mean, w.cov)
        for a in range(q):
            out.post_mean[i, a] = w.mean[a]
            for b in range(q):
                out.post_cov[i, a, b] = w.cov[a, b]
        if fl.order == 0:
            continue
        fixed_grid_derivatives(
            fam, d, g, s, e, fl.order, w.u_nodes, w.post, w.d1s, w.d2s, w.scores, w.zs,
            w.grad, w.hess, aux_scratch,
        )  # fmt: skip
        if fl.exact and fl.rule == RULE_MODE:
            mode_grid_motion(
                w.grad, w.m, w.neg_hess, w.sigma, w.chol, w.u_nodes, w.post, w.zs, s, e,
                fam, d, g, fl.curvature,
            )  # fmt: skip
        elif fl.exact and meanvar and status == 0:
            meanvar_motion(w.grad, w.chol, g.nodes, w.u_nodes, w.post, w.scores, w.zs, g.lam)
        for r in range(n_par):
            out.grad[i, r] = cw * w.grad[r]
        if fl.order >= 2:
            for r in range(n_par):
                for c in range(n_par):
                    out.hess[slot, r, c] += cw * w.hess[r, c]


def run_clusters(fam, d: Data, g: Grid, fl: Flags, st: State, n_par: int) -> Out:
    """Every cluster's log-likelihood and (by ``fl.order``) score and Hessian sums.

    Threads share chunks of clusters of about equal cost when the work is large enough.
    """
    n_clusters = d.starts.shape[0] - 1
    q = g.nodes.shape[1]
    cost = np.diff(d.starts).astype(np.float64) * g.nodes.shape[0]
    bounds = cost_chunks(cost) if use_threads(cost) else np.array([0, n_clusters], np.int64)
    out = _new_out(n_clusters, n_par, bounds.shape[0] - 1, q, fl.order)
    run_chunks(lambda lo, hi, slot: chunk(fam, d, g, fl, st, out, lo, hi, slot), bounds)
    return out


def _new_out(n_clusters: int, n_par: int, n_slots: int, q: int, order: int) -> Out:
    return Out(
        np.empty(n_clusters),
        np.zeros((n_clusters, n_par if order >= 1 else 0)),
        np.zeros((n_slots, n_par, n_par) if order >= 2 else (1, 0, 0)),
        np.empty((n_clusters, q)),
        np.empty((n_clusters, q, q)),
        np.zeros(n_clusters, dtype=np.int64),
    )


def _chunk_args(fam, d: Data, g: Grid, fl: Flags, st: State, n_par: int) -> tuple:
    """Arguments of the types ``chunk`` is called with by :func:`run_clusters`."""
    return (fam, d, g, fl, st, _new_out(0, n_par, 1, g.nodes.shape[1], fl.order), 0, 0, 0)


def compiled(fam, d: Data, g: Grid, fl: Flags, st: State, n_par: int) -> bool:
    """Whether :func:`run_clusters` can run on these arguments without compiling ``chunk``
    (compiled in this process, or loaded now from the cache)."""
    return ready(chunk, _chunk_args(fam, d, g, fl, st, n_par))


def compile_in_background(fam, d: Data, g: Grid, fl: Flags, st: State, n_par: int) -> object:
    """Start compiling ``chunk`` for these arguments in a separate process (see
    :func:`mixedglm.compile_cache.compile_in_background`)."""
    return background(chunk, _chunk_args(fam, d, g, fl, st, n_par), keep=(fam,))
