"""Restricted maximum likelihood (REML) for linear mixed models: lme4's ``lmer`` default
and Stata's ``mixed, reml``.

With ``V = I + Z Lr Lr' Z'`` (``Lr = Lambda / sigma``, the relative Cholesky factor) the
REML log-likelihood profiled over ``sigma`` is

``-1/2 [ log|V| + log|X' V^-1 X| + (n - p) (1 + log(2 pi r'V^-1 r / (n - p))) ]``

with ``r = y - X beta_GLS``: lme4's REML criterion. Everything is a sum over clusters of
``q x q`` terms (``|V| = prod_j |I + Lr' Z_j'Z_j Lr|`` and the Woodbury identity), computed
from per-cluster cross-products made once, so an evaluation costs ``O(G q^3)``, whatever
the number of rows. The profiled criterion is minimised over ``Lr`` (BFGS); then
``sigma^2 = r'V^-1 r / (n - p)``, the fixed effects are the GLS estimates with lmer's
covariance ``sigma^2 (X'V^-1 X)^-1``, and the variance parameters' covariance is the inverse
of the negative Hessian of the (unprofiled) REML log-likelihood in ``[theta, log sigma]``
(central differences at two steps, extrapolated), independent of the fixed effects' as in
Stata's ``mixed, reml``. The optimum is polished by a few Newton steps on the profiled
criterion, so that the same model fitted from sums added in another order (on Dask, from
the partitions' cross-products) agrees to about 1e-9.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from scipy import optimize

from mixedglm.design.build import ModelDesign
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.errors import MixedGLMError
from mixedglm.families import Family
from mixedglm.inference import covariance_from_hessian
from mixedglm.optim import OptSummary
from mixedglm.results.glmm import GLMMResults

__all__ = ["CrossProducts", "fit_reml"]

LOG_2PI = math.log(2.0 * math.pi)


class CrossProducts:
    """Per-cluster ``X'X, X'Z, Z'Z, X'y, Z'y, y'y`` and the totals."""

    def __init__(self, design: ModelDesign) -> None:
        X, Z, y, s = design.X, design.Z, design.y - design.offset, design.starts[:-1]
        self.XtX = X.T @ X
        self.Xty = X.T @ y
        self.yty = float(y @ y)
        self.XtZ = np.add.reduceat(X[:, :, None] * Z[:, None, :], s, axis=0)
        self.ZtZ = np.add.reduceat(Z[:, :, None] * Z[:, None, :], s, axis=0)
        self.Zty = np.add.reduceat(Z * y[:, None], s, axis=0)
        self.n, self.p = X.shape
        self.q = Z.shape[1]

    @classmethod
    def combine(cls, parts: list[CrossProducts], order: np.ndarray) -> CrossProducts:
        """The cross-products of data split in parts (each holding whole clusters): the
        totals added, the clusters' terms in ``order`` (of their concatenation)."""
        out = cls.__new__(cls)
        out.XtX = sum(c.XtX for c in parts)
        out.Xty = sum(c.Xty for c in parts)
        out.yty = float(sum(c.yty for c in parts))
        for name in ("XtZ", "ZtZ", "Zty"):
            setattr(out, name, np.concatenate([getattr(c, name) for c in parts])[order])
        out.n = sum(c.n for c in parts)
        out.p, out.q = parts[0].p, parts[0].q
        return out


def _solve_parts(cp: CrossProducts, lam_rel: np.ndarray):
    """``log|V|``, ``X'V^-1X``, ``X'V^-1y``, ``y'V^-1y`` and, per cluster, ``M^-1`` and
    ``Lr'Z'`` products (for the random effects)."""
    A = np.einsum("ba,gbc,cd->gad", lam_rel, cp.ZtZ, lam_rel)  # Lr' Z'Z Lr
    M = A + np.eye(cp.q)
    chol = np.linalg.cholesky(M)
    logdet_v = 2.0 * float(np.sum(np.log(np.einsum("gii->gi", chol))))
    XZL = cp.XtZ @ lam_rel  # (G, p, q)
    ZyL = cp.Zty @ lam_rel  # (G, q)
    Minv_ZyL = np.linalg.solve(M, ZyL[:, :, None])[:, :, 0]
    Minv_LZX = np.linalg.solve(M, np.transpose(XZL, (0, 2, 1)))  # (G, q, p)
    xvx = cp.XtX - np.einsum("gpq,gqr->pr", XZL, Minv_LZX)
    xvy = cp.Xty - np.einsum("gpq,gq->p", XZL, Minv_ZyL)
    yvy = cp.yty - float(np.einsum("gq,gq->", ZyL, Minv_ZyL))
    return logdet_v, xvx, xvy, yvy, M, ZyL, XZL


def _profiled(cp: CrossProducts, lam_rel: np.ndarray) -> tuple[float, dict]:
    logdet_v, xvx, xvy, yvy, M, ZyL, XZL = _solve_parts(cp, lam_rel)
    chol = np.linalg.cholesky(xvx)
    logdet_x = 2.0 * float(np.sum(np.log(np.diag(chol))))
    beta = np.linalg.solve(xvx, xvy)
    rss = yvy - float(beta @ xvy)
    dof = cp.n - cp.p
    sigma2 = rss / dof
    ll = -0.5 * (logdet_v + logdet_x + dof * (1.0 + LOG_2PI + math.log(sigma2)))
    return ll, {"beta": beta, "sigma2": sigma2, "xvx": xvx, "M": M, "ZyL": ZyL, "XZL": XZL}


def _unprofiled(cp: CrossProducts, structure: CovarianceStructure, x: np.ndarray) -> float:
    """The REML log-likelihood at ``[theta (absolute), log sigma]``."""
    t = structure.n_theta
    sigma2 = math.exp(2.0 * x[t])
    lam_rel = structure.lam(x[:t]) / math.sqrt(sigma2)
    logdet_v, xvx, xvy, yvy, *_ = _solve_parts(cp, lam_rel)
    logdet_x = 2.0 * float(np.sum(np.log(np.diag(np.linalg.cholesky(xvx)))))
    beta = np.linalg.solve(xvx, xvy)
    rss = yvy - float(beta @ xvy)
    dof = cp.n - cp.p
    return -0.5 * (logdet_v + logdet_x + dof * (LOG_2PI + math.log(sigma2)) + rss / sigma2)


def _hessian(f: Callable[[np.ndarray], float], x: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    n = x.shape[0]
    h = rel * np.maximum(1.0, np.abs(x))
    out = np.empty((n, n))
    f0 = f(x)
    for a in range(n):
        for b in range(a, n):
            if a == b:
                up, down = x.copy(), x.copy()
                up[a] += h[a]
                down[a] -= h[a]
                out[a, a] = (f(up) - 2 * f0 + f(down)) / h[a] ** 2
                continue
            vals = []
            for sa, sb in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                z = x.copy()
                z[a] += sa * h[a]
                z[b] += sb * h[b]
                vals.append(f(z))
            out[a, b] = out[b, a] = (vals[0] - vals[1] - vals[2] + vals[3]) / (4 * h[a] * h[b])
    return out


def richardson_hessian(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """The Hessian by central differences at two steps, extrapolated (Richardson): its
    error is of order ``h**4`` with steps large enough that the rounding of ``f`` (which
    differs with the order of the sums, in memory or on Dask) moves it by about 1e-9."""
    return (4.0 * _hessian(f, x, 1e-3) - _hessian(f, x, 2e-3)) / 3.0


def _criterion(cp: CrossProducts, structure: CovarianceStructure, theta_rel: np.ndarray) -> float:
    """The profiled REML criterion to minimise (infinite where ``V`` is not definite)."""
    try:
        return -_profiled(cp, structure.lam(theta_rel))[0]
    except np.linalg.LinAlgError:
        return math.inf


def newton_polish(f: Callable[[np.ndarray], float], x: np.ndarray, steps: int = 4) -> np.ndarray:
    """A few Newton steps on ``f`` (central differences) from the optimisers' ``x``, each
    kept unless it raises ``f``: the optimum to about 1e-9 rather than the derivative-free
    polish's 1e-7, so that fits whose sums were added in another order (on Dask) agree."""
    fx = f(x)
    for _ in range(steps):
        h = 1e-4 * np.maximum(1.0, np.abs(x))
        grad = np.array(
            [(f(x + h[a] * e) - f(x - h[a] * e)) / (2 * h[a]) for a, e in enumerate(np.eye(x.size))]
        )
        hess = _hessian(f, x)
        if not np.all(np.isfinite(hess)) or np.any(np.linalg.eigvalsh(hess) <= 0):
            break
        step = np.linalg.solve(hess, grad)
        if np.max(np.abs(step)) > 1e-3 * max(1.0, float(np.max(np.abs(x)))):
            break  # far from where the optimisers stopped: keep their answer
        y = x - step
        fy = f(y)
        # near the optimum f changes by less than its rounding: a step that does not raise
        # it beyond that is kept (the gradient, not f, says where the optimum is)
        if not fy <= fx + 1e-12 * max(1.0, abs(fx)):
            break
        x, fx = y, min(fx, fy)
        if np.max(np.abs(step)) < 1e-12 * max(1.0, float(np.max(np.abs(x)))):
            break
    return x


def fit_reml(
    design: ModelDesign,
    family: Family,
    structure: CovarianceStructure,
    *,
    maxiter: int = 200,
    level: float = 95.0,
    log: Callable[[str], None] | None = None,
    cross: CrossProducts | None = None,
) -> GLMMResults:
    """Fit a linear mixed model by REML on a ready :class:`ModelDesign` (or on the
    ``cross``-products of its rows, made elsewhere: the Dask partitions')."""
    if family.name != "gaussian" or family.link != "identity":
        raise MixedGLMError(
            f"REML is for linear (gaussian, identity-link) models, not {family.name}/{family.link}"
        )
    t0 = time.perf_counter()
    cp = cross if cross is not None else CrossProducts(design)
    if cp.n <= cp.p:
        raise MixedGLMError("REML needs more observations than fixed effects")
    scales = np.sqrt(np.mean(design.Z**2, axis=0))
    x0 = 2.0 * structure.start(scales)
    history: list[float] = []

    def objective(theta_rel: np.ndarray) -> float:
        try:
            value = -_profiled(cp, structure.lam(theta_rel))[0]
        except np.linalg.LinAlgError:
            return math.inf
        history.append(-value)
        return value

    if log:
        log("Performing REML optimization (BFGS on the profiled criterion):")
    sol = optimize.minimize(
        objective, x0, method="BFGS", options={"gtol": 1e-7, "maxiter": maxiter}
    )
    polish = optimize.minimize(
        objective, sol.x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12}
    )
    best = polish if polish.fun <= sol.fun else sol
    theta_rel = newton_polish(lambda z: _criterion(cp, structure, z), best.x)
    loglik, parts = _profiled(cp, structure.lam(theta_rel))
    sigma = math.sqrt(parts["sigma2"])
    theta = theta_rel * sigma
    beta = parts["beta"]
    p, t = cp.p, structure.n_theta
    params = np.concatenate([beta, theta, [math.log(sigma)]])
    var_x = np.concatenate([theta, [math.log(sigma)]])
    hess = richardson_hessian(lambda z: _unprofiled(cp, structure, z), var_x)
    lam = structure.lam(theta)
    zero = np.linalg.norm(lam, axis=1) * scales < 1e-6
    basis = structure.basis()
    flags = np.zeros(t + 1, dtype=bool)
    for a in np.flatnonzero(zero):
        flags[:t] |= np.any(basis[:, a, :] != 0, axis=1)
    cov_var, ok = covariance_from_hessian(hess, flags)
    cov = np.zeros((p + t + 1, p + t + 1))
    cov[:p, :p] = parts["sigma2"] * np.linalg.inv(parts["xvx"])
    cov[p:, p:] = cov_var
    notes = list(design.notes)
    if zero.any():
        names = " ".join(structure.columns[a] for a in np.flatnonzero(zero))
        notes.append(
            f"note: var({names}) estimated at zero (on the boundary of the parameter space)"
        )
    if not ok:
        notes.append("note: Hessian is not negative definite; standard errors may be unreliable")
    # posterior (BLUP) of u = b / Lambda-scale: u_j = M_j^-1 Lr'Z_j'(y - X beta) / sigma
    lam_rel = structure.lam(theta_rel)
    resid_zl = parts["ZyL"] - np.einsum("gpq,p->gq", parts["XZL"], beta)
    M = parts["M"]
    mean_u = np.linalg.solve(M, resid_zl[:, :, None])[:, :, 0] / sigma
    cov_u = np.linalg.inv(M)
    pooled = _profiled(cp, np.zeros_like(lam_rel))[0]
    converged = bool(best.success or polish.fun <= sol.fun)
    opt = OptSummary(
        converged=converged,
        iterations=int(getattr(sol, "nit", 0)),
        loglik=loglik,
        scaled_gradient=float("nan"),
        max_abs_gradient=float(np.max(np.abs(getattr(sol, "jac", np.zeros(1))))),
        message=str(best.message),
        history=(),
        evaluations=len(history),
    )
    if log:
        log(f"Log restricted-likelihood = {loglik:.8g}")
    return GLMMResults(
        design=design,
        family=family,
        structure=structure,
        method="REML",
        nagq=0,
        params_all=params,
        cov_all=cov,
        loglik=loglik,
        loglik_pooled=pooled,
        opt=opt,
        time_s=time.perf_counter() - t0,
        notes=tuple(notes),
        posterior_mean=mean_u,
        posterior_cov=cov_u,
        hessian_ok=ok,
        boundary=flags[:t],
        level=level,
    )
