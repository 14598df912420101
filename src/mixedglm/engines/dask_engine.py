"""An engine over data distributed on Dask workers: the in-memory engines, one per partition.

:class:`DaskEngine` implements the engine protocol (:mod:`mixedglm.engines.base`). Each call
is one map and one reduce: a task per worker (pinned to the worker that holds the partitions'
designs and engines) sums its partitions' log-likelihoods, gradients and Hessians, and the
client adds the workers' sums. The per-partition engines, with each cluster's modes and grids,
stay in worker memory between calls (:mod:`mixedglm.scale.partition`), so every cluster sees
the same sequence of evaluations as in memory and the sums equal the in-memory ones up to the
order of addition.
"""

from __future__ import annotations

import time

import numpy as np

from mixedglm.engines.base import Contributions, Posterior
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.engines.rules import IntegrationRule
from mixedglm.families import Family
from mixedglm.optim import Evaluation
from mixedglm.scale import partition as part
from mixedglm.scale.frame import DistributedData


class DaskEngine:
    """The sum over the workers of the partitions' engines named ``key`` (built by
    ``setup``: ``("pooled", family)`` or ``("aghq", family, structure, rule)``)."""

    def __init__(
        self, data: DistributedData, key: str, setup: tuple, n_params: int, start=None
    ) -> None:
        self.data = data
        self._start = start
        self.key = key
        self.setup = setup
        self._n_params = n_params
        self.calls = 0

    @property
    def n_params(self) -> int:
        return self._n_params

    def _map(self, func, *args) -> list:
        d = self.data
        t0 = time.perf_counter()
        futures = [
            d.client.submit(
                func,
                d.model_id,
                d.placement[w],
                self.key,
                self.setup,
                *args,
                workers=[w],
                allow_other_workers=False,
                pure=False,
            )
            for w in sorted(d.placement)
        ]
        out = d.client.gather(futures)
        d.timings["map"] = d.timings.get("map", 0.0) + time.perf_counter() - t0
        return out

    def evaluate(self, params: np.ndarray, order: int) -> Evaluation:
        """Log-likelihood and, for ``order`` 1 / 2, gradient and Hessian: one map, one sum."""
        self.calls += 1
        x = np.asarray(params, dtype=float)
        threads = max(self.data.threads.values())
        parts = self._map(part.op_evaluate, x, order, threads)
        t0 = time.perf_counter()
        ll = float(sum(p[0] for p in parts))
        grad = sum(p[1] for p in parts) if order >= 1 else None
        hess = sum(p[2] for p in parts) if order >= 2 else None
        timings = self.data.timings
        timings["reduce"] = timings.get("reduce", 0.0) + time.perf_counter() - t0
        timings["maps"] = timings.get("maps", 0) + 1
        return Evaluation(ll, grad, hess)

    def __call__(self, params: np.ndarray, order: int) -> Evaluation:
        return self.evaluate(params, order)

    def loglik(self, params: np.ndarray) -> float:
        return self.evaluate(params, 0).loglik

    def _clusters(self, params: np.ndarray, what: str) -> tuple[np.ndarray, list, list]:
        threads = max(self.data.threads.values())
        rows = [
            r
            for w in self._map(part.op_clusters, np.asarray(params, dtype=float), what, threads)
            for r in w
        ]
        labels = np.concatenate([r[0] for r in rows])
        order = np.argsort(labels, kind="stable")
        return order, [r[1] for r in rows], [r[2] for r in rows]

    def contributions(self, params: np.ndarray) -> Contributions:
        """Per top-level cluster (in the in-memory order: sorted labels)."""
        order, ll, score = self._clusters(params, "contributions")
        return Contributions(np.concatenate(ll)[order], np.concatenate(score)[order])

    def cluster_scores(self, params: np.ndarray, variable: str) -> list[dict]:
        """Per partition the clusters' scores summed by the value of the carried column
        ``variable`` (:func:`~mixedglm.scale.partition.op_cluster_scores`)."""
        threads = max(self.data.threads.values())
        x = np.asarray(params, dtype=float)
        return [p for w in self._map(part.op_cluster_scores, x, variable, threads) for p in w]

    def start(self) -> np.ndarray:
        """The pooled GLM's start values (from the partitions' sums)."""
        if self._start is None:
            raise AttributeError("start values belong to the pooled GLM's engine")
        return self._start()

    def posterior(self, params: np.ndarray, kind: str = "means") -> dict[str, Posterior]:
        """Posterior means (or modes) and covariances of ``u`` per cluster (sorted labels)."""
        order, mean, cov = self._clusters(params, kind)
        return {
            self.data.spec.group: Posterior(
                np.concatenate(mean)[order], np.concatenate(cov)[order], kind
            )
        }

    def warm_start(self, other: DaskEngine) -> None:
        """Start from ``other``'s modes on every partition (the coarse fit's warm start)."""
        self._map(part.op_adopt, other.key)


class DaskFactory:
    """Makes :class:`DaskEngine` s on one model's distributed data: ``factory(rule)`` for
    the quadrature, :meth:`pooled` for the GLM without random effects."""

    def __init__(
        self, data: DistributedData, family: Family, structure: CovarianceStructure
    ) -> None:
        self.data = data
        self.family = family
        self.structure = structure
        self._made = 0

    def __call__(self, rule: IntegrationRule) -> DaskEngine:
        # a new engine (own adaptive state) for every call, as the in-memory factory
        self._made += 1
        key = f"aghq-{rule.method}-{rule.nagq}-{rule.curvature}-{self._made}"
        n_params = len(self.data.design.x_names) + self.structure.n_theta + self.family.n_aux
        return DaskEngine(self.data, key, ("aghq", self.family, self.structure, rule), n_params)

    def pooled(self, start) -> DaskEngine:
        """The pooled GLM; ``start()`` gives its start values."""
        n_params = len(self.data.design.x_names) + self.family.n_aux
        return DaskEngine(self.data, "pooled", ("pooled", self.family), n_params, start)
