"""The pieces of nested adaptive quadrature that act on one unit at one level: the records
the kernels share, the prior and row terms of ``h`` at a point, the grid's nodes and
moments, the derivative of the mean-variance grid's movement, and the warm starts. The
state machine that runs the levels is :mod:`mixedglm.engines.nested_kernels`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from mixedglm.engines.aghq.linalg import solve_in_place
from mixedglm.families.dispatch import aux_derivs, eta_derivs
from mixedglm.jit import kernel

MV_MAXIT = 100
MODE_TOL = 1e-10
MODE_MAXIT = 100


class NData(NamedTuple):
    """Rows sorted by unit at every level. ``xb`` ``(N,)``; ``X`` ``(N, p)``; ``W`` = Z Lambda
    ``(N, Q)``; ``ZE`` ``(N, T, Q)`` with ``ZE[j, t] = Z_j' E_t`` (d eta / d theta_t =
    ``ZE[j, t] . u``); ``y``, ``ntr`` ``(N,)``; ``aux``."""

    xb: np.ndarray
    X: np.ndarray
    W: np.ndarray
    ZE: np.ndarray
    y: np.ndarray
    ntr: np.ndarray
    aux: np.ndarray


class Tree(NamedTuple):
    """Units and grids per level (flat arrays with per-level offsets).

    Unit ``w`` of level ``d`` holds rows ``ustart[uoff[d] + w] .. ustart[uoff[d] + w + 1]``
    and (``d < D - 1``) the level-``d+1`` units ``cstart[coff[d] + w] .. + 1``; ``qoff``
    ``(D + 1,)``; ``nodes`` ``(D, K, q)`` and ``logw`` (log weights + t't/2) of each level's
    rule, ``nk`` their sizes; ``spath`` the number of stored warm starts per unit (one per
    path of ancestors' nodes, or one); ``tol`` how closely a grid must sit at its
    mean-variance fixed point (posterior SDs: the rule's tolerance); ``mc`` 1 for
    mode-curvature grids (``mcaghermite``: at the mode, no mean-variance iteration), else 0."""

    ustart: np.ndarray
    uoff: np.ndarray
    cstart: np.ndarray
    coff: np.ndarray
    qoff: np.ndarray
    nodes: np.ndarray
    logw: np.ndarray
    nk: np.ndarray
    spath: np.ndarray
    tol: float
    mc: int


class Warm(NamedTuple):
    """Grids kept between calls (warm starts only) and, on request, node posteriors.

    ``gm``/``gr``: flat, level ``d`` unit ``w`` stored path ``s`` at
    ``(goff[d] + w * spath[d] + s)`` times ``qmax`` / ``qmax**2``; ``valid`` flags them.
    ``pw``: node posterior weights ``(pwoff[d] + (w * npath[d] + path) * K + k)``, or empty.
    ``pm``/``pc``: the conditional posterior mean and covariance for the same index without
    ``k`` (times ``qmax``, ``qmax**2``), or empty. ``wp`` (``slot * K + k``) and ``wl``
    (``slot``): each stored grid's node posteriors and log sum, so that a parent's derivative
    pass, whose children's contexts are those of its last pass, need not place their grids
    again (empty: always placed)."""

    gm: np.ndarray
    gr: np.ndarray
    valid: np.ndarray
    goff: np.ndarray
    pw: np.ndarray
    pm: np.ndarray
    pc: np.ndarray
    pwoff: np.ndarray
    npath: np.ndarray
    wp: np.ndarray
    wl: np.ndarray


class Scratch(NamedTuple):
    """Per-level work arrays of one thread (level ``d`` uses row ``d`` only; of the
    ``(q, q)`` arrays, sized for the largest level's ``q``, a level with fewer effects uses
    the leading block, and factorises that block alone)."""

    up: np.ndarray  # (Q,) the current path of node values
    lt: np.ndarray  # (D, K) log terms
    post: np.ndarray  # (D, K)
    sc: np.ndarray  # (D, K, E) node scores
    hg: np.ndarray  # (D, E) gradient of h at a point
    hh: np.ndarray  # (D, E, E)
    ug: np.ndarray  # (D, E) gradient of a unit's l
    uh: np.ndarray  # (D, E, E)
    hacc: np.ndarray  # (D, E, E)
    centre: np.ndarray  # (D, q)
    chol: np.ndarray  # (D, q, q)
    mean: np.ndarray  # (D, q)
    cov: np.ndarray  # (D, q, q)
    newchol: np.ndarray  # (D, q, q)
    sq1: np.ndarray  # (D, q, q)
    sq2: np.ndarray  # (D, q, q)
    sq3: np.ndarray  # (D, q, q)
    v1: np.ndarray  # (D, q)
    v2: np.ndarray  # (D, q)
    xt: np.ndarray  # (E,) one row's eta-derivatives
    la: np.ndarray  # (4, n_aux): l_a, l_ea, l_eea, scratch
    laa: np.ndarray  # (n_aux, n_aux)
    status: np.ndarray  # (1,)
    mg: np.ndarray  # (K, A) the grid motion's node scores (A = q + q (q + 1) / 2)
    mmom: np.ndarray  # (K, A) and node moments
    mvec: np.ndarray  # (A,)
    mja: np.ndarray  # (A, A)
    mjth: np.ndarray  # (A, E)
    nv: np.ndarray  # (K, q) a leaf's own node values
    rt: np.ndarray  # (3, T) one row's theta columns: ancestors' part, at a node, weighted sum
    rtt: np.ndarray  # (T, T) weighted sum of their products
    ra: np.ndarray  # (n_aux, T + 1) weighted sums of l_ea times the theta columns, and of l_ea
    raa: np.ndarray  # (n_aux, n_aux) weighted sum of l_aa


@kernel(inline=True)
def n_par(nd: NData) -> int:
    return nd.X.shape[1] + nd.ZE.shape[1] + nd.aux.shape[0]


@kernel(inline=True)
def h_init(d: int, tr: Tree, s: Scratch, p_all: int, order: int, r0: int) -> float:
    """The prior term -|u_d|^2/2 and its derivatives (row ``d`` of hg, hh; every Hessian
    here is kept as its lower triangle, ``[r, c]`` with ``c <= r``)."""
    n_ext = s.hg.shape[1]
    h = 0.0
    for a in range(tr.qoff[d], tr.qoff[d + 1]):
        h -= 0.5 * s.up[a] * s.up[a]
    if order >= 1:
        for r in range(r0, n_ext):
            s.hg[d, r] = 0.0
        for a in range(tr.qoff[d], tr.qoff[d + 1]):
            s.hg[d, p_all + a] = -s.up[a]
    if order >= 2:
        for r in range(r0, n_ext):
            for c in range(r0, r + 1):
                s.hh[d, r, c] = 0.0
        for a in range(tr.qoff[d], tr.qoff[d + 1]):
            s.hh[d, p_all + a, p_all + a] = -1.0
    return h


@kernel(inline=True)
def leaf_terms(fam, nd: NData, tr: Tree, s: Scratch, d: int, w: int, order: int, r0: int):
    """The leaf unit's rows' log-likelihoods at ``s.up``, their derivatives added to rows
    ``d`` of hg, hh."""
    p = nd.X.shape[1]
    n_theta = nd.ZE.shape[1]
    n_aux = nd.aux.shape[0]
    p_all = p + n_theta + n_aux
    n_ext = s.hg.shape[1]
    q_end = tr.qoff[d + 1]
    h = 0.0
    lo = tr.ustart[tr.uoff[d] + w]
    hi = tr.ustart[tr.uoff[d] + w + 1]
    xt = s.xt
    for j in range(lo, hi):
        eta = nd.xb[j]
        for a in range(q_end):
            eta += nd.W[j, a] * s.up[a]
        l0, d1, d2, _ = eta_derivs(fam, nd.y[j], nd.ntr[j], eta, nd.aux)
        h += l0
        if order == 0:
            continue
        for r in range(r0, n_ext):
            xt[r] = 0.0
        if r0 == 0:
            for r in range(p):
                xt[r] = nd.X[j, r]
            for t in range(n_theta):
                v = 0.0
                for b in range(q_end):
                    v += nd.ZE[j, t, b] * s.up[b]
                xt[p + t] = v
        for a in range(q_end):
            xt[p_all + a] = nd.W[j, a]
        for r in range(r0, n_ext):
            s.hg[d, r] += d1 * xt[r]
        if r0 == 0 and n_aux > 0:
            aux_derivs(fam, nd.y[j], nd.ntr[j], eta, nd.aux, s.la[0], s.la[1], s.la[2], s.laa)
            for a in range(n_aux):
                s.hg[d, p + n_theta + a] += s.la[0, a]
        if order < 2:
            continue
        for r in range(r0, n_ext):
            v = d2 * xt[r]
            if v != 0.0:
                for c in range(r0, r + 1):
                    s.hh[d, r, c] += v * xt[c]
        if r0 == 0:
            for t in range(n_theta):
                for b in range(q_end):
                    s.hh[d, p_all + b, p + t] += d1 * nd.ZE[j, t, b]
            for a in range(n_aux):
                row = p + n_theta + a
                for r in range(p + n_theta):
                    s.hh[d, row, r] += s.la[1, a] * xt[r]
                for r in range(p_all, n_ext):
                    s.hh[d, r, row] += s.la[1, a] * xt[r]
                for b in range(a + 1):
                    s.hh[d, row, p + n_theta + b] += s.laa[a, b]
    return h


@kernel(inline=True)
def leaf_deriv(fam, nd: NData, tr: Tree, s: Scratch, d: int, w: int, order: int, r0: int):
    """A leaf unit's derivative pass, all its nodes at once (their posteriors ``post[d]``
    known from the pass that placed the grid): the log terms ``lt[d]``, node scores
    ``sc[d]``, their posterior mean added to ``ug[d]`` and (order 2) the Louis sum
    ``sum_k p_k (H_k + g_k g_k')`` added to ``hacc[d]`` below the unit's own coordinates.
    Rows outer, nodes inner: of a row's derivative of eta only the theta columns change
    with the node, so the node-weighted sums of ``l''`` (and of ``l''`` times those columns)
    give the row's Hessian terms once per row instead of once per node (what
    :func:`leaf_terms` and the node loop do, in three times the operations)."""
    p = nd.X.shape[1]
    n_theta = nd.ZE.shape[1]
    n_aux = nd.aux.shape[0]
    p_all = p + n_theta + n_aux
    n_ext = s.hg.shape[1]
    o = tr.qoff[d]
    q_end = tr.qoff[d + 1]
    q = q_end - o
    e_own = p_all + o
    n_nodes = tr.nk[d]
    full = r0 == 0
    second = order >= 2
    nv, sc, post, rt, rtt, ra, raa, la = s.nv, s.sc, s.post, s.rt, s.rtt, s.ra, s.raa, s.la
    X, W, ZE, up, hacc = nd.X, nd.W, nd.ZE, s.up, s.hacc
    for k in range(n_nodes):
        set_node(tr, s, d, k)
        h = 0.0
        for r in range(r0, n_ext):
            sc[d, k, r] = 0.0
        for a in range(q):
            v = up[o + a]
            nv[k, a] = v
            h -= 0.5 * v * v
            sc[d, k, p_all + o + a] = -v
        s.lt[d, k] = h
    for j in range(tr.ustart[tr.uoff[d] + w], tr.ustart[tr.uoff[d] + w + 1]):
        base = nd.xb[j]
        for a in range(o):
            base += W[j, a] * up[a]
        if full:
            for t in range(n_theta):
                v = 0.0
                for b in range(o):
                    v += ZE[j, t, b] * up[b]
                rt[0, t] = v
                rt[2, t] = 0.0
                for t2 in range(t + 1):
                    rtt[t, t2] = 0.0
            for a in range(n_aux):
                for t in range(n_theta + 1):
                    ra[a, t] = 0.0
                for b in range(a + 1):
                    raa[a, b] = 0.0
        c0 = 0.0
        e1 = 0.0
        for k in range(n_nodes):
            eta = base
            for a in range(q):
                eta += W[j, o + a] * nv[k, a]
            l0, d1, d2, _ = eta_derivs(fam, nd.y[j], nd.ntr[j], eta, nd.aux)
            s.lt[d, k] += l0
            pk = post[d, k]
            wd = pk * d2
            c0 += wd
            e1 += pk * d1
            if full:
                for r in range(p):
                    sc[d, k, r] += d1 * X[j, r]
                for t in range(n_theta):
                    v = rt[0, t]
                    for a in range(q):
                        v += ZE[j, t, o + a] * nv[k, a]
                    rt[1, t] = v
                    sc[d, k, p + t] += d1 * v
                    rt[2, t] += wd * v
                    for t2 in range(t + 1):
                        rtt[t, t2] += wd * v * rt[1, t2]
                if n_aux > 0:
                    aux_derivs(fam, nd.y[j], nd.ntr[j], eta, nd.aux, la[0], la[1], la[2], s.laa)
                    for a in range(n_aux):
                        sc[d, k, p + n_theta + a] += la[0, a]
                        ra[a, n_theta] += pk * la[1, a]
                        for t in range(n_theta):
                            ra[a, t] += pk * la[1, a] * rt[1, t]
                        for b in range(a + 1):
                            raa[a, b] += pk * s.laa[a, b]
            for a in range(q_end):
                sc[d, k, p_all + a] += d1 * W[j, a]
        if second:
            for a in range(o):  # the ancestors' effects: rows p_all + a
                r = p_all + a
                for a2 in range(a + 1):
                    hacc[d, r, p_all + a2] += c0 * W[j, a] * W[j, a2]
                if full:
                    for c in range(p):
                        hacc[d, r, c] += c0 * W[j, a] * X[j, c]
                    for t in range(n_theta):
                        hacc[d, r, p + t] += rt[2, t] * W[j, a] + e1 * ZE[j, t, a]
                    for b in range(n_aux):
                        hacc[d, r, p + n_theta + b] += ra[b, n_theta] * W[j, a]
            if full:
                for r in range(p):
                    for c in range(r + 1):
                        hacc[d, r, c] += c0 * X[j, r] * X[j, c]
                for t in range(n_theta):
                    for c in range(p):
                        hacc[d, p + t, c] += rt[2, t] * X[j, c]
                    for t2 in range(t + 1):
                        hacc[d, p + t, p + t2] += rtt[t, t2]
                for a in range(n_aux):
                    r = p + n_theta + a
                    for c in range(p):
                        hacc[d, r, c] += ra[a, n_theta] * X[j, c]
                    for t in range(n_theta):
                        hacc[d, r, p + t] += ra[a, t]
                    for b in range(a + 1):
                        hacc[d, r, p + n_theta + b] += raa[a, b]
    for k in range(n_nodes):
        val = tr.logw[d, k] + s.lt[d, k]
        s.lt[d, k] = val if math.isfinite(val) else -np.inf
        pk = post[d, k]
        for r in range(r0, n_ext):
            s.ug[d, r] += pk * sc[d, k, r]
        if second:
            for r in range(r0, e_own):
                v = pk * sc[d, k, r]
                for c in range(r0, r + 1):
                    hacc[d, r, c] += v * sc[d, k, c]


@kernel(inline=True)
def set_node(tr: Tree, s: Scratch, d: int, k: int) -> None:
    """``u_d = m + R t_k`` into the path vector."""
    o = tr.qoff[d]
    q = tr.qoff[d + 1] - o
    for a in range(q):
        v = s.centre[d, a]
        for b in range(a + 1):
            v += s.chol[d, a, b] * tr.nodes[d, k, b]
        s.up[o + a] = v


@kernel(inline=True)
def log_sum_terms(tr: Tree, s: Scratch, d: int) -> float:
    top = -np.inf
    for k in range(tr.nk[d]):
        if s.lt[d, k] > top:
            top = s.lt[d, k]
    if not math.isfinite(top):
        return -np.inf
    acc = 0.0
    for k in range(tr.nk[d]):
        acc += math.exp(s.lt[d, k] - top)
    return top + math.log(acc)


@kernel(inline=True)
def moments(tr: Tree, s: Scratch, d: int, lse: float) -> None:
    """Posterior weights, mean and covariance of ``u_d`` on the current grid."""
    o = tr.qoff[d]
    q = tr.qoff[d + 1] - o
    for a in range(q):
        s.mean[d, a] = 0.0
        for b in range(q):
            s.cov[d, a, b] = 0.0
    for k in range(tr.nk[d]):
        pk = math.exp(s.lt[d, k] - lse)
        s.post[d, k] = pk
        set_node(tr, s, d, k)
        for a in range(q):
            s.v1[d, a] = s.up[o + a] - s.centre[d, a]
            s.mean[d, a] += pk * s.v1[d, a]
        for a in range(q):
            for b in range(q):
                s.cov[d, a, b] += pk * s.v1[d, a] * s.v1[d, b]
    for a in range(q):
        for b in range(q):
            s.cov[d, a, b] -= s.mean[d, a] * s.mean[d, b]
    for a in range(q):
        s.mean[d, a] += s.centre[d, a]


@kernel(inline=True)
def motion(tr: Tree, s: Scratch, d: int, p_all: int, r0: int) -> None:
    """Subtract the derivative of the mean-variance fixed point's movement from
    ``ug[d]`` (coordinates ``r0 .. p_all + qoff[d]``): the one-factor engine's
    ``meanvar_motion`` with the node scores of the extended coordinates (work arrays of
    the scratch: no allocation)."""
    o = tr.qoff[d]
    q = tr.qoff[d + 1] - o
    n_nodes = tr.nk[d]
    r1 = p_all + o
    n_a = q + q * (q + 1) // 2
    g, mom, vec, j_a_t, j_th = s.mg, s.mmom, s.mvec, s.mja, s.mjth
    nodes, sc, post, ug = tr.nodes, s.sc, s.post, s.ug
    for k in range(n_nodes):
        for a in range(q):
            g[k, a] = sc[d, k, p_all + o + a]
            mom[k, a] = nodes[d, k, a]
        idx = q
        for c in range(q):
            for e in range(c + 1):
                g[k, idx] = sc[d, k, p_all + o + c] * nodes[d, k, e]
                mom[k, idx] = nodes[d, k, c] * nodes[d, k, e]
                idx += 1
    for f in range(n_a):
        vec[f] = 0.0  # g_bar, then f_a, then the solution
        for e in range(n_a):
            j_a_t[f, e] = 0.0
        for r in range(r0, r1):
            j_th[f, r - r0] = 0.0
    for k in range(n_nodes):
        for f in range(n_a):
            vec[f] += post[d, k] * g[k, f]
    for k in range(n_nodes):
        pk = post[d, k]
        for e in range(n_a):
            wgt = pk * mom[k, e]
            for f in range(n_a):
                j_a_t[f, e] += wgt * (g[k, f] - vec[f])
            for r in range(r0, r1):
                j_th[e, r - r0] += wgt * (sc[d, k, r] - ug[d, r])
    idx = q
    for c in range(q):
        for e in range(c + 1):
            if c == e:
                vec[idx] += 1.0 / s.chol[d, c, c]
            idx += 1
    solve_in_place(j_a_t, vec, n_a)
    for r in range(r0, r1):
        tot = 0.0
        for e in range(n_a):
            tot += vec[e] * j_th[e, r - r0]
        ug[d, r] -= tot


@kernel(inline=True)
def load_warm(tr: Tree, wm: Warm, s: Scratch, d: int, w: int, path: int) -> bool:
    q = tr.qoff[d + 1] - tr.qoff[d]
    qm = s.centre.shape[1]
    slot = wm.goff[d] + w * tr.spath[d] + path % tr.spath[d]
    if wm.valid[slot] == 0:
        return False
    for a in range(q):
        s.centre[d, a] = wm.gm[slot * qm + a]
        for b in range(q):
            s.chol[d, a, b] = wm.gr[(slot * qm + a) * qm + b]
    return True


@kernel(inline=True)
def load_placed(tr: Tree, wm: Warm, s: Scratch, d: int, w: int, path: int) -> float:
    """A grid stored by the last pass at the same context (one slot per path, placed at
    its mean-variance fixed point): loads it with its node posteriors and returns its log
    sum; NaN when there is none."""
    if wm.wl.shape[0] == 0 or tr.spath[d] != wm.npath[d]:
        return np.nan
    slot = wm.goff[d] + w * tr.spath[d] + path
    if wm.valid[slot] != 1 or not load_warm(tr, wm, s, d, w, path):
        return np.nan
    k_max = s.post.shape[1]
    for k in range(tr.nk[d]):
        s.post[d, k] = wm.wp[slot * k_max + k]
    return wm.wl[slot]


@kernel(inline=True)
def store_placed(tr: Tree, wm: Warm, s: Scratch, d: int, w: int, path: int, lse: float) -> None:
    """Keep the node posteriors and log sum of the grid just stored (see
    :func:`load_placed`); ``valid`` 2 marks a mode-curvature (fallback) grid."""
    if wm.wl.shape[0] == 0:
        return
    slot = wm.goff[d] + w * tr.spath[d] + path % tr.spath[d]
    k_max = s.post.shape[1]
    for k in range(tr.nk[d]):
        wm.wp[slot * k_max + k] = s.post[d, k]
    wm.wl[slot] = lse


@kernel(inline=True)
def store_warm(tr: Tree, wm: Warm, s: Scratch, d: int, w: int, path: int) -> None:
    q = tr.qoff[d + 1] - tr.qoff[d]
    qm = s.centre.shape[1]
    slot = wm.goff[d] + w * tr.spath[d] + path % tr.spath[d]
    ok = True
    for a in range(q):
        ok = ok and math.isfinite(s.centre[d, a]) and s.chol[d, a, a] > 0.0
    if not ok:
        wm.valid[slot] = 0
        return
    for a in range(q):
        wm.gm[slot * qm + a] = s.centre[d, a]
        for b in range(q):
            wm.gr[(slot * qm + a) * qm + b] = s.chol[d, a, b]
    wm.valid[slot] = 1
