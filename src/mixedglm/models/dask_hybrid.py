"""``hybrid()`` on Dask: the decomposition per partition, then the mixed model on Dask.

One shuffle on the cluster variable puts every cluster whole in one partition. A pass over
the partitions (:func:`~mixedglm.scale.hybrid.hybrid_stats`) gives the counts and sums the
decisions need: the missing values (Stata's note), the outcome's variation within clusters,
and each ``use`` variable's within share of variance from the clusters' sizes and means
(:func:`~mixedglm.design.hybrid.share_from_sums`, in label order as in memory). Each
partition then makes its decomposed columns, which stay on the workers, and the GLMM is
fitted on them by :func:`~mixedglm.models.dask_glmm.fit_distributed` without a second
shuffle (the partitions already hold whole clusters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from mixedglm.design.hybrid import (
    HybridDecomposition,
    _numeric,
    check_outcome_spread,
    hybrid_request,
    missing_cluster_error,
    plan_terms,
    share_from_sums,
)
from mixedglm.design.missing import missing_notes
from mixedglm.errors import DataError, SubsetError
from mixedglm.families import get_family
from mixedglm.formula import parse_formula
from mixedglm.models.dask_glmm import DaskGLMMResults, fit_distributed, vce_variable
from mixedglm.options import FitOptions, integration_rule
from mixedglm.scale.frame import as_dask_frame, distribute, map_gather, shuffle_by, total_missing
from mixedglm.scale.hybrid import decompose_partition, hybrid_stats
from mixedglm.scale.session import dask_client


def _decompose(client, ddf, request, options: dict, subset, named, show) -> tuple:
    """The decomposition on the cluster: its description (with the lazy decomposed frame)
    and the futures of the decomposed partitions."""
    meta = ddf._meta
    for name in request.model_vars:  # non-numeric covariates fail before any work
        _numeric(meta, name, "use() variable" if name in request.use else "covariate")
    futures, shuffled, _ = shuffle_by(
        client, ddf, request.cluster, list(request.wanted), subset, show
    )
    stats = map_gather(client, hybrid_stats, futures, show, "levels", request=request, named=named)
    rows = sum(s["rows"] for s in stats)
    if rows == 0:
        raise SubsetError(f"no observations satisfy the condition '{subset}'")
    n_missing_cluster = sum(s["missing_cluster"] for s in stats)
    if n_missing_cluster:
        raise missing_cluster_error(n_missing_cluster, request.cluster)
    kept = sum(s["kept"] for s in stats)
    if kept == 0:
        raise DataError(f"no observations left after dropping {rows} with missing values")
    notes = missing_notes(total_missing(stats, list(request.wanted)), rows - kept)
    labels = np.concatenate([s["labels"] for s in stats])
    order = np.argsort(labels, kind="stable")
    sizes = np.concatenate([s["sizes"] for s in stats])[order]
    check_outcome_spread(
        max(s["spread"] for s in stats),
        max(s["largest"] for s in stats),
        request.response,
        request.cluster,
    )
    within_percent = {
        name: share_from_sums(
            sum(s["ssr"][name] for s in stats),
            kept,
            sizes,
            np.concatenate([s["means"][name] for s in stats])[order],
        )
        for name in request.use
    }
    cre = options["cre"]
    terms, skipped, residual, plan_notes = plan_terms(request, within_percent, **options)
    args = {"request": request, "residual": residual, "terms": terms, "cre": cre}
    decomposed = client.map(decompose_partition, futures, **args)
    lazy = shuffled.map_partitions(
        decompose_partition, **args, meta=decompose_partition(shuffled._meta, **args)
    )
    dec = HybridDecomposition(
        frame=lazy,
        response=request.response,
        cluster=request.cluster,
        cre=cre,
        residual=residual,
        terms=terms,
        skipped=skipped,
        within_percent=within_percent,
        n_dropped=rows - kept,
        notes=tuple(notes + plan_notes),
        percentage=float(options["percentage"]),
        nonlinearities=options["nonlinearities"],
    )
    return dec, decomposed


def hybrid_on_dask(
    data: object,
    response: str,
    covariates: Sequence[str],
    cluster: str,
    formula_for: Callable[[HybridDecomposition], str],
    opts: FitOptions,
    *,
    use: Sequence[str] | None,
    cre: bool,
    percentage: float,
    nonlinearities: str | None,
    carry: Sequence[str],
    named: Sequence[str],
    family: str,
    link: str | None,
    nagq: int | None,
    method: str | None,
    cov: str | None,
    trials: str | None,
) -> tuple[HybridDecomposition, DaskGLMMResults]:
    """The decomposition and the mixed model (on the columns ``formula_for(decomposition)``
    names) of ``hybrid(engine="dask")``."""
    fam = get_family(family, link)
    rule = integration_rule(method, nagq, None, supports_fisher=fam.supports_fisher)
    if trials is None and fam.name == "binomial":
        fam = replace(fam, name="bernoulli")  # as glmm() in memory
    log = opts.log
    with dask_client(opts.scheduler, opts.workers) as client:
        ddf = as_dask_frame(data)
        request = hybrid_request(
            list(ddf.columns), response, covariates, cluster, use=use,
            percentage=percentage, nonlinearities=nonlinearities, carry=carry,
        )  # fmt: skip
        options = {"cre": cre, "percentage": percentage, "nonlinearities": nonlinearities}
        show = log is not None
        dec, futures = _decompose(client, ddf, request, options, opts.subset, named, show)
        if not opts.quiet:
            for note in dec.notes:
                print(note)
        parsed = parse_formula(formula_for(dec))
        dist = distribute(
            client, dec.frame, parsed, fam, offset=opts.offset, exposure=opts.exposure,
            trials=trials, subset=None, show_progress=show, partitioned=futures,
            carried=tuple(c for c in [vce_variable(opts.vce, cluster)] if c is not None),
        )  # fmt: skip
        res = fit_distributed(dist, parsed, fam, opts, rule=rule, cov=cov)
    if log:
        log("")
    return dec, res
