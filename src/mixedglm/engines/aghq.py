"""The marginal log-likelihood of a GLMM by adaptive Gauss-Hermite quadrature.

:class:`AGHQObjective` turns the model arrays into a function of the parameter vector
``[beta, theta, aux]`` that returns the log-likelihood, its gradient and its Hessian (an
:class:`~mixedglm.optim.Evaluation`), the form the optimiser and the inference stage use. The
per-cluster work happens in :mod:`mixedglm.engines.aghq_kernels`.

Hessians: with the mean-variance rule (Stata's default) the analytic fixed-grid Hessian
(Louis' identity) is the Hessian of the objective up to quadrature error. With the
mode-curvature rule, and Laplace in particular, the fixed-grid Hessian misses the second
derivative of the grid's movement, so the Hessian is the symmetrised finite-difference
Jacobian of the exact analytic gradient (central differences).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mixedglm.design.arrays import ClusterArrays
from mixedglm.engines import aghq_kernels as kern
from mixedglm.engines.base import Contributions
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.engines.quadrature import gauss_hermite_rule
from mixedglm.families import Family
from mixedglm.optim import Evaluation

RULES = {"mvaghermite": kern.RULE_MEANVAR, "mcaghermite": kern.RULE_MODE, "laplace": kern.RULE_MODE}


@dataclass
class _GridState:
    """Each cluster's mode and grid from the last evaluation (warm starts only)."""

    modes: np.ndarray
    grid_m: np.ndarray
    grid_r: np.ndarray
    warm: bool = False


@dataclass
class AGHQObjective:
    """Log-likelihood of ``[beta, theta, aux]`` for one grouping factor.

    ``method`` is ``"mvaghermite"``, ``"mcaghermite"`` or ``"laplace"`` (= mcaghermite with
    one point); ``curvature`` is ``"observed"`` or ``"fisher"`` (mode-curvature grids only).
    """

    arrays: ClusterArrays
    family: Family
    structure: CovarianceStructure
    nagq: int = 7
    method: str = "mvaghermite"
    curvature: str = "observed"
    fd_step: float = 1e-5
    _state: _GridState = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.method == "laplace":
            self.nagq = 1
        if self.nagq == 1:
            self.method = "laplace"
        if self.nagq == 2 and self.method == "mvaghermite":
            # with two points per dimension sum_k post_k t_k^2 = 1 for every grid, so the
            # mean-variance rule does not determine the grid's scale: use the mode's curvature
            self.method = "mcaghermite"
        q = self.structure.q
        rule = gauss_hermite_rule(self.nagq, q)
        self._nodes = rule.nodes
        self._logw_adj = rule.log_weights + 0.5 * np.sum(rule.nodes**2, axis=1)
        self._basis = np.ascontiguousarray(self.structure.basis())
        g = self.arrays.n_clusters
        self._state = _GridState(np.zeros((g, q)), np.zeros((g, q)), np.zeros((g, q, q)))
        const = self.family.log_constant(self.arrays.y, self.arrays.trials)
        self._const = np.add.reduceat(const, self.arrays.starts[:-1]) if g else np.zeros(0)
        self._rule_code = RULES[self.method]
        self._curv_code = kern.CURV_FISHER if self.curvature == "fisher" else kern.CURV_OBSERVED

    # -- parameter vector -------------------------------------------------------------
    @property
    def n_beta(self) -> int:
        return self.arrays.X.shape[1]

    @property
    def n_theta(self) -> int:
        return self._basis.shape[0]

    @property
    def n_aux(self) -> int:
        return self.family.n_aux

    @property
    def n_params(self) -> int:
        return self.n_beta + self.n_theta + self.n_aux

    def split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``params`` -> ``(beta, theta, aux)``."""
        p, t = self.n_beta, self.n_theta
        return params[:p], params[p : p + t], params[p + t :]

    # -- evaluation ---------------------------------------------------------------------
    def cluster_terms(
        self, params: np.ndarray, order: int, exact: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-cluster log-likelihoods ``(G,)``, gradients ``(G, P)`` and fixed-grid
        Hessians ``(G, P, P)`` (the last two zero unless asked for by ``order``)."""
        beta, theta, aux = self.split(np.asarray(params, dtype=float))
        a = self.arrays
        lam = np.ascontiguousarray(self.structure.lam(theta))
        xb, w = kern.linear_predictors(a.X, beta, a.offset, a.Z, lam)
        g, n_par = a.n_clusters, self.n_params
        out_ll = np.empty(g)
        out_grad = np.zeros((g, n_par)) if order >= 1 else np.zeros((g, 0))
        out_hess = np.zeros((g, n_par, n_par)) if order >= 2 else np.zeros((g, 0, 0))
        q = self.structure.q
        post_mean = np.empty((g, q))
        post_cov = np.empty((g, q, q))
        status = np.zeros(g, dtype=np.int64)
        st = self._state
        kern.aghq_clusters(
            (xb, a.X, a.Z, w, a.y, a.trials, self._const, a.starts),
            (self._nodes, self._logw_adj, self._basis, lam, np.ascontiguousarray(aux, dtype=float)),
            (
                self.family.code,
                self.family.link_code,
                self._rule_code,
                self._curv_code,
                order,
                exact,
                st.warm,
            ),
            (st.modes, st.grid_m, st.grid_r),
            (out_ll, out_grad, out_hess, post_mean, post_cov, status),
        )
        st.warm = bool(np.all(np.isfinite(st.grid_r)))
        self.last_params = np.array(params, dtype=float)
        self.last_status = status
        self.last_posterior = (post_mean, post_cov)
        return out_ll, out_grad, out_hess

    def loglik(self, params: np.ndarray) -> float:
        ll, _, _ = self.cluster_terms(params, 0)
        return float(np.sum(ll))

    def gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad, _ = self.cluster_terms(params, 1)
        return float(np.sum(ll)), grad.sum(axis=0)

    def fixed_grid_hessian(self, params: np.ndarray) -> Evaluation:
        """Log-likelihood, gradient and the analytic (Louis) fixed-grid Hessian."""
        ll, grad, hess = self.cluster_terms(params, 2)
        return Evaluation(float(np.sum(ll)), grad.sum(axis=0), hess.sum(axis=0))

    def fd_hessian(self, params: np.ndarray) -> np.ndarray:
        """Central finite differences of the analytic gradient, symmetrised."""
        params = np.asarray(params, dtype=float)
        n = params.size
        hess = np.empty((n, n))
        for r in range(n):
            step = self.fd_step * max(1.0, abs(params[r]))
            up = params.copy()
            up[r] += step
            down = params.copy()
            down[r] -= step
            hess[:, r] = (self.gradient(up)[1] - self.gradient(down)[1]) / (2.0 * step)
        self.gradient(params)  # leave the warm-start state at params
        return 0.5 * (hess + hess.T)

    def contributions(self, params: np.ndarray) -> Contributions:
        """Per-cluster log-likelihoods ``(G,)`` and exact scores ``(G, P)``."""
        ll, grad, _ = self.cluster_terms(params, 1)
        return Contributions(ll, grad)

    def evaluate(self, params: np.ndarray, order: int) -> Evaluation:
        """The engine interface (:mod:`mixedglm.engines.base`)."""
        return self(params, order)

    def __call__(self, params: np.ndarray, order: int) -> Evaluation:
        """The optimiser's interface: ``order`` 0, 1 or 2."""
        if order == 0:
            return Evaluation(self.loglik(params))
        if order == 1:
            ll, grad = self.gradient(params)
            return Evaluation(ll, grad)
        if self._rule_code == kern.RULE_MEANVAR and self.nagq > 1:
            return self.fixed_grid_hessian(params)
        hess = self.fd_hessian(params)
        ll, grad = self.gradient(params)
        return Evaluation(ll, grad, hess)

    def posterior(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posterior means ``(G, q)`` and covariances ``(G, q, q)`` of ``u`` by the
        quadrature, and the modes ``(G, q)`` of the integrand, at ``params``."""
        self.cluster_terms(params, 0)
        mean, cov = self.last_posterior
        return mean.copy(), cov.copy(), self._state.modes.copy()

    def adopt_grid(self, other: AGHQObjective) -> None:
        """Start from another objective's modes (and, for the same rule, grids): a warm
        start after a fit with fewer points."""
        self._state.modes[:] = other._state.modes

    def mode_curvature_cov(self, params: np.ndarray) -> np.ndarray:
        """Inverse curvature ``(-h''(mode))^-1`` per cluster ``(G, q, q)``: the covariance
        of the Laplace approximation to each cluster's posterior."""
        laplace = AGHQObjective(self.arrays, self.family, self.structure, nagq=1, method="laplace")
        laplace.cluster_terms(params, 0)
        r = laplace._state.grid_r
        return np.einsum("gab,gcb->gac", r, r)
