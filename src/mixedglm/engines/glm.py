"""The pooled GLM (no random effects): start values and the LR test's reference model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixedglm.design.arrays import BLOCK_ROWS
from mixedglm.engines.parallel import row_bounds, run_chunks
from mixedglm.families import Family
from mixedglm.families.dispatch import aux_buffers, aux_derivs, eta_derivs
from mixedglm.jit import kernel
from mixedglm.optim import Evaluation


@kernel(nogil=True)
def _glm_block(
    X: np.ndarray,
    beta: np.ndarray,
    offset: np.ndarray,
    y: np.ndarray,
    ntr: np.ndarray,
    aux: np.ndarray,
    wts: np.ndarray,
    fam,
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
    l_a, l_ea, l_eea, l_aa = aux_buffers(n_aux)
    loglik = 0.0
    for j in range(lo, hi):
        eta = offset[j]
        for r in range(p):
            eta += X[j, r] * beta[r]
        l0, d1, d2, _ = eta_derivs(fam, y[j], ntr[j], eta, aux)
        c = wts[j] if wts.shape[0] > 0 else 1.0
        loglik += c * l0
        d1 *= c
        d2 *= c
        if order == 0:
            continue
        if n_aux > 0:
            aux_derivs(fam, y[j], ntr[j], eta, aux, l_a, l_ea, l_eea, l_aa)
            if c != 1.0:
                l_a *= c
                l_ea *= c
                l_aa *= c
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


@dataclass
class GLMObjective:
    """Log-likelihood of ``[beta, aux]`` of a GLM, with analytic gradient and Hessian."""

    X: np.ndarray
    y: np.ndarray
    trials: np.ndarray
    offset: np.ndarray
    family: Family
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        self._wts = np.zeros(0)
        if self.weights is not None:
            self._wts = np.ascontiguousarray(self.weights, dtype=float)
        self._const = 0.0
        for lo in range(0, self.y.shape[0], BLOCK_ROWS):  # no temporary of the data's length
            rows = slice(lo, lo + BLOCK_ROWS)
            const = self.family.log_constant(self.y[rows], self.trials[rows])
            self._const += float(np.sum(const * self._wts[rows] if self._wts.size else const))

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
        bounds = row_bounds(self.X.shape[0])
        n_blocks = bounds.shape[0] - 1
        lls = np.zeros(n_blocks)
        grads = np.zeros((n_blocks, n_par))
        hesses = np.zeros((n_blocks, n_par, n_par))
        token = self.family.token

        def block(lo: int, hi: int, k: int) -> None:
            lls[k] = _glm_block(
                self.X, beta, self.offset, self.y, self.trials, aux, self._wts, token, order,
                lo, hi, grads[k], hesses[k],
            )  # fmt: skip

        run_chunks(block, bounds)
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
        if self._wts.size:
            total = self._wts @ self.trials if self.family.is_binary else np.sum(self._wts)
            mean = float(self._wts @ self.y / total)
        else:
            total = np.sum(self.trials) if self.family.is_binary else self.y.shape[0]
            mean = float(np.sum(self.y) / total)
        ones = (self.X.min(axis=0) == 1.0) & (self.X.max(axis=0) == 1.0)
        const_cols = np.flatnonzero(ones) if self.X.shape[0] else np.zeros(0, np.int64)
        if const_cols.size and not self.family.is_ordinal:
            beta[const_cols[0]] = self.family.link_start(mean, float(np.mean(self.offset)))
        if self.family.name == "gaussian":
            resid = self.y - self.offset - mean
            aux[0] = 0.5 * np.log(max(float(np.mean(resid**2)), 1e-12))
        return np.concatenate([beta, aux])
