"""The engines of a nested model on Dask: the in-memory multilevel engines, one per
partition, summed on the client.

:class:`DaskNestedEngines` gives :func:`~mixedglm.models.multilevel.fit_multilevel` what
:class:`~mixedglm.models.multilevel.MemoryEngines` gives it in memory: the pooled GLM, the
joint Laplace engine and the nested quadrature engine, each a
:class:`~mixedglm.engines.dask_engine.DaskEngine` over engines built on the workers by
:class:`MemoryEngines` itself on each partition's design (whole top-level clusters) and kept
there between the Newton steps with their per-cluster adaptive state. Each evaluation is one
map (the workers' sums of log-likelihood, gradient and Hessian) and one sum on the client.
"""

from __future__ import annotations

import numpy as np

from mixedglm.engines.base import Posterior
from mixedglm.engines.dask_engine import DaskEngine
from mixedglm.engines.rules import IntegrationRule
from mixedglm.families import Family
from mixedglm.models.dask_glmm import pooled_start
from mixedglm.models.multilevel import MemoryEngines
from mixedglm.scale import partition as part
from mixedglm.scale.multilevel import NestedData


def engine_on(design: object, family: Family, kind: str, *args: object) -> object:
    """On a worker: the in-memory engine ``kind`` (``pooled``, ``laplace``, ``nested``) of
    a partition's multilevel design."""
    return getattr(MemoryEngines(design, family), kind)(*args)  # type: ignore[arg-type]


def op_posterior(
    model_id: str, parts: list[int], key: str, setup: tuple, params: np.ndarray,
    kind: tuple, threads: int,
) -> list[dict[str, Posterior]]:  # fmt: skip
    """The partitions' random effects per factor, without their levels (the kind only: the
    in-memory fit's choice between means and modes; the levels' values are computed later,
    per partition, by the results: :mod:`mixedglm.results.dask_multilevel`)."""
    with part.partition_engines(model_id, parts, key, setup, threads) as engines:
        out = []
        for _, engine in engines:
            post = engine.posterior(params, *kind)
            out.append({k: Posterior(p.mean[:0], p.cov[:0], p.kind) for k, p in post.items()})
        return out


def op_unconverged(model_id: str, parts: list[int], key: str, setup: tuple) -> int:
    """Top-level clusters whose mean-variance grid fell back in the last evaluation."""
    with part.partition_engines(model_id, parts, key, setup) as engines:
        return sum(int(np.count_nonzero(e.last_status)) for _, e in engines)


def op_modes(model_id: str, parts: list[int], key: str, setup: tuple) -> dict[int, np.ndarray]:
    """The joint Laplace engines' current modes, by partition."""
    with part.partition_engines(model_id, parts, key, setup) as engines:
        return {i: engine.u.copy() for i, engine in engines}


def op_set_modes(
    model_id: str, parts: list[int], key: str, setup: tuple, modes: dict[int, np.ndarray]
) -> None:
    """Set the joint Laplace engines' modes (a saved :func:`op_modes`)."""
    with part.partition_engines(model_id, parts, key, setup) as engines:
        for i, engine in engines:
            engine.u = modes[i].copy()


class DaskMultilevelEngine(DaskEngine):
    """A multilevel engine on Dask: evaluations summed over the partitions, the random
    effects' kind, the Laplace engine's ``exact`` set on every partition."""

    def __init__(self, nested: NestedData, key: str, setup: tuple, n_params: int) -> None:
        super().__init__(nested.data, key, setup, n_params)
        self._exact = True

    @property
    def exact(self) -> bool:
        return self._exact

    @exact.setter
    def exact(self, value: bool) -> None:
        self._map(part.op_configure, {"exact": value})
        self._exact = value

    @property
    def u(self) -> dict[int, np.ndarray]:
        """The Laplace modes of every partition (what the start grid saves and restores,
        as ``JointLaplaceEngine.u`` in memory)."""
        return {i: u for w in self._map(op_modes) for i, u in w.items()}

    @u.setter
    def u(self, modes: dict[int, np.ndarray]) -> None:
        self._map(op_set_modes, modes)

    def posterior(self, params: np.ndarray, *kind: str) -> dict[str, Posterior]:
        """Each factor's posterior kind (means, or the Laplace modes), without levels: the
        partitions check that they can give it (the in-memory fit's fallback from the
        means to the modes) and keep the values; the results compute them lazily."""
        threads = max(self.data.threads.values())
        x = np.asarray(params, dtype=float)
        return next(p for w in self._map(op_posterior, x, kind, threads) for p in w)


def _rule_key(rule: IntegrationRule) -> str:
    """``mvaghermite-7``, or with points per level ``mvaghermite-comm=12-comm:mom=7``."""
    points = [f"{name}={n}" for name, n in rule.levels] or [str(rule.nagq)]
    return "-".join([rule.method, *points])


class DaskNestedEngines:
    """The engines of :func:`~mixedglm.models.multilevel.fit_multilevel` on Dask."""

    def __init__(self, nested: NestedData, family: Family) -> None:
        self.model, self.family = nested, family
        self.scales = nested.scales
        self._p = len(nested.design.base.x_names)
        self._n_theta = sum(f.structure.n_theta for f in nested.design.factors)

    def _engine(self, kind: str, *args: object) -> DaskMultilevelEngine:
        # the rule's method and points (per level when it has them) name the workers' engine
        key = "-".join([kind, *(_rule_key(a) for a in args)])  # type: ignore[arg-type]
        n_params = self._p + self._n_theta + self.family.n_aux
        return DaskMultilevelEngine(
            self.model, key, (engine_on, self.family, kind, *args), n_params
        )

    def pooled(self) -> DaskEngine:
        """The pooled GLM, its start values from the partitions' sums."""
        data, fam, p = self.model.data, self.family, self._p
        setup = (engine_on, fam, "pooled")
        return DaskEngine(
            data, "pooled", setup, p + fam.n_aux, lambda: pooled_start(data.sums, fam, p)
        )

    def laplace(self) -> DaskMultilevelEngine:
        return self._engine("laplace")

    def nested(self, rule: IntegrationRule) -> DaskMultilevelEngine:
        return self._engine("nested", rule)

    def unconverged(self, engine: DaskMultilevelEngine) -> int:
        return int(sum(engine._map(op_unconverged)))
