"""A nested model fitted on Dask: the in-memory multilevel results, with lazy per-partition
random effects and predictions.

The estimates, tables, tests and JSON are those of :class:`MultilevelResults` (the JSON adds
the engine, the number of partitions and of workers). ``random_effects()``, ``predict()``,
the fitted values and the residuals return Dask collections, one partition per partition of
the shuffled data: each partition rebuilds its design (whole top-level clusters, so every
unit of every level lies whole in it), runs the fit's in-memory engine at the estimates and
answers as the in-memory results would for its clusters. What needs them in memory
(:meth:`DaskMultilevelResults.random_effects_long`, the command line's ``--reffects``)
computes them (:meth:`DaskMultilevelResults.computed_random_effects`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields, replace

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from mixedglm.engines.base import Posterior
from mixedglm.errors import MixedGLMError
from mixedglm.models.multilevel import MemoryEngines
from mixedglm.results.dask_common import DaskResultsMixin
from mixedglm.results.multilevel import MultilevelResults, long_frame
from mixedglm.results.multilevel_predict import KINDS
from mixedglm.scale.multilevel import NestedSpec, design_for


def _partition_results(
    frame: pd.DataFrame, base: MultilevelResults, spec: NestedSpec, effects: bool = True
) -> MultilevelResults | None:
    """The in-memory results restricted to one partition's top-level clusters: its design,
    and the posterior of the fit's kind (means or modes) at the estimates (zeros, not
    computed, without ``effects``: for the predictions that do not use them)."""
    design = design_for(frame, spec)
    if design is None:
        return None
    engines = MemoryEngines(design, base.family)
    x = base.params_all
    kind = next(iter(base.posterior.values())).kind
    if not effects:
        posterior = {
            f.name: Posterior(np.zeros((f.n_levels, f.q)), np.zeros((f.n_levels, f.q, f.q)), kind)
            for f in design.factors
        }
    elif base.rule.is_laplace:
        posterior = engines.laplace().posterior(x)
    else:
        posterior = engines.nested(base.rule).posterior(x, kind)
    return replace(base, design=design, posterior=posterior)


def _effects(frame, base, spec, se) -> dict[str, pd.DataFrame] | None:
    res = _partition_results(frame, base, spec)
    return None if res is None else res.random_effects(se)


def _factor(effects: dict[str, pd.DataFrame] | None, name: str, meta: pd.DataFrame):
    return meta if effects is None else effects[name]


def _predict(frame, base, spec, kind, factors, fixedonly, meta):
    res = _partition_results(frame, base, spec, effects=not fixedonly and kind != "xb")
    return meta if res is None else res.predict(None, kind, factors, fixedonly)


def _accessor(frame, base, spec, name, meta):
    res = _partition_results(frame, base, spec)
    return meta if res is None else getattr(res, name)


@dataclass(frozen=True, repr=False)  # repr: the table (DisplayMixin)
class DaskMultilevelResults(DaskResultsMixin, MultilevelResults):  # type: ignore[misc]
    """:class:`MultilevelResults` of a nested fit on Dask; its design has no rows (the
    factors keep their labels and observations per level), its ``posterior`` no levels
    (only the kind, means or modes); ``lazy``: the shuffled data, unevaluated."""

    lazy: dd.DataFrame | None = field(default=None, repr=False)
    spec: NestedSpec | None = field(default=None, repr=False)
    n_partitions: int = 0
    n_workers: int = 0
    timings: dict = field(default_factory=dict)
    sample: str | None = None  # "dask:<rows>:<hash>" (``scale.frame.totals``)

    def sample_signature(self) -> str | None:
        """The estimation sample's signature on Dask: its rows and the sum of their hashes,
        added over the partitions (the rows have no global order to list)."""
        return self.sample

    def _lazy(self) -> dd.DataFrame:
        assert self.lazy is not None  # every nested fit on Dask keeps it
        return self.lazy

    def _base(self) -> MultilevelResults:
        """The in-memory results' fields (each partition puts in its own design and
        posterior; the global design, with every level's label, stays out of the graph)."""
        values = {f.name: getattr(self, f.name) for f in fields(MultilevelResults)}
        return MultilevelResults(**{**values, "design": None})

    def _map(self, func, *args: object, meta: pd.Series | pd.DataFrame):
        return self._lazy().map_partitions(func, self._base(), self.spec, *args, meta, meta=meta)

    # -- random effects ------------------------------------------------------------------
    def random_effects(self, se: bool = True) -> dict[str, dd.DataFrame]:  # type: ignore[override]
        """As :meth:`MultilevelResults.random_effects`: per factor a lazy Dask DataFrame (one
        partition per partition of the shuffled data; its levels in label order within a
        partition). The factors share their per-partition tasks: computed together
        (``dask.compute(*effects.values())``) each partition's posterior is computed once.
        ``computed_random_effects()`` gives the in-memory frames."""
        base = dask.delayed(self._base(), name=f"multilevel-results-{uuid.uuid4().hex}")
        parts = [
            dask.delayed(_effects)(frame, base, self.spec, se)
            for frame in self._lazy().to_delayed()
        ]
        out = {}
        for f in self.factors:
            order = f.structure.display_order()
            names = [f.structure.columns[a] for a in order]
            columns = names + ([f"se({n})" for n in names] if se else [])
            index = pd.Index(f.labels[:0], name=f.name)
            meta = pd.DataFrame({c: pd.Series(dtype=float) for c in columns}, index=index)
            frames = [dask.delayed(_factor)(p, f.name, meta) for p in parts]
            out[f.name] = dd.from_delayed(frames, meta=meta, verify_meta=False)
        return out

    def computed_random_effects(self, se: bool = True) -> dict[str, pd.DataFrame]:
        """The random effects computed (one pass over the data) and put in the in-memory
        order: pandas DataFrames equal to :meth:`MultilevelResults.random_effects`'s."""
        lazy = self.random_effects(se)
        frames = dask.compute(*lazy.values())
        out = {}
        for f, frame in zip(self.factors, frames, strict=True):
            if frame.shape[0] != f.n_levels:
                raise MixedGLMError(
                    f"the random effects of '{f.name}' computed {frame.shape[0]} levels, the "
                    f"fit has {f.n_levels}: the data changed since the fit?"
                )
            out[f.name] = frame.loc[pd.Index(f.labels, name=f.name)]
        return out

    def random_effects_long(self) -> pd.DataFrame:
        """As :meth:`MultilevelResults.random_effects_long`, computed (a pandas DataFrame)."""
        return long_frame(self.computed_random_effects())

    def ranef(self) -> dict[str, dd.DataFrame]:  # type: ignore[override]
        """lme4's ``ranef()``: the conditional modes (or means), lazy, one per factor."""
        return self.random_effects(se=False)

    # -- predictions -----------------------------------------------------------------------
    def predict(  # type: ignore[override]
        self,
        data: object = None,
        kind: str = "mu",
        factors: list[str] | tuple[str, ...] | None = None,
        fixedonly: bool = False,
    ) -> dd.Series:
        """As :meth:`MultilevelResults.predict` on the estimation sample: a lazy Dask Series
        aligned with the shuffled data's partitions (new data: fit in memory, or predict
        from ``computed_random_effects()``)."""
        if data is not None:
            raise MixedGLMError(
                "predict() after a nested fit on Dask predicts for the estimation sample "
                "(data=None); for new data compute the random effects "
                "(computed_random_effects()) and predict in memory, or fit in memory"
            )
        if kind not in KINDS:
            raise MixedGLMError(f"kind must be one of {', '.join(KINDS)}, not '{kind}'")
        if kind == "mu" and self.family.is_ordinal:
            self.family.inverse_link(np.zeros(0))  # the in-memory message, now
        for name in factors or ():
            self.design.factor(name)  # an unknown factor: the in-memory message, now
        meta = pd.Series(np.zeros(0), index=self._lazy()._meta.index[:0], name=kind)
        chosen = None if factors is None else tuple(factors)
        return self._map(_predict, kind, chosen, fixedonly, meta=meta)

    def _lazy_accessor(self, name: str) -> dd.Series:
        """A per-observation accessor (fitted values, residuals) per partition, lazy."""
        meta = pd.Series(np.zeros(0), index=self._lazy()._meta.index[:0], name=name)
        return self._map(_accessor, name, meta=meta)
