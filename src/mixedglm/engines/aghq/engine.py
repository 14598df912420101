"""The marginal log-likelihood of a GLMM with one grouping factor by adaptive Gauss-Hermite
quadrature (or the Laplace approximation), as an engine (:mod:`mixedglm.engines.base`).

:class:`AGHQEngine` turns the model arrays into functions of the parameter vector
``[beta, theta, aux]``. Hessians: with the mean-variance rule (Stata's default) the analytic
fixed-grid Hessian (Louis' identity) is the Hessian of the objective up to quadrature error.
With the mode-curvature rule, and Laplace in particular, the fixed-grid Hessian misses the
second derivative of the grid's movement, so the Hessian is the symmetrised
finite-difference Jacobian of the exact analytic gradient (central differences).
"""

from __future__ import annotations

import time

import numpy as np

from mixedglm.design.arrays import ClusterArrays
from mixedglm.engines.aghq import cluster
from mixedglm.engines.aghq.chunk import run_clusters
from mixedglm.engines.aghq.implementation import Clusters, choose
from mixedglm.engines.aghq.predictors import linear_predictors
from mixedglm.engines.base import Contributions, ParameterVector, Posterior, RuleAccessors
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.engines.quadrature import gauss_hermite_rule
from mixedglm.engines.rules import IntegrationRule
from mixedglm.families import Family
from mixedglm.optim import Evaluation

_EMPTY = np.zeros(0)
CHOOSE_AGAIN_S = 2.0  # on the mirror: seconds between looks for the compiled kernel


def legacy_rule(method: str | None, nagq: int | None, curvature: str | None) -> IntegrationRule:
    """A rule from engine-level keywords, without the user-facing checks of
    :func:`~mixedglm.engines.rules.make_rule` (``nagq=1`` or ``laplace`` is Laplace)."""
    curvature = curvature or "observed"
    if method == "laplace" or nagq == 1:
        return IntegrationRule("laplace", 1, curvature)
    return IntegrationRule(method or "mvaghermite", int(nagq or 7), curvature)


class AGHQEngine(ParameterVector, RuleAccessors):
    """Log-likelihood of ``[beta, theta, aux]`` for one grouping factor.

    ``rule`` says how the random effects are integrated (:class:`IntegrationRule`); the
    keywords ``nagq``, ``method``, ``curvature`` are a shorthand for it.
    """

    def __init__(
        self,
        arrays: ClusterArrays,
        family: Family,
        structure: CovarianceStructure,
        rule: IntegrationRule | None = None,
        *,
        nagq: int | None = None,
        method: str | None = None,
        curvature: str | None = None,
        fd_step: float = 1e-5,
        factor: str = "group",
    ) -> None:
        self.arrays = arrays
        self.factor = factor
        self.family = family
        self.structure = structure
        self.rule = rule if rule is not None else legacy_rule(method, nagq, curvature)
        self.fd_step = fd_step
        q = structure.q
        quad = gauss_hermite_rule(self.rule.nagq, q)
        self._nodes = quad.nodes
        self._logw_adj = quad.log_weights + 0.5 * np.sum(quad.nodes**2, axis=1)
        self._basis = np.ascontiguousarray(structure.basis())
        g = arrays.n_clusters
        self._state = cluster.State(np.zeros((g, q)), np.zeros((g, q)), np.zeros((g, q, q)))
        self._warm = False
        self._token = family.token
        self._const = arrays.log_constants(family)
        weights = arrays.weights
        self._wts = _EMPTY if weights is None else np.ascontiguousarray(weights, float)
        cw = arrays.cluster_weights
        self._cwts = _EMPTY if cw is None else np.ascontiguousarray(cw, dtype=float)
        self._rule_code = cluster.RULE_MEANVAR if self.rule.is_meanvar else cluster.RULE_MODE
        fisher = self.rule.curvature == "fisher"
        self._curv_code = cluster.CURV_FISHER if fisher else cluster.CURV_OBSERVED
        self._last: tuple[np.ndarray, cluster.Out] | None = None
        self._clusters: Clusters | None = None  # the compiled kernel or the NumPy mirror
        self._choose_after = 0.0  # on the mirror: when to look for the compiled kernel again

    # -- parameter vector (n_aux, n_params, split: ParameterVector) -----------------------
    @property
    def n_beta(self) -> int:
        return self.arrays.X.shape[1]

    @property
    def n_theta(self) -> int:
        return self._basis.shape[0]

    # -- evaluation -----------------------------------------------------------------------
    def _run(self, params: np.ndarray, order: int, exact: bool = True) -> cluster.Out:
        params = np.asarray(params, dtype=float)
        beta, theta, aux = self.split(params)
        a = self.arrays
        lam = np.ascontiguousarray(self.structure.lam(theta))
        xb, w = linear_predictors(a.X, beta, a.offset, a.Z, lam)
        data = cluster.Data(
            xb, a.X, a.Z, w, a.y, a.trials, self._wts, self._cwts, self._const, a.starts,
            np.ascontiguousarray(aux, dtype=float),
        )  # fmt: skip
        grid = cluster.Grid(self._nodes, self._logw_adj, self._basis, lam)
        flags = cluster.Flags(
            self._rule_code, self._curv_code, order, exact, self._warm, self.rule.tolerance
        )
        args = (self._token, data, grid, flags, self._state, self.n_params)
        if self._clusters is not run_clusters and time.monotonic() >= self._choose_after:
            # decided at the first evaluation; on the mirror again every few seconds, so
            # that a long fit moves to the kernel once its background compilation is done
            self._clusters = choose(*args)
            self._choose_after = time.monotonic() + CHOOSE_AGAIN_S
        assert self._clusters is not None
        out = self._clusters(*args)
        self._warm = bool(np.all(np.isfinite(self._state.grid_r)))
        self._last = (params.copy(), out)
        return out

    def cluster_terms(
        self, params: np.ndarray, order: int, exact: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-cluster log-likelihoods ``(G,)``, scores ``(G, P)`` (order >= 1) and the
        summed fixed-grid Hessian ``(P, P)`` (order 2)."""
        out = self._run(params, order, exact)
        return out.ll, out.grad, out.hess.sum(axis=0)

    @property
    def last_status(self) -> np.ndarray:
        """Per-cluster status of the last evaluation (0: inner problems converged)."""
        return np.zeros(0, dtype=np.int64) if self._last is None else self._last[1].status

    def loglik(self, params: np.ndarray) -> float:
        return float(np.sum(self._run(params, 0).ll))

    def gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        out = self._run(params, 1)
        return float(np.sum(out.ll)), out.grad.sum(axis=0)

    def fixed_grid_hessian(self, params: np.ndarray) -> Evaluation:
        """Log-likelihood, gradient and the analytic (Louis) fixed-grid Hessian."""
        out = self._run(params, 2)
        return Evaluation(float(np.sum(out.ll)), out.grad.sum(axis=0), out.hess.sum(axis=0))

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

    def evaluate(self, params: np.ndarray, order: int) -> Evaluation:
        """The engine interface: ``order`` 0, 1 or 2 (sums over clusters)."""
        if order == 0:
            return Evaluation(self.loglik(params))
        if order == 1:
            ll, grad = self.gradient(params)
            return Evaluation(ll, grad)
        if self.rule.is_meanvar and self.rule.nagq > 1:
            return self.fixed_grid_hessian(params)
        hess = self.fd_hessian(params)
        ll, grad = self.gradient(params)
        return Evaluation(ll, grad, hess)

    __call__ = evaluate

    def contributions(self, params: np.ndarray) -> Contributions:
        """Per-cluster log-likelihoods ``(G,)`` and exact scores ``(G, P)`` (times the
        cluster weights, so that they sum to the totals)."""
        out = self._run(params, 1)
        return Contributions(out.ll.copy(), out.grad.copy())

    def posterior(self, params: np.ndarray, kind: str = "means") -> dict[str, Posterior]:
        """``{factor: Posterior}``: the posterior means and covariances of ``u`` by the
        quadrature (``kind="means"``), or the modes of the integrand with the inverse
        curvature there (``kind="modes"``, the Laplace approximation, lme4's ``ranef`` and
        ``condVar``)."""
        params = np.asarray(params, dtype=float)
        if kind == "modes":
            laplace = self if self.rule.is_laplace else self.with_rule(self.rule.laplace())
            laplace._run(params, 0)
            r = laplace._state.grid_r
            modes = laplace._state.modes.copy()
            return {self.factor: Posterior(modes, np.einsum("gab,gcb->gac", r, r), "modes")}
        if self._last is None or not np.array_equal(self._last[0], params):
            self._run(params, 0)
        assert self._last is not None
        out = self._last[1]
        return {self.factor: Posterior(out.post_mean.copy(), out.post_cov.copy(), "means")}

    def with_rule(self, rule: IntegrationRule) -> AGHQEngine:
        """The same model with another rule (start values, coarse stage), warm-started from
        this engine's modes."""
        other = AGHQEngine(
            self.arrays, self.family, self.structure, rule, fd_step=self.fd_step, factor=self.factor
        )
        other._state.modes[:] = self._state.modes
        return other

    def warm_start(self, other: AGHQEngine) -> None:
        """Start from another engine's modes (a warm start after a fit with fewer points)."""
        self._state.modes[:] = other._state.modes


AGHQObjective = AGHQEngine
