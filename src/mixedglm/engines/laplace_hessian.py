"""The joint Laplace engine's Hessians: differences of its exact gradient
(the methods of :class:`~mixedglm.engines.laplace_joint.JointLaplaceEngine` of the same
names).

Each differenced gradient needs the modes at the moved parameters: PIRLS starts there from
``u^ + h du^/dparam`` (the implicit derivative, one solve with the factor at hand), which is
the mode up to ``O(h^2)``. With the small step :data:`COVARIANCE_STEP` that start already
meets PIRLS's convergence test, so each moved point costs one factorisation of ``H``: the
covariance's central differences (lme4's ``vcov`` is itself a finite-difference Hessian of
its deviance) cost 12 factorisations on the crossed benchmark instead of 16 at 1e-5, with
standard errors equal to 1e-6. Forward differences at that step (6 gradients) were tried:
standard errors within 1.4e-5, but on a fit whose estimates drift with a separating
covariate the convergence recheck on them (:func:`mixedglm.models.multilevel._recheck`)
took 100 more Newton steps, and the in-memory and Dask fits' standard errors differed by
1.6e-7 at 1e-7. Crossed fits (in memory only) take forward differences at
:data:`FORWARD_COVARIANCE_STEP` (6 gradients instead of 12 on the crossed benchmark, a fifth
of its time; standard errors within 1.3e-6 of central differences); where the recheck
refutes convergence on them, central differences decide and serve the further steps.
Newton's steps (nested factors) use forward differences at :data:`NEWTON_STEP`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mixedglm.blas_threads import one_blas_thread
from mixedglm.engines import laplace_kernels as kern
from mixedglm.optim import Evaluation

if TYPE_CHECKING:
    from mixedglm.engines.laplace_joint import JointLaplaceEngine

COVARIANCE_STEP = 1e-6  # relative to max(1, |param|)
FORWARD_COVARIANCE_STEP = 1e-7  # crossed fits' covariance: forward differences
NEWTON_STEP = 1e-4  # Newton's differenced Hessians


def fd_hessian(
    engine: JointLaplaceEngine,
    params: np.ndarray,
    columns: np.ndarray | None = None,
    step: float | None = None,
) -> np.ndarray:
    """Differences of the exact gradient in the directions ``columns`` (all by default), as
    columns of a ``(P, P)`` array (other columns zero): forward differences at ``step``
    (by default the engine's ``fd_step``, :data:`COVARIANCE_STEP`) relative to
    ``max(1, |param|)``."""
    return _differences(engine, params, columns, step, central=False)


def covariance_hessian(engine: JointLaplaceEngine, params: np.ndarray) -> np.ndarray:
    """The symmetrised Hessian for the covariance: forward differences at
    :data:`FORWARD_COVARIANCE_STEP` where ``engine.forward_covariance``, else central
    differences at the engine's ``fd_step``."""
    if engine.forward_covariance:
        hess = fd_hessian(engine, params, None, FORWARD_COVARIANCE_STEP)
    else:
        hess = central_hessian(engine, params)
    return 0.5 * (hess + hess.T)


def central_hessian(
    engine: JointLaplaceEngine, params: np.ndarray, step: float | None = None
) -> np.ndarray:
    """Central differences of the exact gradient at ``step`` (by default the engine's
    ``fd_step``): the covariance's Hessian."""
    return _differences(engine, params, None, step, central=True)


def _differences(
    engine: JointLaplaceEngine,
    params: np.ndarray,
    columns: np.ndarray | None,
    step: float | None,
    central: bool,
) -> np.ndarray:
    params = np.asarray(params, dtype=float)
    k = params.size
    hess = np.zeros((k, k))
    centre = engine._at(params)
    base = centre[0]
    start = base["u"] if base else engine.u
    grad0 = None if central else engine.gradient(params)[1]
    remembered = engine._last_gradient
    rel = engine.fd_step if step is None else step
    for r in range(k) if columns is None else columns:
        h = rel * max(1.0, abs(params[r]))
        up = params.copy()
        up[r] += h
        move = mode_derivative(engine, base, r)
        engine.u = start + h * move
        g_up = engine.gradient(up)[1]
        if grad0 is not None:
            hess[:, r] = (g_up - grad0) / h
            continue
        down = params.copy()
        down[r] -= h
        engine.u = start - h * move
        hess[:, r] = (g_up - engine.gradient(down)[1]) / (2.0 * h)
    engine._restore(params, centre)
    engine._last_gradient = remembered
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


def predicted_modes(
    engine: JointLaplaceEngine, st: dict, params0: np.ndarray, params: np.ndarray
) -> np.ndarray:
    """The modes at ``params`` to first order from a PIRLS state at ``params0``:
    ``u^ + (du^/dparams) (params - params0)`` (one solve; auxiliary parameters' changes
    ignored, as in :func:`mode_derivative`)."""
    d = np.asarray(params, dtype=float) - params0
    nb, nt = engine.n_beta, engine.n_theta
    with one_blas_thread():  # see JointLaplaceEngine._pirls_at
        moved = engine.X @ d[:nb]  # the change of eta at fixed u
    rhs = np.zeros(engine.n_u)
    if nt and np.any(d[nb : nb + nt]):
        da = engine.theta_rows(d[nb : nb + nt])  # A is linear in theta
        moved += kern.gather_rows(engine.pos, da, st["u"])
        rhs += kern.scatter_rows(engine.pos, da, st["l1"], engine.n_u)
    rhs -= kern.scatter_rows(engine.pos, st["a"], st["w"] * moved, engine.n_u)
    return st["u"] + engine._solve(st["fac"], rhs)


def newton_hessian(
    engine: JointLaplaceEngine, params: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Log-likelihood, gradient and the symmetrised Hessian of :func:`fd_hessian` at the
    step :data:`NEWTON_STEP`."""
    params = np.asarray(params, dtype=float)
    base, score = engine._gradient_terms(params)
    ll0 = engine.loglik_from(base) if base else -np.inf
    hess = fd_hessian(engine, params, step=NEWTON_STEP)
    return ll0, score.sum(axis=0), 0.5 * (hess + hess.T)


def profiled_hessian(engine: JointLaplaceEngine, params: np.ndarray) -> np.ndarray:
    """The Hessian of the penalised log-likelihood profiled over the modes,
    ``J' (-W) J + L' H^-1 L`` (``J``: ``d eta / d(beta, theta)`` at fixed ``u``, ``L``:
    the columns of :func:`mode_derivative`'s right-hand sides): the Laplace Hessian without
    the curvature of ``log det H / 2``, in ``P`` solves with the factor at hand instead of
    ``P`` differenced gradients (not always negative definite: ``eta`` is bilinear in
    ``theta`` and ``u``). Auxiliary parameters' columns: forward differences.
    On the crossed benchmark at the optimum it is 2 % off in the fixed effects' curvature
    and 45 % in the SDs' (standard errors need :func:`fd_hessian`); as Newton's Hessian
    (:class:`ProfiledNewtonSteps`) it saves 0.4 s of CPU for two more steps."""
    params = np.asarray(params, dtype=float)
    st, a, _, _ = engine._at(params)
    if not st:
        return fd_hessian(engine, params)
    nb, k = engine.n_beta, engine.n_beta + engine.n_theta
    w = st["w"]
    jac = np.empty((w.shape[0], k))
    jac[:, :nb] = engine.X
    lhs = np.empty((engine.n_u, k))
    for r in range(k):
        if r >= nb:
            da = np.ascontiguousarray(engine._da[r - nb])
            jac[:, r] = kern.gather_rows(engine.pos, da, st["u"])
            lhs[:, r] = kern.scatter_rows(engine.pos, da, st["l1"], engine.n_u)
        else:
            lhs[:, r] = 0.0
        lhs[:, r] -= kern.scatter_rows(engine.pos, a, w * jac[:, r], engine.n_u)
    sol = np.column_stack([engine._solve(st["fac"], lhs[:, r]) for r in range(k)])
    hess = np.zeros((engine.n_params, engine.n_params))
    with one_blas_thread():
        hess[:k, :k] = lhs.T @ sol - (jac.T * w) @ jac
    if engine.n_params > k:
        fd = fd_hessian(engine, params, np.arange(k, engine.n_params))
        hess[:, k:] = fd[:, k:]
        hess[k:, :k] = fd[:k, k:].T
    return 0.5 * (hess + hess.T)


def logdet_curvature(engine: JointLaplaceEngine, theta: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per theta, the second derivative of ``-log det H / 2`` at fixed ``W`` where its
    factor has one random effect and one parameter (zero for the others), each factor taken
    alone: ``H`` restricted to such a factor is diagonal, ``1 + (c theta)^2 d_j`` with
    ``d_j`` the sum of ``w_i z_i^2`` over level ``j``'s rows and ``c`` the factor's
    ``Lambda`` per unit of theta, so that the term is ``-sum_j d'_j (1 - theta^2 d'_j) /
    (1 + theta^2 d'_j)^2`` with ``d'_j = c^2 d_j``. The other factors' effects and the
    change of ``W`` are left out: Newton's Hessian only (:func:`profiled_hessian`)."""
    out = np.zeros(engine.n_theta)
    for k, f in enumerate(engine.design.factors):
        if f.q != 1 or f.structure.n_theta != 1:
            continue
        c = float(engine._bases[k][0][0, 0])
        z = f.Z[:, 0]
        d = c * c * np.bincount(f.codes, weights=w * z * z, minlength=f.n_levels)
        t2 = float(engine.theta_of(theta, k)[0]) ** 2
        out[engine._theta_slices[k].start] = -np.sum(d * (1.0 - t2 * d) / (1.0 + t2 * d) ** 2)
    return out


class ProfiledNewtonSteps:
    """The engine as Newton's objective with :func:`profiled_hessian` plus
    :func:`logdet_curvature` as its Hessian where that is negative definite, else the
    engine's differenced one (the fit of crossed factors; the covariance comes from the
    engine's own). On the crossed benchmark at the optimum the log determinant's term takes
    the SDs' curvature from 45 % to 4 % off, and the fit from 6 Newton iterations to 5
    (to 4 with the Hessian held only from a scaled gradient of 0.01:
    ``models.multilevel.HOLD_CROSSED``).
    Near a zero variance the profiled Hessian is indefinite: on its eigenvalue-modified
    steps a crossed fit with SDs near 0 crept for 100 iterations."""

    def __init__(self, engine: JointLaplaceEngine) -> None:
        self.engine = engine

    def __call__(self, params: np.ndarray, order: int) -> Evaluation:
        if order < 2:
            return self.engine(params, order)
        ll, grad = self.engine.gradient(params)
        hess = profiled_hessian(self.engine, params)
        st = self.engine._at(params)[0]
        if st:  # (without modes profiled_hessian differenced the gradient)
            nb, k = self.engine.n_beta, self.engine.n_beta + self.engine.n_theta
            hess[nb:k, nb:k] += np.diag(logdet_curvature(self.engine, params[nb:k], st["w"]))
        try:
            np.linalg.cholesky(-hess)
        except np.linalg.LinAlgError:
            return self.engine(params, 2)
        return Evaluation(ll, grad, hess)
