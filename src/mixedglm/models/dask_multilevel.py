"""``glmm()`` on Dask with nested grouping factors: the in-memory multilevel fit
(:func:`~mixedglm.models.multilevel.fit_design`) on engines summed over the partitions
(:mod:`mixedglm.engines.dask_nested`), the data shuffled once on the top-level factor
(:mod:`mixedglm.scale.multilevel`)."""

from __future__ import annotations

from dataclasses import fields, replace

from mixedglm.engines.dask_nested import DaskNestedEngines
from mixedglm.errors import MixedGLMError
from mixedglm.families import Family
from mixedglm.formula import ParsedFormula
from mixedglm.models.multilevel import fit_design
from mixedglm.results.dask_multilevel import DaskMultilevelResults
from mixedglm.results.multilevel import MultilevelResults
from mixedglm.scale.frame import as_dask_frame, with_idioms
from mixedglm.scale.multilevel import distribute_nested
from mixedglm.scale.session import dask_client


def fit_nested_on_dask(
    parsed: ParsedFormula,
    data: object,
    family: Family,
    *,
    method: str | None,
    nagq: object,
    curvature: str | None,
    cov: object,
    subset: str | None,
    offset: str | None,
    exposure: str | None,
    trials: str | None,
    level: float,
    maxiter: int,
    nolog: bool,
    quiet: bool,
    scheduler: str | None = None,
    workers: int | None = None,
) -> DaskMultilevelResults:
    """A nested model on Dask: read, shuffle on the top-level factor, fit, release."""
    log = print if not nolog and not quiet else None
    with dask_client(scheduler, workers) as client:
        ddf, idioms = with_idioms(
            as_dask_frame(data), parsed, offset=offset, trials=trials,
            allow_cbind=family.is_binary,
        )  # fmt: skip
        parsed, offset, trials = idioms.formula, idioms.offset, idioms.trials
        if trials is None and family.name == "binomial":
            family = replace(family, name="bernoulli")
        if trials is not None and not family.is_binary:
            raise MixedGLMError("trials= is for the binomial family")
        nested = distribute_nested(
            client, ddf, parsed, family, cov=cov, offset=offset, exposure=exposure,
            trials=trials, subset=subset, show_progress=log is not None,
        )  # fmt: skip
        try:
            categories = nested.design.base.categories
            fam = family.with_categories(categories) if family.is_ordinal else family
            fitted = fit_design(
                nested.design, fam, method=method, nagq=nagq, curvature=curvature,
                maxiter=maxiter, level=level, quiet=quiet, log=log,
                engines=DaskNestedEngines(nested, fam),
            )  # fmt: skip
            values = {f.name: getattr(fitted, f.name) for f in fields(MultilevelResults)}
            res = DaskMultilevelResults(
                **values,
                n_partitions=nested.data.n_partitions,
                n_workers=nested.data.n_workers,
                timings=nested.data.timings,
            )
        finally:
            nested.data.release()
    return res
