"""The joint Laplace engine's Hessians: differences of its exact gradient
(the methods of :class:`~mixedglm.engines.laplace_joint.JointLaplaceEngine` of the same
names).

Each differenced gradient needs the modes at the moved parameters: PIRLS starts there from
``u^ + h du^/dparam`` (the implicit derivative, one solve with the factor at hand), which
saves one factorisation per moved point. The covariance of the estimates comes from the
symmetrised central differences (lme4's ``vcov`` is a finite-difference Hessian of its
deviance); Newton's steps use forward differences, half the cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mixedglm.engines import laplace_kernels as kern

if TYPE_CHECKING:
    from mixedglm.engines.laplace_joint import JointLaplaceEngine


def fd_hessian(
    engine: JointLaplaceEngine, params: np.ndarray, columns: np.ndarray | None = None
) -> np.ndarray:
    """Central differences of the exact gradient in the directions ``columns`` (all by
    default), as columns of a ``(P, P)`` array (other columns zero)."""
    params = np.asarray(params, dtype=float)
    k = params.size
    hess = np.zeros((k, k))
    centre = engine._at(params)
    base = centre[0]
    start = base["u"] if base else engine.u
    for r in range(k) if columns is None else columns:
        step = engine.fd_step * max(1.0, abs(params[r]))
        up, down = params.copy(), params.copy()
        up[r] += step
        down[r] -= step
        move = mode_derivative(engine, base, r)
        engine.u = start + step * move
        g_up = engine.gradient(up)[1]
        engine.u = start - step * move
        hess[:, r] = (g_up - engine.gradient(down)[1]) / (2.0 * step)
    engine._restore(params, centre)
    return hess


def mode_derivative(engine: JointLaplaceEngine, st: dict, r: int) -> np.ndarray:
    """``d u^ / d params[r]`` at a PIRLS state (zero for an auxiliary parameter, or
    without a state): the implicit derivative of ``A' l'(eta) - u = 0``,
    ``H du = d(A' l')/d params[r]``. Perturbed evaluations start from ``u^ + h du``
    instead of ``u^``: their modes are then found in one Newton step fewer."""
    if not st or r >= engine.n_beta + engine.n_theta:
        return np.zeros(engine.n_u)
    a, w = st["a"], st["w"]
    if r < engine.n_beta:
        rhs = kern.scatter_rows(engine.pos, a, -w * engine.X[:, r], engine.n_u)
    else:
        da = np.ascontiguousarray(engine._da[r - engine.n_beta])
        moved = kern.gather_rows(engine.pos, da, st["u"])
        rhs = kern.scatter_rows(engine.pos, da, st["l1"], engine.n_u)
        rhs -= kern.scatter_rows(engine.pos, a, w * moved, engine.n_u)
    return engine._solve(st["fac"], rhs)


def newton_hessian(
    engine: JointLaplaceEngine, params: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Log-likelihood, gradient and the Hessian Newton steps with: forward differences
    of the exact gradient (``P`` gradients, half the central differences' cost; their
    ``O(h)`` error only slows the last steps, the convergence test uses the exact
    gradient)."""
    params = np.asarray(params, dtype=float)
    base, score = engine._gradient_terms(params)
    centre = engine._at(params)
    ll0, grad0 = (engine.loglik_from(base) if base else -np.inf), score.sum(axis=0)
    if not np.isfinite(ll0):
        return ll0, grad0, engine.exact_hessian(params)
    hess = np.empty((engine.n_params, engine.n_params))
    for r in range(engine.n_params):
        step = 10 * engine.fd_step * max(1.0, abs(params[r]))
        up = params.copy()
        up[r] += step
        engine.u = base["u"] + step * mode_derivative(engine, base, r)
        hess[:, r] = (engine.gradient(up)[1] - grad0) / step
    engine._restore(params, centre)
    return ll0, grad0, 0.5 * (hess + hess.T)
