"""Compiled kernels of nested adaptive quadrature: one top-level cluster at a time, level by
level from the bottom (Rabe-Hesketh, Skrondal and Pickles 2005).

Levels ``d = 0 .. D-1`` from the top. All levels' spherical effects live in one vector ``u``
of length ``Q`` (level ``d`` owns ``u[qoff[d]:qoff[d+1]]``), ``eta_j = xb_j + W_j' u`` with
``W = Z Lambda`` (``Lambda`` block diagonal, linear in ``theta``). For a unit ``w`` at level
``d``, given its ancestors' values (its *context*),

    h_w(u_d) = -|u_d|^2 / 2 + sum_children l_c(context, u_d)     (leaf: + sum_j l_j(eta_j))
    l_w(context) = log|R| + log sum_k exp(logw_k + h_w(m + R t_k)),

on the unit's own grid ``(m, R)``: the mean-variance fixed point (the posterior mean and
covariance of ``u_d`` given the context, computed on the grid itself), started from the
mode and curvature of ``h_w`` (``mcaghermite``: that mode-curvature grid itself; the
curvature includes the children's Hessians at their grids, and no grid movement enters
the derivatives). Derivatives are taken in the *extended* coordinates
``[params (P), u (Q)]``: a unit returns the exact gradient of ``l_w`` in the parameters and
its context (the fixed-grid posterior mean of the node scores plus the implicit derivative of
the grid's fixed point, as for one factor), and a Louis-type Hessian (posterior mean of node
Hessians plus the covariance of the node scores). The recursion over levels runs on an
explicit stack of frames, one per level (:func:`eval_top`), because numba cannot cache
recursive functions; a unit's grid is placed by a sequence of *passes* (h at every node of
the grid, or at one point for the mode search), each of which evaluates the children.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from mixedglm.engines.aghq.linalg import chol_into, spd_inverse_into
from mixedglm.engines.nested_terms import (
    MODE_MAXIT,
    MODE_TOL,
    MV_MAXIT,
    NData,
    Scratch,
    Tree,
    Warm,
    h_init,
    leaf_deriv,
    leaf_terms,
    load_placed,
    load_warm,
    log_sum_terms,
    moments,
    motion,
    n_par,
    set_node,
    store_placed,
    store_warm,
)
from mixedglm.families.dispatch import eta_derivs
from mixedglm.jit import borrow, kernel

__all__ = ["NData", "Tree", "Warm", "chunk"]

# --------------------------------------------------------------------------------------------
# a unit's frame: the recursion over levels runs on an explicit stack (numba cannot cache
# recursive functions), one frame per level

I_UNIT, I_PATH, I_ORDER, I_R0, I_PHASE, I_K, I_C, I_IT, I_NPTS, I_KIND, I_PORD, I_PR0 = range(12)
I_STATUS, I_SAME = 12, 13
F_H, F_STEP, F_HC, F_LSE, F_RES, F_DEC = range(6)
PH_MVW, PH_MODE, PH_LINE, PH_MV, PH_FALL, PH_DERIV = range(6)
KIND_GRID, KIND_POINT = 0, 1
MC_TRUST = 1e-6  # Newton decrement below which a mode-curvature mode search takes full steps


class Frames(NamedTuple):
    """Per level: integers ``fi (D, 14)``, floats ``ff (D, 6)`` (columns ``I_*``, ``F_*``),
    the point of a one-point pass ``pt (D, q)``, the Newton step ``delta (D, q)`` and the
    mode-curvature grid ``mode_c (D, q)``, ``mode_r (D, q, q)``."""

    fi: np.ndarray
    ff: np.ndarray
    pt: np.ndarray
    delta: np.ndarray
    mode_c: np.ndarray
    mode_r: np.ndarray


# --------------------------------------------------------------------------------------------
# passes: a pass evaluates h at every node of the grid (or at one point) and its children


@kernel(inline=True)
def _begin_node(nd: NData, tr: Tree, s: Scratch, f: Frames, d: int) -> None:
    """Place node ``k`` of level ``d``'s pass, start h with the prior term, first child."""
    o = tr.qoff[d]
    q = tr.qoff[d + 1] - o
    if f.fi[d, I_KIND] == KIND_GRID:
        set_node(tr, s, d, f.fi[d, I_K])
    else:
        for a in range(q):
            s.up[o + a] = f.pt[d, a]
    f.ff[d, F_H] = h_init(d, tr, s, n_par(nd), f.fi[d, I_PORD], f.fi[d, I_PR0])
    if d < tr.nk.shape[0] - 1:
        f.fi[d, I_C] = tr.cstart[tr.coff[d] + f.fi[d, I_UNIT]]


@kernel(inline=True)
def _next(f: Frames, d: int, phase: int, kind: int, order: int, r0: int) -> None:
    """Set level ``d``'s next pass (begun by :func:`eval_top`)."""
    f.fi[d, I_PHASE] = phase
    f.fi[d, I_KIND] = kind
    f.fi[d, I_PORD] = order
    f.fi[d, I_PR0] = r0


@kernel(inline=True)
def _begin_pass(nd: NData, tr: Tree, s: Scratch, f: Frames, d: int) -> None:
    f.fi[d, I_K] = 0
    f.fi[d, I_NPTS] = tr.nk[d] if f.fi[d, I_KIND] == KIND_GRID else 1
    _begin_node(nd, tr, s, f, d)


@kernel(inline=True)
def _end_node(nd: NData, tr: Tree, s: Scratch, f: Frames, d: int) -> None:
    """Record node ``k``'s h (and in the derivative pass its score and Louis terms)."""
    k = f.fi[d, I_K]
    h = f.ff[d, F_H]
    if f.fi[d, I_KIND] == KIND_GRID:
        val = tr.logw[d, k] + h
        s.lt[d, k] = val if math.isfinite(val) else -np.inf
    if f.fi[d, I_PHASE] != PH_DERIV:
        return
    p_all = n_par(nd)
    r0 = f.fi[d, I_PR0]
    e_own = p_all + tr.qoff[d]
    e_end = p_all + tr.qoff[d + 1]
    pk = s.post[d, k]
    for r in range(r0, e_end):
        s.sc[d, k, r] = s.hg[d, r]
        s.ug[d, r] += pk * s.hg[d, r]
    if f.fi[d, I_PORD] >= 2:
        for r in range(r0, e_own):
            v = pk * s.hg[d, r]
            for c in range(r0, r + 1):
                s.hacc[d, r, c] += pk * s.hh[d, r, c] + v * s.hg[d, c]


@kernel(inline=True)
def _leaf_pass(fam, nd: NData, tr: Tree, s: Scratch, f: Frames, d: int) -> None:
    """The rest of a leaf unit's pass, all its nodes at once (order 0: a tight loop; the
    derivative pass: :func:`leaf_deriv`)."""
    order = f.fi[d, I_PORD]
    w = f.fi[d, I_UNIT]
    if f.fi[d, I_PHASE] == PH_DERIV:
        leaf_deriv(fam, nd, tr, s, d, w, order, f.fi[d, I_PR0])
        f.fi[d, I_K] = f.fi[d, I_NPTS]
        return
    if order > 0:
        while f.fi[d, I_K] < f.fi[d, I_NPTS]:
            f.ff[d, F_H] += leaf_terms(fam, nd, tr, s, d, w, order, f.fi[d, I_PR0])
            _end_node(nd, tr, s, f, d)
            f.fi[d, I_K] += 1
            if f.fi[d, I_K] < f.fi[d, I_NPTS]:
                _begin_node(nd, tr, s, f, d)
        return
    lo = tr.ustart[tr.uoff[d] + w]
    hi = tr.ustart[tr.uoff[d] + w + 1]
    q_end = tr.qoff[d + 1]
    o = tr.qoff[d]
    xb, W, y, ntr, aux, up = nd.xb, nd.W, nd.y, nd.ntr, nd.aux, s.up
    grid = f.fi[d, I_KIND] == KIND_GRID
    k = f.fi[d, I_K]
    n_pts = f.fi[d, I_NPTS]
    while True:
        h = 0.0
        for a in range(o, q_end):
            h -= 0.5 * up[a] * up[a]
        for j in range(lo, hi):
            eta = xb[j]
            for a in range(q_end):
                eta += W[j, a] * up[a]
            l0, _, _, _ = eta_derivs(fam, y[j], ntr[j], eta, aux)
            h += l0
        if grid:
            val = tr.logw[d, k] + h
            s.lt[d, k] = val if math.isfinite(val) else -np.inf
        else:
            f.ff[d, F_H] = h
        k += 1
        if k >= n_pts:
            break
        set_node(tr, s, d, k)
    f.fi[d, I_K] = k


@kernel(inline=True)
def _add_child(s: Scratch, f: Frames, d: int) -> None:
    """A finished child of level ``d + 1`` adds to level ``d``'s node."""
    f.ff[d, F_H] += f.ff[d + 1, F_RES]
    order = f.fi[d, I_PORD]
    r0 = f.fi[d, I_PR0]
    n_ext = s.hg.shape[1]
    if order >= 1:
        for r in range(r0, n_ext):
            s.hg[d, r] += s.ug[d + 1, r]
    if order >= 2:
        for r in range(r0, n_ext):
            for c in range(r0, r + 1):
                s.hh[d, r, c] += s.uh[d + 1, r, c]


@kernel(inline=True)
def _start_mode(nd: NData, tr: Tree, s: Scratch, f: Frames, d: int, warm: bool) -> None:
    """Set up the search for the mode of h (Newton from 0, or ``warm`` from the loaded
    grid's centre)."""
    q = tr.qoff[d + 1] - tr.qoff[d]
    for a in range(q):
        if not warm:
            s.centre[d, a] = 0.0
        f.pt[d, a] = s.centre[d, a]
    f.fi[d, I_IT] = 0
    _next(f, d, PH_MODE, KIND_POINT, 2, n_par(nd))


@kernel(inline=True)
def _start_unit(nd: NData, tr: Tree, wm: Warm, s: Scratch, f: Frames, d: int) -> None:
    """A unit's first pass: straight to the derivative pass when its parent's derivative
    pass finds its grid as placed in the parent's last pass; else mean-variance from its
    warm grid (or its grid at the parent's centre node), else the mode search
    (mode-curvature grids: the mode search, from the warm grid's centre if there is one)."""
    f.fi[d, I_STATUS] = 0
    if f.fi[d, I_SAME] == 1 and f.fi[d, I_ORDER] > 0:
        lse = load_placed(tr, wm, s, d, f.fi[d, I_UNIT], f.fi[d, I_PATH])
        if math.isfinite(lse):
            log_det = 0.0
            for a in range(tr.qoff[d + 1] - tr.qoff[d]):
                log_det += math.log(s.chol[d, a, a])
            f.ff[d, F_LSE] = lse
            f.ff[d, F_RES] = log_det + lse
            _start_deriv(s, f, d)
            return
    path = f.fi[d, I_PATH]
    # no grid for this path yet (a first evaluation): the unit's grid at its parent's
    # centre node, where the parent's mode search placed it, if there is one
    centre = path - path % tr.nk[d - 1] + tr.nk[d - 1] // 2 if d > 0 else path
    if load_warm(tr, wm, s, d, f.fi[d, I_UNIT], path) or (
        tr.spath[d] > 1 and load_warm(tr, wm, s, d, f.fi[d, I_UNIT], centre)
    ):
        if tr.mc == 1:
            _start_mode(nd, tr, s, f, d, True)
            return
        f.fi[d, I_IT] = 0
        _next(f, d, PH_MVW, KIND_GRID, 0, 0)
    else:
        _start_mode(nd, tr, s, f, d, False)


@kernel(inline=True)
def _use_mode_grid(tr: Tree, s: Scratch, f: Frames, d: int) -> None:
    q = tr.qoff[d + 1] - tr.qoff[d]
    for a in range(q):
        s.centre[d, a] = f.mode_c[d, a]
        for b in range(q):
            s.chol[d, a, b] = f.mode_r[d, a, b]


@kernel(inline=True)
def _start_deriv(s: Scratch, f: Frames, d: int) -> None:
    """Set up the derivative pass on the placed grid."""
    r0 = f.fi[d, I_R0]
    n_ext = s.hg.shape[1]
    for r in range(r0, n_ext):
        s.ug[d, r] = 0.0
        for c in range(r0, r + 1):
            s.hacc[d, r, c] = 0.0
    _next(f, d, PH_DERIV, KIND_GRID, f.fi[d, I_ORDER], r0)


@kernel(inline=True)
def _finish_grid(nd: NData, tr: Tree, wm: Warm, s: Scratch, f: Frames, d: int, lse: float) -> bool:
    """The grid is placed: store it, the log-likelihood; start the derivative pass (returns
    False) or finish the unit (True)."""
    w = f.fi[d, I_UNIT]
    path = f.fi[d, I_PATH]
    q = tr.qoff[d + 1] - tr.qoff[d]
    store_warm(tr, wm, s, d, w, path)
    if f.fi[d, I_PHASE] == PH_FALL and math.isfinite(lse):
        moments(tr, s, d, lse)
        slot = wm.goff[d] + w * tr.spath[d] + path % tr.spath[d]
        if tr.mc == 0:  # a fallback grid (mode-curvature grids are the rule's)
            wm.valid[slot] = 2 if wm.valid[slot] == 1 else wm.valid[slot]
    store_placed(tr, wm, s, d, w, path, lse)  # (a log sum of -inf is never loaded)
    log_det = 0.0
    for a in range(q):
        log_det += math.log(s.chol[d, a, a])
    f.ff[d, F_LSE] = lse
    f.ff[d, F_RES] = log_det + lse
    if not math.isfinite(lse):
        f.ff[d, F_RES] = -np.inf
        return True
    if wm.pw.shape[0] > 0:
        qm = s.centre.shape[1]
        n_nodes = tr.nk[d]
        base = wm.pwoff[d] + w * wm.npath[d] + path
        for k in range(n_nodes):
            wm.pw[base * n_nodes + k] = s.post[d, k]
        for a in range(q):
            wm.pm[base * qm + a] = s.mean[d, a]
            for b in range(q):
                wm.pc[(base * qm + a) * qm + b] = s.cov[d, a, b]
    if f.fi[d, I_ORDER] == 0:
        return True
    _start_deriv(s, f, d)
    return False


@kernel(inline=True)
def _finish_deriv(nd: NData, tr: Tree, s: Scratch, f: Frames, d: int) -> None:
    """Gradient (with the grid's motion) and Louis Hessian of the unit."""
    p_all = n_par(nd)
    r0 = f.fi[d, I_R0]
    n_ext = s.hg.shape[1]
    e_own = p_all + tr.qoff[d]
    if f.fi[d, I_ORDER] >= 2:
        for r in range(r0, n_ext):
            for c in range(r0, r + 1):
                inside = r < e_own  # (c <= r)
                s.uh[d, r, c] = s.hacc[d, r, c] - s.ug[d, r] * s.ug[d, c] if inside else 0.0
    if f.fi[d, I_STATUS] == 0 and tr.mc == 0:  # mode-curvature grids: at fixed grids
        motion(tr, s, d, p_all, r0)
    for r in range(e_own, n_ext):
        s.ug[d, r] = 0.0


@kernel(inline=True)
def _mode_step(nd: NData, tr: Tree, s: Scratch, f: Frames, d: int) -> bool:
    """After h and its u-derivatives at the centre: the inverse curvature's factor into
    ``mode_r``, the Newton step into ``delta``; True when the mode is found."""
    p_all = n_par(nd)
    o = tr.qoff[d]
    q = tr.qoff[d + 1] - o
    # the level's own q x q blocks of the q_max x q_max work arrays (the factorisations
    # take the shape of their argument: a padded block would not be positive definite)
    neg = s.sq1[d, :q, :q]
    inv, w1, w2 = s.cov[d, :q, :q], s.sq2[d, :q, :q], s.sq3[d, :q, :q]
    for a in range(q):
        for b in range(q):
            neg[a, b] = -s.hh[d, p_all + o + max(a, b), p_all + o + min(a, b)]
    tau = 0.0
    good = False
    for _ in range(60):
        for a in range(q):
            neg[a, a] += tau
        good = spd_inverse_into(neg, w1, w2, inv)
        for a in range(q):
            neg[a, a] -= tau
        if good:
            break
        tau = max(1e-3, 4.0 * tau)
    if not good:
        for a in range(q):
            f.delta[d, a] = 0.0
            for b in range(q):
                f.mode_r[d, a, b] = 1.0 if a == b else 0.0
        return True
    dec = 0.0
    for a in range(q):
        v = 0.0
        for b in range(q):
            v += s.cov[d, a, b] * s.hg[d, p_all + o + b]
        f.delta[d, a] = v
        dec += v * s.hg[d, p_all + o + a]
    if tau > 0.0 and not spd_inverse_into(neg, w1, w2, inv):
        for a in range(q):
            for b in range(q):
                s.cov[d, a, b] = 1.0 if a == b else 0.0
    chol_into(inv, f.mode_r[d, :q, :q])
    f.ff[d, F_DEC] = dec if tau == 0.0 else np.inf
    return (dec < MODE_TOL and tau == 0.0) or f.fi[d, I_IT] >= MODE_MAXIT


@kernel(inline=True)
def _after_pass(nd: NData, tr: Tree, wm: Warm, s: Scratch, f: Frames, d: int) -> bool:
    """Level ``d``'s pass is complete: choose the next pass, or finish the unit (True)."""
    o = tr.qoff[d]
    q = tr.qoff[d + 1] - o
    phase = f.fi[d, I_PHASE]
    p_all = n_par(nd)
    if phase == PH_DERIV:
        _finish_deriv(nd, tr, s, f, d)
        return True
    if phase == PH_MODE or phase == PH_LINE:
        h = f.ff[d, F_H]
        if phase == PH_MODE:
            f.ff[d, F_HC] = h
            if math.isfinite(h):
                done = _mode_step(nd, tr, s, f, d)
            else:
                done = True
                for a in range(q):
                    for b in range(q):
                        f.mode_r[d, a, b] = 1.0 if a == b else 0.0
            f.ff[d, F_STEP] = 1.0
        else:
            if math.isfinite(h) and h >= f.ff[d, F_HC] - 1e-12 * abs(f.ff[d, F_HC]):
                for a in range(q):
                    s.centre[d, a] = f.pt[d, a]
                f.fi[d, I_IT] += 1
                for a in range(q):
                    f.pt[d, a] = s.centre[d, a]
                _next(f, d, PH_MODE, KIND_POINT, 2, p_all)
                return False
            f.ff[d, F_STEP] *= 0.5
            done = f.ff[d, F_STEP] < 1e-10
        if done:  # the mode-curvature grid, then mean-variance from it (or it alone)
            for a in range(q):
                f.mode_c[d, a] = s.centre[d, a]
            _use_mode_grid(tr, s, f, d)
            f.fi[d, I_IT] = 0
            _next(f, d, PH_FALL if tr.mc == 1 else PH_MV, KIND_GRID, 0, 0)
            return False
        for a in range(q):
            f.pt[d, a] = s.centre[d, a] + f.ff[d, F_STEP] * f.delta[d, a]
        if tr.mc == 1 and phase == PH_MODE and f.ff[d, F_DEC] < MC_TRUST:
            # close to the mode: a full Newton step without the test of h (the children's
            # scores are at fixed grids; h's increase would not resolve their small
            # difference from its derivative and the step halvings would stall)
            for a in range(q):
                s.centre[d, a] = f.pt[d, a]
            f.fi[d, I_IT] += 1
            _next(f, d, PH_MODE, KIND_POINT, 2, p_all)
            return False
        _next(f, d, PH_LINE, KIND_POINT, 0, p_all)
        return False
    lse = log_sum_terms(tr, s, d)
    finish = phase == PH_FALL
    if finish and tr.mc == 0:
        f.fi[d, I_STATUS] = 2
    # mean-variance iteration
    ok = not finish and math.isfinite(lse)
    if ok:
        moments(tr, s, d, lse)
        ok = chol_into(s.cov[d, :q, :q], s.newchol[d, :q, :q])
    if ok:
        change = 0.0
        for a in range(q):
            scale = s.newchol[d, a, a]
            change = max(change, abs(s.mean[d, a] - s.centre[d, a]) / scale)
            for b in range(a + 1):
                change = max(change, abs(s.newchol[d, a, b] - s.chol[d, a, b]) / scale)
        finish = change < tr.tol
        if not finish and f.fi[d, I_IT] < MV_MAXIT:
            for a in range(q):
                s.centre[d, a] = s.mean[d, a]
                for b in range(q):
                    s.chol[d, a, b] = s.newchol[d, a, b]
            f.fi[d, I_IT] += 1
            _next(f, d, phase, KIND_GRID, 0, 0)
            return False
    if finish:
        return _finish_grid(nd, tr, wm, s, f, d, lse)
    if phase == PH_MVW:  # the warm start failed: from the mode
        _start_mode(nd, tr, s, f, d, False)
        return False
    _use_mode_grid(tr, s, f, d)  # no fixed point: the mode-curvature grid
    _next(f, d, PH_FALL, KIND_GRID, 0, 0)
    return False


@kernel(inline=True)
def eval_top(fam, nd: NData, tr: Tree, wm: Warm, s: Scratch, f: Frames, i: int, order: int):
    """Top-level cluster ``i``: the log of its integral (without constants); the gradient
    in ``s.ug[0]``, the Hessian in ``s.uh[0]``. One loop, everything inlined: calls with
    the records as arguments cost more than the work of a small unit."""
    leaf = tr.nk.shape[0] - 1
    f.fi[0, I_UNIT] = i
    f.fi[0, I_PATH] = 0
    f.fi[0, I_ORDER] = order
    f.fi[0, I_R0] = 0
    f.fi[0, I_SAME] = 0
    status = 0
    d = 0
    start = True
    begin = False
    while True:
        if start:
            _start_unit(nd, tr, wm, s, f, d)
            start = False
            begin = True
        if begin:
            _begin_pass(nd, tr, s, f, d)
            begin = False
        if f.fi[d, I_K] >= f.fi[d, I_NPTS]:
            if not _after_pass(nd, tr, wm, s, f, d):
                begin = True
                continue
            status = max(status, f.fi[d, I_STATUS])
            if d == 0:
                s.status[0] = status
                return f.ff[0, F_RES]
            d -= 1
            _add_child(s, f, d)
            f.fi[d, I_C] += 1
            continue
        if d == leaf:
            _leaf_pass(fam, nd, tr, s, f, d)
            continue
        w = f.fi[d, I_UNIT]
        if f.fi[d, I_C] < tr.cstart[tr.coff[d] + w + 1]:
            k = f.fi[d, I_K] if f.fi[d, I_KIND] == KIND_GRID else tr.nk[d] // 2
            f.fi[d + 1, I_UNIT] = f.fi[d, I_C]
            f.fi[d + 1, I_PATH] = f.fi[d, I_PATH] * tr.nk[d] + k
            f.fi[d + 1, I_ORDER] = f.fi[d, I_PORD]
            f.fi[d + 1, I_R0] = f.fi[d, I_PR0]
            f.fi[d + 1, I_SAME] = 1 if f.fi[d, I_PHASE] == PH_DERIV else 0
            d += 1
            start = True
            continue
        _end_node(nd, tr, s, f, d)
        f.fi[d, I_K] += 1
        if f.fi[d, I_K] < f.fi[d, I_NPTS]:
            _begin_node(nd, tr, s, f, d)


@kernel
def _scratch(lv: int, k_max: int, q_all: int, q_max: int, n_ext: int, n_aux: int, n_th: int):
    n_a = q_max + q_max * (q_max + 1) // 2
    return Scratch(
        np.zeros(q_all), np.zeros((lv, k_max)), np.zeros((lv, k_max)),
        np.zeros((lv, k_max, n_ext)), np.zeros((lv, n_ext)), np.zeros((lv, n_ext, n_ext)),
        np.zeros((lv, n_ext)), np.zeros((lv, n_ext, n_ext)), np.zeros((lv, n_ext, n_ext)),
        np.zeros((lv, q_max)), np.zeros((lv, q_max, q_max)), np.zeros((lv, q_max)),
        np.zeros((lv, q_max, q_max)), np.zeros((lv, q_max, q_max)),
        np.zeros((lv, q_max, q_max)), np.zeros((lv, q_max, q_max)),
        np.zeros((lv, q_max, q_max)), np.zeros((lv, q_max)), np.zeros((lv, q_max)),
        np.zeros(n_ext), np.zeros((4, n_aux)), np.zeros((n_aux, n_aux)),
        np.zeros(1, dtype=np.int64), np.zeros((k_max, n_a)), np.zeros((k_max, n_a)),
        np.zeros(n_a), np.zeros((n_a, n_a)), np.zeros((n_a, n_ext)), np.zeros((k_max, q_max)),
        np.zeros((3, n_th)), np.zeros((n_th, n_th)), np.zeros((n_aux, n_th + 1)),
        np.zeros((n_aux, n_aux)),
    ), Frames(
        np.zeros((lv, 14), dtype=np.int64), np.zeros((lv, 6)), np.zeros((lv, q_max)),
        np.zeros((lv, q_max)), np.zeros((lv, q_max)), np.zeros((lv, q_max, q_max)),
    )  # fmt: skip


@kernel(nogil=True)
def chunk(
    fam, nd: NData, tr: Tree, wm: Warm, const: np.ndarray, order: int, ll: np.ndarray,
    grad: np.ndarray, hess: np.ndarray, status: np.ndarray, g0: int, g1: int, slot: int,
) -> None:  # fmt: skip
    """Top-level clusters ``g0 .. g1 - 1``: log-likelihoods, scores, Hessian sums."""
    p_all = n_par(nd)
    q_all = tr.qoff[tr.qoff.shape[0] - 1]
    n_ext = p_all + q_all
    q_max = tr.nodes.shape[2]
    n_aux, n_th = nd.aux.shape[0], nd.ZE.shape[1]
    s0, f0 = _scratch(tr.nk.shape[0], tr.nodes.shape[1], q_all, q_max, n_ext, n_aux, n_th)
    # views without reference counting (see ``jit.borrow``): the records' owners (the
    # caller's and s0, f0) outlive the loop
    s, f, nd, tr, wm = borrow(s0), borrow(f0), borrow(nd), borrow(tr), borrow(wm)
    for i in range(g0, g1):
        for a in range(q_all):
            s.up[a] = 0.0
        ll[i] = eval_top(fam, nd, tr, wm, s, f, i, order) + const[i]
        status[i] = s.status[0]
        if order >= 1:
            for r in range(p_all):
                grad[i, r] = s.ug[0, r]
        if order >= 2:
            for r in range(p_all):
                for c in range(p_all):
                    hess[slot, r, c] += s.uh[0, max(r, c), min(r, c)]
    s0.status[0] = s.status[0]  # s0 and f0 live until here
    f0.fi[0, 0] = f.fi[0, 0]
