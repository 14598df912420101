"""A GLMM fitted on Dask: the in-memory results, with lazy per-partition random effects and
predictions.

The estimates, tables, tests and JSON are those of :class:`GLMMResults` (the JSON adds the
engine, the number of partitions and of workers). ``random_effects()`` and ``predict()``
return Dask collections aligned with the shuffled data's partitions: each partition rebuilds
its design, runs the fit's in-memory engine at the estimates and answers as the in-memory
results would for its clusters.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import dask.dataframe as dd
import numpy as np
import pandas as pd

from mixedglm.engines.rules import IntegrationRule
from mixedglm.errors import MixedGLMError
from mixedglm.results.dask_common import DaskResultsMixin
from mixedglm.results.glmm import GLMMResults
from mixedglm.results.predict import KINDS
from mixedglm.scale import partition as part


def _partition_results(
    frame: pd.DataFrame, base: GLMMResults, spec: part.DesignSpec, rule: IntegrationRule
) -> GLMMResults | None:
    """The in-memory results restricted to one partition's clusters."""
    design = part.design_for(frame, spec)
    if design is None:
        return None
    weights = None
    if spec.carried:  # the weights, as the fit's engines (partition.op_build)
        weights = part.partition_weights(part.carried_rows(frame, spec, design), spec, design)
    engine = part.memory_engine(design, base.family, base.structure, rule, weights)
    (post,) = engine.posterior(base.params_all, "means").values()
    return replace(
        base, design=design, posterior_mean=post.mean, posterior_cov=post.cov, engine=engine
    )


def _effects(frame, base, spec, rule, kind, se, expand, meta):
    res = _partition_results(frame, base, spec, rule)
    return meta if res is None else res.random_effects(kind, se, expand)


def _predict(frame, base, spec, rule, kind, conditional, u0, meta):
    res = _partition_results(frame, base, spec, rule)
    return meta if res is None else res.predict(None, kind, conditional, u0)


def _accessor(frame, base, spec, rule, name, meta):
    res = _partition_results(frame, base, spec, rule)
    return meta if res is None else getattr(res, name)


@dataclass(frozen=True)
class DaskGLMMResults(DaskResultsMixin, GLMMResults):  # type: ignore[misc]
    """:class:`GLMMResults` of a fit on Dask (``lazy``: the shuffled data, unevaluated)."""

    lazy: dd.DataFrame | None = field(default=None, repr=False)
    spec: part.DesignSpec | None = field(default=None, repr=False)
    rule: IntegrationRule | None = None
    n_partitions: int = 0
    n_workers: int = 0
    timings: dict = field(default_factory=dict)
    sample: str | None = None  # the estimation sample's signature (frame.totals)

    def _lazy(self) -> dd.DataFrame:
        """The shuffled data (every fit on Dask keeps it)."""
        assert self.lazy is not None
        return self.lazy

    def _base(self) -> GLMMResults:
        """The in-memory results' fields (each partition puts in its own design; the
        global one, with every cluster's label, stays out of the task graph)."""
        values = {f.name: getattr(self, f.name) for f in fields(GLMMResults)}
        return GLMMResults(
            **{
                **values,
                "design": None,
                "engine": None,
                "posterior_mean": self.posterior_mean[:0],
                "posterior_cov": self.posterior_cov[:0],
            }
        )

    def random_effects(
        self, kind: str = "means", se: bool = True, expand: bool = False
    ) -> dd.DataFrame:
        """As :meth:`GLMMResults.random_effects`, a lazy Dask DataFrame (one partition per
        partition of the shuffled data; clusters within a partition in label order)."""
        if kind not in ("means", "mean", "modes", "mode"):
            raise ValueError(f"kind must be 'means' or 'modes', not '{kind}'")
        order = self.structure.display_order()
        names = [self.structure.columns[a] for a in order]
        columns = names + ([f"se({n})" for n in names] if se else [])
        group = self.design.group
        assert group is not None
        index = (
            self._lazy()._meta.index[:0] if expand else pd.Index(group.labels[:0], name=group.name)
        )
        meta = pd.DataFrame({c: pd.Series(dtype=float) for c in columns}, index=index)
        return self._lazy().map_partitions(
            _effects, self._base(), self.spec, self.rule, kind, se, expand, meta, meta=meta
        )

    def predict(
        self, data: object = None, kind: str = "mu", conditional: bool = True, u0: bool = False
    ) -> dd.Series | dd.DataFrame:
        """As :meth:`GLMMResults.predict` on the estimation sample, a lazy Dask collection
        aligned with the shuffled data's partitions (new data: fit in memory, or predict
        from ``random_effects().compute()``; ``u0``, passed on, concerns new data only)."""
        if data is not None:
            raise MixedGLMError(
                "predict() after a fit on Dask predicts for the estimation sample (data=None); "
                "for new data compute the random effects (random_effects().compute()) and "
                "predict in memory"
            )
        if kind not in KINDS:
            raise MixedGLMError(f"kind must be one of {', '.join(KINDS)}, not '{kind}'")
        if kind == "pr" and not self.family.is_ordinal:
            raise MixedGLMError("kind='pr' is for ordinal models; use kind='mu' for the mean")
        index = self._lazy()._meta.index[:0]
        meta: pd.Series | pd.DataFrame
        if kind == "pr":
            cols = pd.Index(list(self.family.categories), name=self.design.response)
            meta = pd.DataFrame(np.zeros((0, len(cols))), index=index, columns=cols)
        else:
            meta = pd.Series(np.zeros(0), index=index, name=kind)
        return self._lazy().map_partitions(
            _predict, self._base(), self.spec, self.rule, kind, conditional, u0, meta, meta=meta
        )

    def _lazy_accessor(self, name: str) -> dd.Series:
        """A per-observation accessor of the in-memory results (fitted values, residuals),
        computed per partition: a lazy Dask Series aligned with the shuffled data."""
        meta = pd.Series(np.zeros(0), index=self._lazy()._meta.index[:0], name=name)
        return self._lazy().map_partitions(
            _accessor, self._base(), self.spec, self.rule, name, meta, meta=meta
        )

    def to_dict(self, level: float | None = None) -> dict:
        """The in-memory JSON document with ``engine``, ``partitions`` and ``workers``;
        ``sample`` is the Dask signature of the estimation sample (``dask:`` rows and the
        sum of the rows' hashes; :func:`~mixedglm.inference.lrtest.lrtest` compares it with
        another fit's on Dask)."""
        out = super().to_dict(level)
        out["sample"] = self.sample
        return out
