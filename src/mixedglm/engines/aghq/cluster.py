"""One cluster's pieces of adaptive quadrature: the records the kernels share, the weighted
observation terms, the mode of the integrand and the values on a grid.

Model for cluster i: ``eta_ij = xb_ij + w_ij' u_i`` with ``w_ij = Lambda' z_ij`` and
``u_i ~ N(0, I_q)``. The integrand is ``h(u) = sum_j c_j l(eta_ij) - u'u/2`` (``c_j`` the
observation's frequency weight, 1 without weights), integrated on ``u_k = m + R t_k``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from mixedglm.engines.aghq.linalg import chol_into, inv_lower_into
from mixedglm.families.dispatch import aux_derivs, eta_derivs, fisher_weight
from mixedglm.jit import kernel

RULE_MODE = 0
RULE_MEANVAR = 1
CURV_OBSERVED = 0
CURV_FISHER = 1

_MODE_TOL = 1e-11


class Data(NamedTuple):
    """The model's arrays, rows sorted by cluster (``N`` rows, ``G`` clusters).

    ``xb`` = X beta + offset ``(N,)``; ``X`` ``(N, p)``; ``Z`` ``(N, q)``; ``W`` = Z Lambda
    ``(N, q)``; ``y``, ``ntr`` (binomial trials) ``(N,)``; ``wts`` observation weights
    ``(N,)`` or empty (all 1); ``cwts`` cluster weights ``(G,)`` or empty; ``const``
    per-cluster normalising constants ``(G,)``; ``starts`` ``(G + 1,)``; ``aux`` the family's
    ancillary parameters.
    """

    xb: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    W: np.ndarray
    y: np.ndarray
    ntr: np.ndarray
    wts: np.ndarray
    cwts: np.ndarray
    const: np.ndarray
    starts: np.ndarray
    aux: np.ndarray


class Grid(NamedTuple):
    """The quadrature rule and the covariance parameterisation.

    ``nodes`` ``(K, q)`` and ``logw_adj`` = log weights + t't/2 ``(K,)`` of the product rule
    for N(0, I); ``E`` ``(n_theta, q, q)`` with ``Lambda = sum_l theta_l E_l``; ``lam``.
    """

    nodes: np.ndarray
    logw_adj: np.ndarray
    E: np.ndarray
    lam: np.ndarray


class Flags(NamedTuple):
    """``rule``: RULE_MODE / RULE_MEANVAR; ``curvature``: CURV_*; ``order`` 0-2; ``exact``:
    add the grid's motion to the gradient; ``warm``: start from the stored grids;
    ``tolerance``: of the mean-variance grid's fixed point (in posterior SDs)."""

    rule: int
    curvature: int
    order: int
    exact: bool
    warm: bool
    tolerance: float


class State(NamedTuple):
    """Each cluster's mode and grid, kept between calls (warm starts only)."""

    modes: np.ndarray
    grid_m: np.ndarray
    grid_r: np.ndarray


class Out(NamedTuple):
    """Per-cluster log-likelihoods ``(G,)`` and scores ``(G, P)``, Hessian sums per chunk
    ``(n_chunks, P, P)``, posterior means ``(G, q)`` and covariances ``(G, q, q)``, and a
    status per cluster (0 ok, 1 mode not found, 2 no mean-variance fixed point)."""

    ll: np.ndarray
    grad: np.ndarray
    hess: np.ndarray
    post_mean: np.ndarray
    post_cov: np.ndarray
    status: np.ndarray


# --------------------------------------------------------------------------------------------
# weighted observation terms: the only places the family is called


@kernel
def obs_derivs(fam, d: Data, j: int, eta: float) -> tuple[float, float, float, float]:
    """Observation ``j``'s log-likelihood kernel and its eta-derivatives 1-3, weighted."""
    l0, d1, d2, d3 = eta_derivs(fam, d.y[j], d.ntr[j], eta, d.aux)
    if d.wts.shape[0] == 0:
        return l0, d1, d2, d3
    c = d.wts[j]
    return c * l0, c * d1, c * d2, c * d3


@kernel
def obs_aux_derivs(fam, d: Data, j: int, eta: float, l_a, l_ea, l_eea, l_aa) -> None:
    """Observation ``j``'s derivatives in the ancillary parameters, weighted."""
    aux_derivs(fam, d.y[j], d.ntr[j], eta, d.aux, l_a, l_ea, l_eea, l_aa)
    if d.wts.shape[0] == 0:
        return
    c = d.wts[j]
    for a in range(l_a.shape[0]):
        l_a[a] *= c
        l_ea[a] *= c
        l_eea[a] *= c
        for b in range(l_a.shape[0]):
            l_aa[a, b] *= c


@kernel
def obs_fisher(fam, d: Data, j: int, eta: float) -> tuple[float, float]:
    """Observation ``j``'s expected-information weight and its eta-derivative, weighted."""
    fw, dfw = fisher_weight(fam, d.ntr[j], eta)
    if d.wts.shape[0] == 0:
        return fw, dfw
    return d.wts[j] * fw, d.wts[j] * dfw


@kernel
def eta_at(d: Data, j: int, u: np.ndarray) -> float:
    """``xb_j + w_j' u``."""
    eta = d.xb[j]
    for a in range(u.shape[0]):
        eta += d.W[j, a] * u[a]
    return eta


# --------------------------------------------------------------------------------------------
# mode and curvature


@kernel
def find_mode(fam, d: Data, s: int, e: int, u: np.ndarray, neg_hess: np.ndarray, ws) -> bool:
    """Mode of h(u) by Newton with step halving, in place in ``u``; ``neg_hess`` = -h''.

    ``ws`` = five scratch arrays (grad, delta, u_prev: (q,); chol, chol_inv: (q, q)).
    """
    q = u.shape[0]
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
            l0, d1, d2, _ = obs_derivs(fam, d, j, eta_at(d, j, u))
            h += l0
            for a in range(q):
                grad[a] += d1 * d.W[j, a]
                for b in range(a + 1):
                    neg_hess[a, b] -= d2 * d.W[j, a] * d.W[j, b]
        for a in range(q):
            for b in range(a):
                neg_hess[b, a] = neg_hess[a, b]
        if not (h >= h_prev - 1e-13 * abs(h_prev)) and step > 1e-10:
            step *= 0.5  # the last step went downhill: back up
            for a in range(q):
                u[a] = u_prev[a] + step * delta[a]
            continue
        damped = False
        if not chol_into(neg_hess, chol):
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
                ok = chol_into(neg_hess, chol)
                for a in range(q):
                    neg_hess[a, a] -= tau
                if ok:
                    break
                tau *= 4.0
            else:
                return False
        inv_lower_into(chol, chol_inv)
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


@kernel
def fisher_curvature(fam, d: Data, s: int, e: int, m: np.ndarray, out: np.ndarray) -> None:
    """``I + sum_j W(eta_j) w_j w_j'`` at ``m`` (lme4's PIRLS curvature)."""
    q = m.shape[0]
    for a in range(q):
        for b in range(q):
            out[a, b] = 1.0 if a == b else 0.0
    for j in range(s, e):
        fw, _ = obs_fisher(fam, d, j, eta_at(d, j, m))
        for a in range(q):
            for b in range(q):
                out[a, b] += fw * d.W[j, a] * d.W[j, b]


# --------------------------------------------------------------------------------------------
# values on a grid


@kernel
def grid_values(
    fam,
    d: Data,
    s: int,
    e: int,
    m: np.ndarray,
    chol: np.ndarray,
    g: Grid,
    u_nodes: np.ndarray,
    log_terms: np.ndarray,
    d1s: np.ndarray,
    d2s: np.ndarray,
) -> float:
    """Fill the grid's nodes ``u_k = m + R t_k``, the log integrand terms and the first two
    eta-derivatives at every (node, observation) in ``d1s``, ``d2s`` ``(K, n_i)``; return
    log sum_k exp(term_k)."""
    n_nodes, q = g.nodes.shape
    for k in range(n_nodes):
        hk = 0.0
        for a in range(q):
            v = m[a]
            for b in range(a + 1):
                v += chol[a, b] * g.nodes[k, b]
            u_nodes[k, a] = v
            hk -= 0.5 * v * v
        for j in range(s, e):
            eta = d.xb[j]
            for a in range(q):
                eta += d.W[j, a] * u_nodes[k, a]
            l0, d1, d2, _ = obs_derivs(fam, d, j, eta)
            hk += l0
            d1s[k, j - s] = d1
            d2s[k, j - s] = d2
        log_terms[k] = g.logw_adj[k] + hk
    top = -np.inf
    for k in range(n_nodes):
        if log_terms[k] > top:
            top = log_terms[k]
    acc = 0.0
    for k in range(n_nodes):
        acc += math.exp(log_terms[k] - top)
    return top + math.log(acc)


@kernel
def moments_into(
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
