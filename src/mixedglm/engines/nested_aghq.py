"""Adaptive Gauss-Hermite quadrature for nested random effects of any depth (Stata's
``melogit y x || comm: || mom:``), as an engine (:mod:`mixedglm.engines.base`).

Each top-level cluster is integrated level by level from the bottom: every unit's effects
are integrated on the unit's own adaptive grid, placed at the posterior mean and covariance
of those effects given the data and the outer levels' node values (``mvaghermite``, Stata's
default) or at the mode and curvature of the unit's integrand (``mcaghermite``), with the
rule's points for the unit's level, so that the result is one factor of the next level's
integrand (:mod:`mixedglm.engines.nested_kernels`). Top-level clusters are independent: they are the
units of :meth:`NestedAGHQEngine.contributions` and of the thread pool.

Parameters ``[beta, theta_factor1, theta_factor2, ..., aux]`` with the factors in the
design's (formula) order, as :class:`~mixedglm.engines.laplace_joint.JointLaplaceEngine`.
With ``mvaghermite`` the gradient is exact for the quadrature approximation (the grids'
movement included); with ``mcaghermite`` it is the gradient at fixed grids (the movement of
a mode-curvature grid needs third derivatives of the lower levels' integrals), which differs
from the exact one by terms of the size of the quadrature error. The Hessian is the
Louis-type Hessian at fixed grids (exact up to quadrature error, as the one-factor engine's
with ``mvaghermite``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mixedglm.design.multilevel import MultilevelDesign
from mixedglm.engines import nested_kernels as nk
from mixedglm.engines.base import Contributions, FactorParameters, Posterior, RuleAccessors
from mixedglm.engines.parallel import cost_chunks, run_chunks, use_threads
from mixedglm.engines.quadrature import gauss_hermite_rule
from mixedglm.engines.rules import IntegrationRule
from mixedglm.errors import MixedGLMError
from mixedglm.families import Family
from mixedglm.optim import Evaluation

if TYPE_CHECKING:
    from mixedglm.engines.laplace_joint import JointLaplaceEngine

MAX_WARM = 20_000_000  # stored warm-start grids per level before falling back to one per unit
MAX_POSTERIOR = 100_000_000  # node weights stored for the posterior means
MAX_PLACED = 50_000_000  # node posteriors kept with the warm-start grids (else not kept)
# the mean-variance grids' fixed point at most this tight by default (Stata's
# adaptopts(tolerance()) default; the one-factor engine's 1e-10): every unit's grid is placed
# again for every node of its parents, and the last two digits cost a pass in about six; the
# log-likelihood then depends on the grids' history by about 1e-10
GRID_TOLERANCE = 1e-8


def _runs(codes: np.ndarray) -> np.ndarray:
    """Boundaries ``(G + 1,)`` of runs of equal codes in a sorted column."""
    n = codes.shape[0]
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    return np.concatenate([[0], change, [n]]).astype(np.int64)


class NestedAGHQEngine(FactorParameters, RuleAccessors):
    """The nested-AGHQ log-likelihood of ``[beta, theta_1 .. theta_K, aux]``."""

    def __init__(
        self,
        design: MultilevelDesign,
        family: Family,
        rule: IntegrationRule,
        tolerance: float | None = None,
    ) -> None:
        """``tolerance``: of the grids' fixed point, by default the rule's or
        ``GRID_TOLERANCE``, the looser (a tighter one makes the log-likelihood smooth to
        rounding, for differences of it over small steps)."""
        if not design.nested:
            raise MixedGLMError(
                "nested adaptive quadrature needs nested grouping factors; "
                f"{', '.join(f.name for f in design.factors)} are crossed"
            )
        if rule.is_laplace:
            raise MixedGLMError(
                "the nested quadrature engine integrates with mvaghermite or mcaghermite; "
                "the joint Laplace engine does method='laplace'"
            )
        levels = list(design.order)
        self.points = [rule.points(design.factors[k].name) for k in levels]
        least = 3 if rule.is_meanvar else 2
        if min(self.points) < least:
            raise MixedGLMError(
                f"{rule.method} needs at least {least} points per random effect at every level"
            )
        self.design, self.family, self.rule = design, family, rule
        base = design.base
        self.levels = levels
        codes = [design.factors[k].codes for k in levels]
        perm = np.lexsort(tuple(reversed(codes)))
        self.perm = perm
        self.X = np.ascontiguousarray(base.X[perm], dtype=float)
        self.y = np.ascontiguousarray(base.y[perm], dtype=float)
        self.trials = np.ascontiguousarray(base.trials[perm], dtype=float)
        self.offset = np.ascontiguousarray(base.offset[perm], dtype=float)
        # theta layout: factors in formula order; u layout: levels from the top
        self._theta_slices: list[slice] = []
        start = 0
        for f in design.factors:
            self._theta_slices.append(slice(start, start + f.structure.n_theta))
            start += f.structure.n_theta
        self.n_theta = start
        qs = [design.factors[k].q for k in levels]
        qoff = np.concatenate([[0], np.cumsum(qs)]).astype(np.int64)
        q_all = int(qoff[-1])
        basis = np.zeros((self.n_theta, q_all, q_all))
        Z = np.empty((self.X.shape[0], q_all))
        for d, k in enumerate(levels):
            f = design.factors[k]
            sl = slice(int(qoff[d]), int(qoff[d + 1]))
            Z[:, sl] = f.Z[perm]
            basis[self._theta_slices[k], sl, sl] = f.structure.basis()
        self.basis = basis
        self.ZE = np.ascontiguousarray(np.einsum("na,tab->ntb", Z, basis))
        # units per level, children per unit
        starts = [_runs(c[perm]) for c in codes]
        self.unit_codes = [c[perm][s[:-1]] for c, s in zip(codes, starts, strict=True)]
        n_levels = len(levels)
        cst = [
            np.searchsorted(starts[d + 1], starts[d]).astype(np.int64) for d in range(n_levels - 1)
        ]
        n_units = [s.shape[0] - 1 for s in starts]
        rules = [gauss_hermite_rule(n, q) for n, q in zip(self.points, qs, strict=True)]
        k_max = max(r.size for r in rules)
        q_max = max(qs)
        nodes = np.zeros((n_levels, k_max, q_max))
        logw = np.full((n_levels, k_max), -np.inf)
        for d, r in enumerate(rules):
            nodes[d, : r.size, : qs[d]] = r.nodes
            logw[d, : r.size] = r.log_weights + 0.5 * np.sum(r.nodes**2, axis=1)
        nks = np.array([r.size for r in rules], dtype=np.int64)
        npath = np.ones(n_levels, dtype=np.int64)
        for d in range(1, n_levels):
            npath[d] = npath[d - 1] * nks[d - 1]
        spath = np.array(
            [npath[d] if n_units[d] * npath[d] <= MAX_WARM else 1 for d in range(n_levels)],
            dtype=np.int64,
        )
        tol = float(max(rule.tolerance, GRID_TOLERANCE) if tolerance is None else tolerance)
        self.tree = nk.Tree(
            np.concatenate(starts).astype(np.int64),
            np.concatenate([[0], np.cumsum([s.shape[0] for s in starts])[:-1]]).astype(np.int64),
            np.concatenate([*cst, np.zeros(1, np.int64)]).astype(np.int64),
            np.concatenate([[0], np.cumsum([c.shape[0] for c in cst])]).astype(np.int64),
            qoff, nodes, logw, nks, spath, tol, 0 if rule.is_meanvar else 1,
        )  # fmt: skip
        self.n_units, self.qs, self.q_max, self.npath = n_units, qs, q_max, npath
        slots = np.array([n_units[d] * spath[d] for d in range(n_levels)], dtype=np.int64)
        goff = np.concatenate([[0], np.cumsum(slots)[:-1]]).astype(np.int64)
        total = int(slots.sum())
        placed = total * k_max <= MAX_PLACED
        self._warm = nk.Warm(
            np.zeros(total * q_max), np.zeros(total * q_max * q_max),
            np.zeros(total, dtype=np.int8), goff, np.zeros(0), np.zeros(0), np.zeros(0),
            np.zeros(n_levels, dtype=np.int64), npath,
            np.zeros(total * k_max if placed else 0), np.zeros(total if placed else 0),
        )  # fmt: skip
        const = family.log_constant(self.y, self.trials)
        self.const = np.add.reduceat(const, starts[0][:-1]) if n_units[0] else np.zeros(0)
        self.top_starts = starts[0]
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self.last_status = np.zeros(n_units[0], dtype=np.int64)
        self._laplace: JointLaplaceEngine | None = None
        # order-0 evaluations store the posterior means and keep the last one's (a fit's
        # last evaluation is at the estimates: no pass of its own for the posterior)
        self.keep_posterior = False
        self._kept: tuple[np.ndarray, nk.Warm] | None = None

    # -- parameters: FactorParameters; nagq, method, curvature: RuleAccessors -----------

    # -- evaluation -------------------------------------------------------------------
    def _data(self, params: np.ndarray) -> nk.NData:
        beta, theta, aux = self.split(np.asarray(params, dtype=float))
        xb = self.X @ beta + self.offset
        W = np.ascontiguousarray(np.einsum("ntb,t->nb", self.ZE, theta))
        aux = np.ascontiguousarray(aux, dtype=float)
        return nk.NData(xb, self.X, W, self.ZE, self.y, self.trials, aux)

    def _run(self, params: np.ndarray, order: int, warm: nk.Warm | None = None):
        if warm is None and order == 0 and self.keep_posterior:
            warm = self._posterior_warm()
            self._kept = None if warm is None else (np.array(params, dtype=float), warm)
        nd = self._data(params)
        g = self.n_units[0]
        n_par = self.n_params
        cost = np.diff(self.top_starts).astype(float) * float(np.prod(self.tree.nk))
        bounds = cost_chunks(cost) if use_threads(cost) else np.array([0, g], np.int64)
        n_slots = bounds.shape[0] - 1
        ll = np.empty(g)
        grad = np.zeros((g, n_par if order >= 1 else 0))
        hess = np.zeros((n_slots, n_par, n_par) if order >= 2 else (1, 0, 0))
        status = np.zeros(g, dtype=np.int64)
        fam, tr, wm = self.family.token, self.tree, warm or self._warm
        run_chunks(
            lambda lo, hi, slot: nk.chunk(
                fam, nd, tr, wm, self.const, order, ll, grad, hess, status, lo, hi, slot
            ),
            bounds,
        )
        self.last_status = status
        return ll, grad, hess.sum(axis=0)

    def loglik(self, params: np.ndarray) -> float:
        ll, _, _ = self._run(params, 0)
        total = float(np.sum(ll))
        return total if np.isfinite(total) else -np.inf

    def gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad, _ = self._run(params, 1)
        return float(np.sum(ll)), grad.sum(axis=0)

    def evaluate(self, params: np.ndarray, order: int) -> Evaluation:
        """The engine interface: ``order`` 0, 1 or 2 (sums over top-level clusters)."""
        if order == 0:
            return Evaluation(self.loglik(params))
        ll, grad, hess = self._run(params, order)
        total = float(np.sum(ll))
        if not np.isfinite(total):
            total = -np.inf
        return Evaluation(total, grad.sum(axis=0), hess if order >= 2 else None)

    def __call__(self, params: np.ndarray, order: int) -> Evaluation:
        return self.evaluate(params, order)

    def contributions(self, params: np.ndarray) -> Contributions:
        """Per top-level cluster log-likelihoods ``(G,)`` and exact scores ``(G, P)``."""
        ll, grad, _ = self._run(params, 1)
        return Contributions(ll, grad)

    def sample_terms(
        self, params: np.ndarray, units: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The top-level units ``units`` (positions in the engine's order) alone: their
        clusters' codes, exact scores ``(m, P)`` and the sum of their Hessians, in the
        thread pool (their grids stay as warm starts)."""
        nd = self._data(params)
        g, n_par = self.n_units[0], self.n_params
        cost = np.diff(self.top_starts)[units].astype(float) * float(np.prod(self.tree.nk))
        bounds = cost_chunks(cost) if use_threads(cost) else np.array([0, units.size], np.int64)
        ll, grad = np.empty(g), np.zeros((g, n_par))
        hess = np.zeros((bounds.shape[0] - 1, n_par, n_par))
        status = np.zeros(g, dtype=np.int64)
        fam, tr, wm = self.family.token, self.tree, self._warm

        def run(lo: int, hi: int, slot: int) -> None:
            for i in units[lo:hi]:
                i = int(i)
                nk.chunk(fam, nd, tr, wm, self.const, 2, ll, grad, hess, status, i, i + 1, slot)

        run_chunks(run, bounds)
        return self.unit_codes[0][units], grad[units], hess.sum(axis=0)

    # -- posterior ----------------------------------------------------------------------
    def posterior(self, params: np.ndarray, kind: str = "means") -> dict[str, Posterior]:
        """``{factor: Posterior}`` on the spherical scale. ``"means"``: each unit's posterior
        mean and covariance given all the data of its top-level cluster (Stata's ``predict,
        reffects``), by the quadrature; ``"modes"``: the joint Laplace engine's conditional
        modes (lme4's ``ranef``)."""
        if kind == "modes":
            if self._laplace is None:
                from mixedglm.engines.laplace_joint import JointLaplaceEngine

                self._laplace = JointLaplaceEngine(self.design, self.family)
            return self._laplace.posterior(params)
        if kind != "means":
            raise MixedGLMError(f"posterior kind must be 'means' or 'modes', not {kind!r}")
        tr, qm = self.tree, self.q_max
        n_levels = len(self.levels)
        kept = self._kept
        if kept is not None and np.array_equal(kept[0], params):
            warm = kept[1]  # the last evaluation's, at these parameters
        else:
            found = self._posterior_warm()
            if found is None:
                raise MixedGLMError(
                    f"the posterior means need {self._posterior_size():,} stored node "
                    f"weights (units x paths of outer nodes x points, more than "
                    f"{MAX_POSTERIOR:,}): use fewer points (nagq=) or kind='modes'"
                )
            warm = found
            self._run(params, 0, warm)
        pwoff = warm.pwoff
        k_max = int(tr.nodes.shape[1])
        out: dict[str, Posterior] = {}
        path_w = np.ones((self.n_units[0], 1))
        for d, k in enumerate(self.levels):
            n, npth, q, kd = self.n_units[d], int(self.npath[d]), self.qs[d], int(tr.nk[d])
            sl = slice(int(pwoff[d]), int(pwoff[d]) + n * npth)
            pm = warm.pm.reshape(-1, qm)[sl, :q].reshape(n, npth, q)
            pc = warm.pc.reshape(-1, qm, qm)[sl, :q, :q].reshape(n, npth, q, q)
            mean = np.einsum("np,npa->na", path_w, pm)
            second = np.einsum("np,npab->nab", path_w, pc + pm[..., :, None] * pm[..., None, :])
            cov = second - mean[:, :, None] * mean[:, None, :]
            f = self.design.factors[k]
            m_f = np.zeros((f.n_levels, q))
            c_f = np.zeros((f.n_levels, q, q))
            m_f[self.unit_codes[d]] = mean
            c_f[self.unit_codes[d]] = cov
            out[f.name] = Posterior(m_f, c_f, "means")
            if d + 1 < n_levels:
                pw = warm.pw.reshape(-1, k_max)[sl, :kd].reshape(n, npth * kd)
                child_w = path_w.repeat(kd, axis=1) * pw
                c0 = tr.cstart[tr.coff[d] : tr.coff[d] + n + 1]
                parent = np.repeat(np.arange(n), np.diff(c0))
                path_w = child_w[parent]
        return out

    def _posterior_size(self) -> int:
        """Node weights stored for the posterior means (units x paths x points)."""
        units = sum(self.n_units[d] * int(self.npath[d]) for d in range(len(self.levels)))
        return units * int(self.tree.nodes.shape[1])

    def _posterior_warm(self) -> nk.Warm | None:
        """The warm starts with room for every unit's posterior (None: too many)."""
        if self._posterior_size() > MAX_POSTERIOR:
            return None
        sizes = [self.n_units[d] * int(self.npath[d]) for d in range(len(self.levels))]
        pwoff = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        total, qm, w = int(sum(sizes)), self.q_max, self._warm
        return nk.Warm(
            w.gm, w.gr, w.valid, w.goff, np.zeros(total * int(self.tree.nodes.shape[1])),
            np.zeros(total * qm), np.zeros(total * qm * qm), pwoff, self.npath, w.wp, w.wl,
        )  # fmt: skip

    def with_rule(self, rule: IntegrationRule) -> NestedAGHQEngine:
        """The same model with another number of points."""
        return NestedAGHQEngine(self.design, self.family, rule)
