"""The pooled GLM (no random effects): start values and the LR test's reference model."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from mixedglm.families import Family
from mixedglm.families.kernels import aux_derivs, eta_derivs
from mixedglm.optim import Evaluation


@numba.njit(cache=True)
def _glm_block(
    X: np.ndarray,
    beta: np.ndarray,
    offset: np.ndarray,
    y: np.ndarray,
    ntr: np.ndarray,
    aux: np.ndarray,
    family: int,
    link: int,
    order: int,
    lo: int,
    hi: int,
    grad: np.ndarray,
    hess: np.ndarray,
) -> float:
    """Rows ``lo .. hi - 1``: the log-likelihood (returned), and the gradient and Hessian in
    ``[beta, aux]`` accumulated into ``grad`` and ``hess`` (lower triangle)."""
    p = X.shape[1]
    n_aux = aux.shape[0]
    l_a = np.zeros(n_aux)
    l_ea = np.zeros(n_aux)
    l_eea = np.zeros(n_aux)
    l_aa = np.zeros((n_aux, n_aux))
    loglik = 0.0
    for j in range(lo, hi):
        eta = offset[j]
        for r in range(p):
            eta += X[j, r] * beta[r]
        l0, d1, d2, _ = eta_derivs(family, link, y[j], ntr[j], eta, aux)
        loglik += l0
        if order == 0:
            continue
        if n_aux > 0:
            aux_derivs(family, link, y[j], ntr[j], eta, aux, l_a, l_ea, l_eea, l_aa)
        for r in range(p):
            grad[r] += d1 * X[j, r]
        for a in range(n_aux):
            grad[p + a] += l_a[a]
        if order < 2:
            continue
        for r in range(p):
            xr = d2 * X[j, r]
            for c in range(r + 1):
                hess[r, c] += xr * X[j, c]
        for a in range(n_aux):
            for r in range(p):
                hess[p + a, r] += l_ea[a] * X[j, r]
            for b in range(a + 1):
                hess[p + a, p + b] += l_aa[a, b]
    return loglik


@numba.njit(cache=True, parallel=True)
def _glm_blocks(X, beta, offset, y, ntr, aux, family, link, order, bounds, lls, grads, hesses):
    for k in numba.prange(bounds.shape[0] - 1):
        lls[k] = _glm_block(
            X,
            beta,
            offset,
            y,
            ntr,
            aux,
            family,
            link,
            order,
            bounds[k],
            bounds[k + 1],
            grads[k],
            hesses[k],
        )


@dataclass
class GLMObjective:
    """Log-likelihood of ``[beta, aux]`` of a GLM, with analytic gradient and Hessian."""

    X: np.ndarray
    y: np.ndarray
    trials: np.ndarray
    offset: np.ndarray
    family: Family

    def __post_init__(self) -> None:
        self._const = float(np.sum(self.family.log_constant(self.y, self.trials)))

    @property
    def n_params(self) -> int:
        return self.X.shape[1] + self.family.n_aux

    def __call__(self, params: np.ndarray, order: int) -> Evaluation:
        """Log-likelihood, gradient and Hessian at ``params`` (compiled, threaded over
        blocks of rows; no BLAS call, whose idle threads would slow the next kernel)."""
        p = self.X.shape[1]
        beta = np.ascontiguousarray(params[:p], dtype=float)
        aux = np.ascontiguousarray(params[p:], dtype=float)
        n_par = p + aux.shape[0]
        n = self.X.shape[0]
        n_blocks = max(1, min(64, n // 2000))
        bounds = np.linspace(0, n, n_blocks + 1).astype(np.int64)
        lls = np.zeros(n_blocks)
        grads = np.zeros((n_blocks, n_par))
        hesses = np.zeros((n_blocks, n_par, n_par))
        _glm_blocks(
            self.X,
            beta,
            self.offset,
            self.y,
            self.trials,
            aux,
            self.family.code,
            self.family.link_code,
            order,
            bounds,
            lls,
            grads,
            hesses,
        )
        loglik = float(lls.sum()) + self._const
        if order == 0:
            return Evaluation(loglik)
        grad = grads.sum(axis=0)
        if order == 1:
            return Evaluation(loglik, grad)
        hess = hesses.sum(axis=0)
        hess = np.tril(hess) + np.tril(hess, -1).T
        return Evaluation(loglik, grad, hess)

    def start(self) -> np.ndarray:
        """Start values: the constant (if any) at the link of the mean outcome; the
        family's auxiliary parameters from the outcome's moments (or, for cut points, its
        cumulative proportions)."""
        p = self.X.shape[1]
        beta = np.zeros(p)
        aux = self.family.aux_start(self.y, self.offset)
        mean = (
            float(np.sum(self.y) / np.sum(self.trials))
            if self.family.is_binary
            else float(np.mean(self.y))
        )
        const_cols = np.flatnonzero(np.all(self.X == 1.0, axis=0))
        if const_cols.size and not self.family.is_ordinal:
            if self.family.is_binary:
                mean = min(max(mean, 1e-4), 1 - 1e-4)
                eta0 = {"logit": np.log(mean / (1 - mean)), "probit": 0.0, "cloglog": 0.0}
                from scipy import special

                eta0["probit"] = float(special.ndtri(mean))
                eta0["cloglog"] = float(np.log(-np.log1p(-mean)))
                beta[const_cols[0]] = eta0[self.family.link]
            elif self.family.link == "log":
                beta[const_cols[0]] = np.log(max(mean, 1e-8)) - float(np.mean(self.offset))
            else:
                beta[const_cols[0]] = mean - float(np.mean(self.offset))
        if self.family.name == "gaussian":
            resid = self.y - self.offset - mean
            aux[0] = 0.5 * np.log(max(float(np.mean(resid**2)), 1e-12))
        return np.concatenate([beta, aux])
