"""``glmm()`` on Dask with nested grouping factors: the in-memory multilevel fit
(:func:`~mixedglm.models.multilevel.fit_design`) on engines summed over the partitions
(:mod:`mixedglm.engines.dask_nested`), the data shuffled once on the top-level factor
(:mod:`mixedglm.scale.multilevel`)."""

from __future__ import annotations

from dataclasses import fields, replace

import dask.dataframe as dd
from distributed import Client

from mixedglm.engines.dask_nested import DaskNestedEngines
from mixedglm.errors import MixedGLMError
from mixedglm.families import Family
from mixedglm.formula import ParsedFormula
from mixedglm.models.multilevel import fit_design
from mixedglm.options import FitOptions
from mixedglm.results.dask_multilevel import DaskMultilevelResults
from mixedglm.results.multilevel import MultilevelResults
from mixedglm.scale.frame import check_distributed_outcome
from mixedglm.scale.multilevel import NestedSpec, distribute_nested


def fit_nested(
    client: Client,
    ddf: dd.DataFrame,
    parsed: ParsedFormula,
    family: Family,
    opts: FitOptions,
    *,
    cov: object,
    trials: str | None,
    asked: tuple,
) -> DaskMultilevelResults:
    """A nested model on ``client``: shuffle ``ddf`` on the top-level factor, fit with the
    ``(method, nagq, curvature)`` ``asked`` for, release the workers' designs."""
    if trials is None and family.name == "binomial":
        family = replace(family, name="bernoulli")
    if trials is not None and not family.is_binary:
        raise MixedGLMError("trials= is for the binomial family")
    nested = distribute_nested(
        client, ddf, parsed, family, cov=cov, offset=opts.offset, exposure=opts.exposure,
        trials=trials, subset=opts.subset, show_progress=opts.log is not None,
    )  # fmt: skip
    try:
        categories = nested.design.base.categories
        fam = family.with_categories(categories) if family.is_ordinal else family
        check_distributed_outcome(nested.data.sums, nested.design.base, fam)
        method, nagq, curvature = asked
        fitted = fit_design(
            nested.design, fam, method=method, nagq=nagq, curvature=curvature,
            maxiter=opts.maxiter, level=opts.level, quiet=opts.quiet, log=opts.log,
            engines=DaskNestedEngines(nested, fam),
        )  # fmt: skip
        values = {f.name: getattr(fitted, f.name) for f in fields(MultilevelResults)}
        assert isinstance(nested.data.spec, NestedSpec)
        return DaskMultilevelResults(
            **values,
            lazy=nested.data.lazy,
            spec=nested.data.spec,
            n_partitions=nested.data.n_partitions,
            n_workers=nested.data.n_workers,
            timings=nested.data.timings,
            sample=nested.data.sums["sample"],
        )
    finally:
        nested.data.release()
