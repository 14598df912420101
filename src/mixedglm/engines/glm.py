"""The pooled GLM (no random effects): start values and the LR test's reference model."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from mixedglm.families import Family
from mixedglm.families.kernels import aux_derivs, eta_derivs
from mixedglm.optim import Evaluation


@numba.njit(cache=True, parallel=True)
def _glm_terms(
    eta: np.ndarray,
    y: np.ndarray,
    ntr: np.ndarray,
    aux: np.ndarray,
    family: int,
    link: int,
    out: np.ndarray,
    out_aux: np.ndarray,
) -> None:
    """Per observation: l, dl/deta, d2l/deta2 in ``out`` (N, 3); aux derivatives in
    ``out_aux`` (N, n_aux, 3): dl/da, d2l/(deta da), d2l/da2 (diagonal only)."""
    n_aux = aux.shape[0]
    for j in numba.prange(eta.shape[0]):
        l0, d1, d2, _ = eta_derivs(family, link, y[j], ntr[j], eta[j], aux)
        out[j, 0] = l0
        out[j, 1] = d1
        out[j, 2] = d2
        if n_aux > 0:
            l_a = np.zeros(n_aux)
            l_ea = np.zeros(n_aux)
            l_eea = np.zeros(n_aux)
            l_aa = np.zeros((n_aux, n_aux))
            aux_derivs(family, link, y[j], ntr[j], eta[j], aux, l_a, l_ea, l_eea, l_aa)
            for a in range(n_aux):
                out_aux[j, a, 0] = l_a[a]
                out_aux[j, a, 1] = l_ea[a]
                out_aux[j, a, 2] = l_aa[a, a]


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
        p = self.X.shape[1]
        beta, aux = params[:p], np.ascontiguousarray(params[p:], dtype=float)
        eta = self.X @ beta + self.offset
        n_aux = aux.shape[0]
        terms = np.empty((eta.shape[0], 3))
        aux_terms = np.zeros((eta.shape[0], n_aux, 3))
        _glm_terms(
            eta, self.y, self.trials, aux, self.family.code, self.family.link_code, terms, aux_terms
        )
        loglik = float(terms[:, 0].sum()) + self._const
        if order == 0:
            return Evaluation(loglik)
        grad = np.concatenate([self.X.T @ terms[:, 1], aux_terms[:, :, 0].sum(axis=0)])
        if order == 1:
            return Evaluation(loglik, grad)
        hess = np.zeros((p + n_aux, p + n_aux))
        hess[:p, :p] = (self.X * terms[:, 2:3]).T @ self.X
        for a in range(n_aux):
            hess[p + a, :p] = hess[:p, p + a] = self.X.T @ aux_terms[:, a, 1]
            hess[p + a, p + a] = aux_terms[:, a, 2].sum()
        return Evaluation(loglik, grad, hess)

    def start(self) -> np.ndarray:
        """Start values: the constant (if any) at the link of the mean outcome."""
        p = self.X.shape[1]
        beta = np.zeros(p)
        aux = np.zeros(self.family.n_aux)
        mean = (
            float(np.sum(self.y) / np.sum(self.trials))
            if self.family.is_binary
            else float(np.mean(self.y))
        )
        const_cols = np.flatnonzero(np.all(self.X == 1.0, axis=0))
        if const_cols.size:
            if self.family.is_binary:
                mean = min(max(mean, 1e-4), 1 - 1e-4)
                eta0 = {"logit": np.log(mean / (1 - mean)), "probit": 0.0, "cloglog": 0.0}
                from scipy import special

                eta0["probit"] = float(special.ndtri(mean))
                eta0["cloglog"] = float(np.log(-np.log1p(-mean)))
                beta[const_cols[0]] = eta0[self.family.link]
            elif self.family.name == "poisson":
                beta[const_cols[0]] = np.log(max(mean, 1e-8)) - float(np.mean(self.offset))
            else:
                beta[const_cols[0]] = mean - float(np.mean(self.offset))
        if self.family.name == "gaussian":
            resid = self.y - self.offset - mean
            aux[0] = 0.5 * np.log(max(float(np.mean(resid**2)), 1e-12))
        return np.concatenate([beta, aux])
