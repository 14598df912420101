"""Numba kernels of the joint Laplace engine (:mod:`mixedglm.engines.laplace_joint`).

The random effects are one spherical vector ``u`` of length ``M``: first the ``G1 q1``
effects of the *block factor* (the factor with the most effects; its part of
``H = A' W A + I`` is block diagonal, ``q1 x q1`` per level), then the ``m`` effects of all
other factors (the *rest*, handled as a dense Schur complement). Row ``i`` touches ``J``
coordinates of ``u``: positions ``pos[i, :]`` with values ``a[i, :]`` of the row of
``A = Z Lambda``; its first ``q1`` coordinates are its block-factor level's, the others are
in the rest, at local indices ``loc[i, :]`` into the list of rest positions its block level
meets (``kpos[kptr[g]:kptr[g + 1]]``). The coupling ``B`` between block level ``g`` and the
rest is stored densely on that list: ``q1 x n_g`` values from ``kptr[g] q1``.

The family enters through its token (:mod:`mixedglm.families.dispatch`): ``eta_derivs`` in
:func:`row_terms`, ``aux_derivs`` in :func:`gradient_rows`.

The dense loops (Schur complement, Cholesky factor, inverse, selected inverse) run their
innermost loop along contiguous memory without a reduction, which vectorises without
fastmath, and the Schur complement and selected inverse touch only the lower triangle of
``S`` (for a 400 x 400 block it then stays in the processor's cache): together about 3
times faster than dot-product loops (the crossed benchmark, ``docs/performance.md``). The
Cholesky factor and inverse here serve the small blocks; large ones go to LAPACK
(:mod:`mixedglm.engines.laplace_dense`). The gathering loops and the row kernels index with
unsigned integers (:func:`urow`): numba tests every signed index for a negative value,
which made them 1.5 to 3 times slower.
"""

from __future__ import annotations

import math

import numpy as np

from mixedglm.engines.aghq.linalg import spd_inverse_into
from mixedglm.families.dispatch import aux_buffers, aux_derivs, eta_derivs
from mixedglm.jit import kernel


@kernel(inline=True)
def cidx(p1: int, p2: int, layout: tuple) -> int:
    """Index of ``S[p1, p2]`` in the flat storage of the rest's dense component blocks
    (``p1`` and ``p2`` in the same component). ``layout`` = ``(rest_comp, comp_first,
    comp_size, comp_base)``: each rest position's component, and per component its first
    position, size and offset in the flat array (row-major blocks)."""
    rest_comp, comp_first, comp_size, comp_base = layout
    c = rest_comp[p1]
    return comp_base[c] + (p1 - comp_first[c]) * comp_size[c] + (p2 - comp_first[c])


@kernel(inline=True)
def urow(p1: int, layout: tuple) -> np.uint64:
    """``cidx(p1, p2, layout) = urow(p1, layout) + p2``, unsigned (numba tests every
    signed index for a negative value: unsigned indices make the row kernels' and the
    dense loops' gathers 1.5 to 3 times faster). Never negative: ``comp_base >=
    comp_first``."""
    rest_comp, comp_first, comp_size, comp_base = layout
    c = rest_comp[p1]
    first = comp_first[c]
    return np.uint64(comp_base[c] - first + (p1 - first) * comp_size[c])


@kernel(nogil=True)
def row_terms(
    xb: np.ndarray,
    pos: np.ndarray,
    a: np.ndarray,
    u: np.ndarray,
    y: np.ndarray,
    ntr: np.ndarray,
    aux: np.ndarray,
    family: object,
    eta: np.ndarray,
    l0: np.ndarray,
    l1: np.ndarray,
    l2: np.ndarray,
    l3: np.ndarray,
) -> float:
    """Linear predictors and the kernel's derivatives per row; returns the kernel's sum
    (``family`` is the family's token, :mod:`mixedglm.families.dispatch`)."""
    uint = np.uint64  # unsigned indices: :func:`urow`
    n, width = a.shape
    total = 0.0
    for i in range(uint(n)):
        e = xb[i]
        for j in range(uint(width)):
            e += a[i, j] * u[uint(pos[i, j])]
        eta[i] = e
        f0, f1, f2, f3 = eta_derivs(family, y[i], ntr[i], e, aux)
        l0[i] = f0
        l1[i] = f1
        l2[i] = f2
        l3[i] = f3
        total += f0
    return total


@kernel(nogil=True)
def assemble(
    pos: np.ndarray,
    a: np.ndarray,
    loc: np.ndarray,
    l1: np.ndarray,
    w: np.ndarray,
    u: np.ndarray,
    q1: int,
    kptr: np.ndarray,
    rptr: np.ndarray,
    order: np.ndarray,
    grad: np.ndarray,
    grest: np.ndarray,
    D: np.ndarray,
    B: np.ndarray,
    C: np.ndarray,
    layout: tuple,
    g0: int,
    g1: int,
    init: bool,
) -> None:
    """The gradient ``A' l' - u`` and the blocks of ``H = A' W A + I``: ``D`` ``(G1, q1,
    q1)``, ``B`` (flat, see the module doc) and the rest's ``C`` (flat component blocks,
    see :func:`cidx`), from the rows of block levels ``g0 .. g1 - 1`` (level ``g``'s rows
    ``order[rptr[g]:rptr[g + 1]]``, in their order in the data).

    The levels' own parts (the block part of ``grad``, ``D``, ``B``) are set here: a
    thread's chunk of levels writes them in the shared arrays. The rest's part of the
    gradient (``grest``) and ``C`` are added to, which ``init`` first sets to ``-u`` and
    the identity (without it the caller's zeros: a thread's share)."""
    uint = np.uint64  # unsigned indices: :func:`urow`
    uq1 = uint(q1)
    off = D.shape[0] * q1
    rest = uint(a.shape[1]) - uq1
    if init:
        for k in range(grest.shape[0]):
            grest[k] = -u[off + k]
        C[:] = 0.0
        for r in range(layout[0].shape[0]):
            C[cidx(r, r, layout)] = 1.0
    for g in range(uint(g0), uint(g1)):
        n_g = uint(kptr[g + uint(1)] - kptr[g])
        base = uint(kptr[g]) * uq1
        for r in range(uq1):
            grad[g * uq1 + r] = -u[g * uq1 + r]
            for s in range(uq1):
                D[g, r, s] = 1.0 if r == s else 0.0
        for k in range(base, base + uq1 * n_g):
            B[k] = 0.0
        for k in range(uint(rptr[g]), uint(rptr[g + uint(1)])):
            i = uint(order[k])
            wi = w[i]
            li = l1[i]
            for r in range(uq1):
                air = a[i, r]
                grad[g * uq1 + r] += li * air
                ar = wi * air
                for s in range(uq1):
                    D[g, r, s] += ar * a[i, s]
                for t in range(rest):
                    B[base + r * n_g + uint(loc[i, t])] += ar * a[i, uq1 + t]
            for t in range(rest):
                pt = pos[i, uq1 + t] - off
                ait = a[i, uq1 + t]
                grest[uint(pt)] += li * ait
                at = wi * ait
                row = urow(pt, layout)
                for t2 in range(rest):
                    p2 = pos[i, uq1 + t2] - off
                    if p2 <= pt:  # the lower triangle: all the factorisation reads
                        C[row + uint(p2)] += at * a[i, uq1 + t2]


@kernel
def _small_inverse(m: np.ndarray, out: np.ndarray, low: np.ndarray, work: np.ndarray) -> float:
    """Inverse of a small symmetric positive definite matrix into ``out`` by Cholesky
    (``low``, ``work`` scratch); returns its log determinant (``nan`` when it is not
    positive definite)."""
    if not spd_inverse_into(m, low, work, out):
        return np.nan
    logdet = 0.0
    for j in range(m.shape[0]):
        logdet += 2.0 * math.log(low[j, j])
    return logdet


@kernel(nogil=True)
def schur(
    D: np.ndarray,
    B: np.ndarray,
    kptr: np.ndarray,
    kpos: np.ndarray,
    q1: int,
    Dinv: np.ndarray,
    F: np.ndarray,
    S: np.ndarray,
    logdet_d: np.ndarray,
    layout: tuple,
    g0: int,
    g1: int,
) -> bool:
    """For the block levels ``g0 .. g1 - 1``: ``Dinv = D^-1`` (log determinants in
    ``logdet_d``), ``F = D^-1 B`` and their part of the Schur complement, ``S <- S -
    B' D^-1 B`` in place (``S`` = ``C`` for all levels at once, or a zeroed share of one
    thread). False when a ``D`` block is not positive definite."""
    low = np.empty((q1, q1))
    work = np.empty((q1, q1))
    for g in range(g0, g1):
        ld = _small_inverse(D[g], Dinv[g], low, work)
        if not np.isfinite(ld):
            return False
        logdet_d[g] = ld
        n_g = kptr[g + 1] - kptr[g]
        base = kptr[g] * q1
        for r in range(q1):
            for c in range(n_g):
                t = 0.0
                for s in range(q1):
                    t += Dinv[g, r, s] * B[base + s * n_g + c]
                F[base + r * n_g + c] = t
        if n_g == 0:
            continue
        # all of K_g lies in one component: index its block directly (lower triangle only,
        # all the Cholesky factorisation reads)
        comp = layout[0][kpos[kptr[g]]]
        first = layout[1][comp]
        size = layout[2][comp]
        cbase = layout[3][comp]
        # K_g is sorted (``_pattern``): p2 <= p1 is c2 <= c1, a loop bound rather than a
        # test the processor mispredicts half the time. The innermost loop runs along
        # contiguous F (no reduction: it vectorises), and only S's lower triangle is
        # written, which stays in the processor's cache for S of a few hundred rows
        # (4,000 x 50 crossed levels: 8 ms rather than 33 with the reduction over q1 inside)
        # Unsigned indices (all >= 0: cbase >= first) spare numba's test for negative ones
        # on each access (3 times faster)
        k0 = kptr[g]
        uk0 = np.uint64(k0)
        for c1 in range(n_g):
            row = np.uint64(cbase - first + (kpos[k0 + c1] - first) * size)
            for r in range(q1):
                b = B[base + r * n_g + c1]
                fr = np.uint64(base + r * n_g)
                for c2 in range(np.uint64(c1 + 1)):
                    S[row + np.uint64(kpos[uk0 + c2])] -= b * F[fr + c2]
    return True


@kernel
def reduce_rhs(
    rhs1: np.ndarray, rhs2: np.ndarray, F: np.ndarray, kptr: np.ndarray, kpos: np.ndarray, q1: int
) -> np.ndarray:
    """``rhs2 - F' rhs1``: the right-hand side of the Schur system (the long loop innermost,
    along contiguous ``F``: a third of the time of a reduction over ``q1`` inside)."""
    out = rhs2.copy()
    for g in range(kptr.shape[0] - 1):
        k0 = kptr[g]
        n_g = kptr[g + 1] - k0
        for r in range(q1):
            x = rhs1[g * q1 + r]
            fr = k0 * q1 + r * n_g
            for c in range(n_g):
                out[kpos[k0 + c]] -= F[fr + c] * x
    return out


@kernel
def back_substitute(
    rhs1: np.ndarray,
    x2: np.ndarray,
    Dinv: np.ndarray,
    F: np.ndarray,
    kptr: np.ndarray,
    kpos: np.ndarray,
    q1: int,
) -> np.ndarray:
    """``x1 = D^-1 rhs1 - F x2`` per block level."""
    out = np.empty(rhs1.shape[0])
    for g in range(Dinv.shape[0]):
        n_g = kptr[g + 1] - kptr[g]
        base = kptr[g] * q1
        for r in range(q1):
            t = 0.0
            for s in range(q1):
                t += Dinv[g, r, s] * rhs1[g * q1 + s]
            for c in range(n_g):
                t -= F[base + r * n_g + c] * x2[kpos[kptr[g] + c]]
            out[g * q1 + r] = t
    return out


@kernel(nogil=True)
def selected_inverse(
    q1: int,
    kptr: np.ndarray,
    kpos: np.ndarray,
    Dinv: np.ndarray,
    F: np.ndarray,
    Sinv: np.ndarray,
    layout: tuple,
    P: np.ndarray,
    H11: np.ndarray,
    g0: int,
    g1: int,
) -> None:
    """The blocks of ``H^-1`` the rows need, for the block levels ``g0 .. g1 - 1`` (each
    writes only its own parts: threads take chunks of levels): ``P_g = F_g S^-1[K_g, K_g]``
    (flat, as ``F``; ``H^-1`` between block level ``g`` and the rest is ``-P_g``) and the
    block levels' diagonal blocks ``H11[g] = D_g^-1 + P_g F_g'`` ``(G1, q1, q1)`` (on the
    rest, ``H^-1 = S^-1``)."""
    for g in range(g0, g1):
        n_g = kptr[g + 1] - kptr[g]
        base = kptr[g] * q1
        k0 = kptr[g]
        for r in range(q1):
            for s in range(q1):
                H11[g, r, s] = Dinv[g, r, s]
        if n_g == 0:
            continue
        for k in range(base, base + q1 * n_g):
            P[k] = 0.0
        comp = layout[0][kpos[k0]]
        first = layout[1][comp]
        size = layout[2][comp]
        cbase = layout[3][comp]
        # S^-1[K_g, K_g] read from its lower triangle only (K_g is sorted: c <= c2 is
        # kpos[c] <= kpos[c2]), each entry serving both P[c] and P[c2]: half the reads,
        # from half the memory (which then stays in cache)
        # (unsigned indices, as in schur)
        uk0 = np.uint64(k0)
        for c2 in range(n_g):
            row = np.uint64(cbase - first + (kpos[k0 + c2] - first) * size)
            for r in range(q1):
                fr = np.uint64(base + r * n_g)
                f = F[fr + c2]
                acc = 0.0
                for c in range(np.uint64(c2)):
                    sv = Sinv[row + np.uint64(kpos[uk0 + c])]
                    P[fr + c] += f * sv
                    acc += F[fr + c] * sv
                P[fr + c2] += acc + f * Sinv[row + np.uint64(kpos[k0 + c2])]
        for r in range(q1):
            for s in range(q1):
                t = 0.0
                for c in range(n_g):
                    t += P[base + r * n_g + c] * F[base + s * n_g + c]
                H11[g, r, s] += t


@kernel(nogil=True)
def row_leverages(
    c1: np.ndarray,
    pos: np.ndarray,
    a: np.ndarray,
    loc: np.ndarray,
    q1: int,
    kptr: np.ndarray,
    P: np.ndarray,
    H11: np.ndarray,
    Sinv: np.ndarray,
    layout: tuple,
    v: np.ndarray,
    h: np.ndarray,
    lo: int,
    hi: int,
) -> None:
    """For rows ``lo .. hi - 1``: ``v_i = H^-1[J_i, J_i] a_i`` from the selected inverse,
    and ``h_i = a_i' v_i`` (unsigned indices, :func:`urow`)."""
    uint = np.uint64
    width = uint(a.shape[1])
    uq1 = uint(q1)
    off = H11.shape[0] * q1
    rest = width - uq1
    for i in range(uint(lo), uint(hi)):
        g = uint(c1[i])
        n_g = uint(kptr[g + uint(1)] - kptr[g])
        base = uint(kptr[g]) * uq1
        for r in range(uq1):
            t = 0.0
            for s in range(uq1):
                t += H11[g, r, s] * a[i, s]
            for t2 in range(rest):
                t -= P[base + r * n_g + uint(loc[i, t2])] * a[i, uq1 + t2]
            v[i, r] = t
        for t1 in range(rest):
            row = urow(pos[i, uq1 + t1] - off, layout)
            t = 0.0
            for s in range(uq1):
                t -= P[base + s * n_g + uint(loc[i, t1])] * a[i, s]
            for t2 in range(rest):
                t += Sinv[row + uint(pos[i, uq1 + t2] - off)] * a[i, uq1 + t2]
            v[i, uq1 + t1] = t
        hh = 0.0
        for j in range(width):
            hh += a[i, j] * v[i, j]
        h[i] = hh


@kernel
def scatter_rows(pos: np.ndarray, a: np.ndarray, c: np.ndarray, size: int) -> np.ndarray:
    """``A' c``."""
    uint = np.uint64  # unsigned indices: :func:`urow`
    out = np.zeros(size)
    n, width = a.shape
    for i in range(uint(n)):
        for j in range(uint(width)):
            out[uint(pos[i, j])] += a[i, j] * c[i]
    return out


@kernel
def gather_rows(pos: np.ndarray, a: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``A s``."""
    uint = np.uint64  # unsigned indices: :func:`urow`
    n, width = a.shape
    out = np.empty(n)
    for i in range(uint(n)):
        t = 0.0
        for j in range(uint(width)):
            t += a[i, j] * s[uint(pos[i, j])]
        out[i] = t
    return out


@kernel(nogil=True)
def gradient_rows(
    X: np.ndarray,
    pos: np.ndarray,
    da: np.ndarray,
    eta: np.ndarray,
    y: np.ndarray,
    ntr: np.ndarray,
    aux: np.ndarray,
    family: object,
    l1: np.ndarray,
    w: np.ndarray,
    l3: np.ndarray,
    h: np.ndarray,
    As: np.ndarray,
    v: np.ndarray,
    u: np.ndarray,
    s: np.ndarray,
    top: np.ndarray,
    out: np.ndarray,
    lo: int,
    hi: int,
) -> None:
    """Each row's (``lo .. hi - 1``) part of the gradient of the Laplace log-likelihood,
    added to its top cluster's row of ``out`` ``(G, p + T + n_aux)``.

    With ``c_i = h_i l'''_i / 2`` and ``s = H^-1 A' c``: beta gets ``(l'_i + c_i - w_i
    (A s)_i) x_i``; theta_t (``da[t]`` = the row of ``dA/dtheta_t``) gets
    ``(l'_i + c_i - w_i (A s)_i) da_i u + l'_i da_i s - w_i da_i v_i``; an auxiliary
    parameter gets ``l_a + h_i l_eea / 2 + (A s)_i l_ea``.
    """
    uint = np.uint64  # unsigned indices: :func:`urow`
    p = X.shape[1]
    n_theta = da.shape[0]
    width = pos.shape[1]
    n_aux = aux.shape[0]
    l_a, l_ea, l_eea, l_aa = aux_buffers(n_aux)
    up = uint(p)
    for i in range(uint(lo), uint(hi)):
        gt = uint(top[i])
        ci = 0.5 * h[i] * l3[i]
        de = l1[i] + ci - w[i] * As[i]
        for r in range(up):
            out[gt, r] += de * X[i, r]
        for t in range(uint(n_theta)):
            du = 0.0
            ds = 0.0
            dv = 0.0
            for j in range(uint(width)):
                d = da[t, i, j]
                if d != 0.0:
                    pj = uint(pos[i, j])
                    du += d * u[pj]
                    ds += d * s[pj]
                    dv += d * v[i, j]
            out[gt, up + t] += de * du + l1[i] * ds - w[i] * dv
        if n_aux > 0:
            aux_derivs(family, y[i], ntr[i], eta[i], aux, l_a, l_ea, l_eea, l_aa)
            for k in range(n_aux):
                out[gt, p + n_theta + k] += l_a[k] + 0.5 * h[i] * l_eea[k] + As[i] * l_ea[k]


@kernel
def block_cholesky(S: np.ndarray, layout: tuple, logdet: np.ndarray, big: int) -> bool:
    """Cholesky factor of each component block smaller than ``big`` in place (lower
    triangle, row-major); ``logdet[p]`` = ``2 log L_pp``. False when a block is not positive
    definite. (The larger blocks: LAPACK, :mod:`mixedglm.engines.laplace_dense`.)

    Right-looking: after column ``j`` (copied to a contiguous vector) the trailing rows
    are updated along their contiguous entries, a loop without a reduction that
    vectorises (a 400 x 400 block in 6 ms rather than 9-11 by dot products of rows)."""
    _, comp_first, comp_size, comp_base = layout
    col = np.empty(comp_size.max() if comp_size.shape[0] else 0)
    for c in range(comp_first.shape[0]):
        n = comp_size[c]
        if n >= big:
            continue
        m = S[comp_base[c] : comp_base[c] + n * n].reshape((n, n))
        for j in range(n):
            s = m[j, j]
            if not s > 0.0:
                return False
            d = math.sqrt(s)
            m[j, j] = d
            logdet[comp_first[c] + j] = 2.0 * math.log(d)
            for i in range(j + 1, n):
                v = m[i, j] / d
                m[i, j] = v
                col[i] = v
            for i in range(j + 1, n):
                lij = col[i]
                row = m[i]
                for k in range(j + 1, i + 1):
                    row[k] -= lij * col[k]
    return True


@kernel
def block_solve(L: np.ndarray, layout: tuple, rhs: np.ndarray) -> np.ndarray:
    """``S^-1 rhs`` from the blocks' Cholesky factors."""
    _, comp_first, comp_size, comp_base = layout
    x = rhs.copy()
    for c in range(comp_first.shape[0]):
        n = comp_size[c]
        b = comp_base[c]
        f = comp_first[c]
        for i in range(n):
            t = x[f + i]
            ri = b + i * n
            for k in range(i):
                t -= L[ri + k] * x[f + k]
            x[f + i] = t / L[ri + i]
        for i in range(n - 1, -1, -1):
            t = x[f + i]
            for k in range(i + 1, n):
                t -= L[b + k * n + i] * x[f + k]
            x[f + i] = t / L[b + i * n + i]
    return x


@kernel
def block_inverse(L: np.ndarray, layout: tuple, big: int) -> np.ndarray:
    """``S^-1`` on the component blocks smaller than ``big`` from their Cholesky factors
    (same layout, both triangles; the larger blocks left zero, for LAPACK). ``M = L^-1`` by
    rows, then ``S^-1 = M' M`` as a sum of the outer products of ``M``'s rows: both loops
    run along contiguous rows, without reductions."""
    _, comp_first, comp_size, comp_base = layout
    out = np.zeros(L.shape[0])
    for c in range(comp_first.shape[0]):
        n = comp_size[c]
        if n >= big:
            continue
        b = comp_base[c]
        m = np.zeros((n, n))
        for i in range(n):
            ri = b + i * n
            for k in range(i):
                lik = L[ri + k]
                for j in range(k + 1):
                    m[i, j] -= lik * m[k, j]
            d = L[ri + i]
            for j in range(i):
                m[i, j] /= d
            m[i, i] = 1.0 / d
        for k in range(n):
            for i in range(k + 1):
                mki = m[k, i]
                ri = b + i * n
                for j in range(i + 1):
                    out[ri + j] += mki * m[k, j]
        for i in range(n):
            for j in range(i):
                out[b + j * n + i] = out[b + i * n + j]
    return out


@kernel
def mirror_lower(S: np.ndarray, base: int, n: int) -> None:
    """Copy the lower triangle of the row-major ``n x n`` block at ``S[base:]`` to its
    upper triangle."""
    for i in range(n):
        for j in range(i):
            S[base + j * n + i] = S[base + i * n + j]
