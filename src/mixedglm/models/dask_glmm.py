"""``glmm()`` on Dask: the in-memory driver, each evaluation mapped over the workers.

The stages and their logs are those of :func:`mixedglm.models.glmm.fit_glmm`, which runs
unchanged on the Dask engines (:class:`~mixedglm.engines.dask_engine.DaskFactory`: one map
over the workers and one sum on the client per evaluation). What the in-memory fit takes from
the rows (the pooled GLM's start values, the random effects' scales) comes from the
partitions' sums, reduced once.
"""

from __future__ import annotations

from dataclasses import fields, replace

import dask.dataframe as dd
import numpy as np
import pandas as pd
from scipy import special

from mixedglm.design.weights import WeightInfo, check_weights
from mixedglm.engines.dask_engine import DaskEngine, DaskFactory
from mixedglm.engines.rules import IntegrationRule
from mixedglm.errors import DataError
from mixedglm.families import Family
from mixedglm.families.ordinal import _quantile, aux_from_cutpoints
from mixedglm.formula import ParsedFormula
from mixedglm.inference.robust import VCEInfo, parse_vce, sandwich
from mixedglm.inference.singular import singular_notes, with_notes
from mixedglm.models.glmm import choose_structure, fit_glmm
from mixedglm.models.multilevel import needs_multilevel
from mixedglm.models.reml import CrossProducts, fit_reml
from mixedglm.models.vce import robust_cov
from mixedglm.options import FitOptions
from mixedglm.results.dask_glmm import DaskGLMMResults
from mixedglm.results.dask_multilevel import DaskMultilevelResults
from mixedglm.results.glmm import GLMMResults
from mixedglm.scale import partition as part
from mixedglm.scale.frame import (
    DistributedData,
    as_dask_frame,
    check_distributed_outcome,
    distribute,
    on_holders,
    with_idioms,
)
from mixedglm.scale.session import dask_client


def pooled_start(sums: dict, family: Family, p: int) -> np.ndarray:
    """The pooled GLM's start values from the partitions' sums (as ``GLMObjective.start``
    computes them from the rows)."""
    n = float(sums["n"])
    sy, sy2, st, so, sr, sr2 = (float(v) for v in sums["sums"])
    var_y = max(sy2 / n - (sy / n) ** 2, 0.0)
    if family.name == "gaussian":
        aux = np.array([0.5 * np.log(max(var_y, 1e-12))])
    elif family.name == "nbinomial":
        mean = max(sy / n, 1e-8)
        excess = var_y - mean
        ratio = excess / mean if family.dispersion == "constant" else excess / mean**2
        aux = np.array([np.log(min(max(ratio, 0.05), 1e3))])
    elif family.name == "gamma":
        aux = np.array([np.log(min(max(var_y / (sy / n) ** 2, 1e-6), 1e3))])
    elif family.is_ordinal:
        counts = sums["counts"]
        cum = np.cumsum(counts)[:-1] / counts.sum()
        cuts = _quantile(family.link, np.clip(cum, 1e-6, 1 - 1e-6))
        aux = aux_from_cutpoints(np.maximum.accumulate(cuts + 1e-3 * np.arange(cuts.size)))
        aux[0] += so / n
    else:
        aux = np.zeros(family.n_aux)
    beta = np.zeros(p)
    mean = sy / st if family.is_binary else sy / n
    if sums.get("weighted") is not None:  # the rows' total weights (GLMObjective.start)
        swy, swt, sw = (float(v) for v in sums["weighted"])
        mean = swy / swt if family.is_binary else swy / sw
    const_cols = np.flatnonzero(sums["ones"])
    if const_cols.size and not family.is_ordinal:
        c = const_cols[0]
        if family.is_binary:
            m = min(max(mean, 1e-4), 1 - 1e-4)
            beta[c] = {
                "logit": np.log(m / (1 - m)),
                "probit": float(special.ndtri(m)),
                "cloglog": float(np.log(-np.log1p(-m))),
            }[family.link]
        elif family.link == "log":
            beta[c] = np.log(max(mean, 1e-8)) - so / n
        else:
            beta[c] = mean - so / n
    if family.name == "gaussian":
        resid2 = (sr2 - 2.0 * mean * sr + n * mean**2) / n
        aux[0] = 0.5 * np.log(max(resid2, 1e-12))
    return np.concatenate([beta, aux])


def fit_on_dask(
    parsed: ParsedFormula,
    data: object,
    family: Family,
    opts: FitOptions,
    *,
    rule: IntegrationRule,
    cov: str | dict | None,
    trials: str | None,
    asked: tuple = (None, None, None),
    weights: tuple[str | None, str | None, dict | None] = (None, None, None),
    reml: bool = False,
) -> DaskGLMMResults | DaskMultilevelResults:
    """``glmm()`` with ``engine="dask"`` (or Dask data): read, distribute, fit, release.
    Nested factors: :func:`~mixedglm.models.dask_multilevel.fit_nested` with the
    ``method``, ``nagq`` and ``curvature`` ``asked`` for (the multilevel rule's choice).
    ``weights``: ``fweight``, ``pweight`` and ``group_weights``; ``reml`` (one factor)."""
    log = opts.log
    with dask_client(opts.scheduler, opts.workers) as client:
        ddf, idioms = with_idioms(
            as_dask_frame(data), parsed, offset=opts.offset, trials=trials,
            allow_cbind=family.is_binary,
        )  # fmt: skip
        parsed, offset, trials = idioms.formula, idioms.offset, idioms.trials
        if needs_multilevel(parsed):
            from mixedglm.models.dask_multilevel import fit_nested  # imports this module

            opts = replace(opts, offset=offset)
            return fit_nested(
                client, ddf, parsed, family, opts, cov=cov, trials=trials, asked=asked
            )
        assert not isinstance(cov, dict)  # glmm() refuses it with one factor
        fweight, pweight, group_weights = weights
        check_weights(ddf._meta, fweight, pweight, group_weights, parsed.groups[0])
        gw_var = next(iter(group_weights.values())) if group_weights else None
        carried = check_carried(ddf, vce_variable(opts.vce, parsed.groups[0]))
        carried = tuple(dict.fromkeys([*carried, *(v for v in (fweight, pweight, gw_var) if v)]))
        dist = distribute(
            client,
            ddf,
            parsed,
            family,
            offset=offset,
            exposure=opts.exposure,
            trials=trials,
            subset=opts.subset,
            show_progress=log is not None,
            carried=carried,
            weights=(fweight, pweight, gw_var),
        )
        if reml:
            return fit_reml_distributed(dist, parsed, family, opts, cov=cov)
        res = fit_distributed(dist, parsed, family, opts, rule=rule, cov=cov)
    if log:
        log("")
    return res


def fit_reml_distributed(
    dist: DistributedData, parsed: ParsedFormula, family: Family, opts: FitOptions, *, cov
) -> DaskGLMMResults:
    """REML (:func:`~mixedglm.models.reml.fit_reml`) on the clusters' cross-products made
    on the partitions (one map) and put in label order on the client; as in memory, no
    note is added after the fit."""
    try:
        structure = choose_structure(parsed, dist.design, cov)
        if not opts.quiet:
            for note in dist.design.notes:
                print(note)
        parts = on_holders(dist.client, dist.placement, part.op_cross_products, dist.model_id)
        order = np.argsort(np.concatenate([labels for labels, _ in parts]), kind="stable")
        cross = CrossProducts.combine([c for _, c in parts], order)
        fitted = fit_reml(
            dist.design, family, structure, maxiter=max(opts.maxiter, 200), level=opts.level,
            log=opts.log, cross=cross,
        )  # fmt: skip
        # the posterior of the random effects: exact (gaussian)
        return on_dask(fitted, dist, IntegrationRule())
    finally:
        dist.release()


def on_dask(fitted: GLMMResults, dist: DistributedData, rule: IntegrationRule) -> DaskGLMMResults:
    """The in-memory ``fitted`` results as results on Dask (``rule`` for their random
    effects, computed per partition later)."""
    values = {f.name: getattr(fitted, f.name) for f in fields(GLMMResults)}
    return DaskGLMMResults(
        **values,
        lazy=dist.lazy,
        spec=dist.spec,
        rule=rule,
        n_partitions=dist.n_partitions,
        n_workers=dist.n_workers,
        timings=dist.timings,
        sample=dist.sums.get("sample"),
    )


def vce_variable(vce: str | None, group: str | None) -> str | None:
    """The ``vce`` clustering variable when it is not the grouping variable (carried with
    the rows to the workers), else None."""
    choice = parse_vce(vce)
    return choice[1] if choice is not None and choice[1] not in (None, group) else None


def check_carried(ddf: dd.DataFrame, cluster: str | None) -> tuple[str, ...]:
    """The columns carried with the rows, checked against the data (the in-memory
    message)."""
    if cluster is not None and cluster not in ddf.columns:
        raise DataError(f"cluster variable '{cluster}' not found in the data")
    return (cluster,) if cluster is not None else ()


def cluster_sandwich(
    engine: DaskEngine, params: np.ndarray, cov: np.ndarray, variable: str, group: str
) -> tuple[np.ndarray, VCEInfo]:
    """``vce="cluster VAR"``: the clusters' scores summed by VAR on every partition (one
    map), then by VAR over the partitions on the client, into the sandwich; VAR's missing
    values and clusters of the grouping variable split by VAR are refused as in memory."""
    parts = engine.cluster_scores(params, variable)
    n_missing = sum(p["missing"] for p in parts)
    if n_missing:
        raise DataError(
            f"cluster variable '{variable}' is missing in {n_missing} observation"
            f"{'s' if n_missing != 1 else ''} of the estimation sample"
        )
    if any(p["splits"] for p in parts):
        raise DataError(
            f"cluster variable '{variable}' splits clusters of {group}: the highest-level "
            f"groups ({group}) must be nested within the clusters of {variable}"
        )
    codes, levels = pd.factorize(pd.Series(np.concatenate([p["levels"] for p in parts])), sort=True)
    sums = np.zeros((len(levels), cov.shape[0]))
    np.add.at(sums, codes, np.vstack([p["sums"] for p in parts]))
    out, g = sandwich(cov, sums)
    return out, VCEInfo("cluster", variable, g)


def fit_distributed(
    dist: DistributedData,
    parsed: ParsedFormula,
    family: Family,
    opts: FitOptions,
    *,
    rule: IntegrationRule,
    cov: str | None,
) -> DaskGLMMResults:
    """The in-memory driver on the model's distributed designs; they are released after."""
    quiet, vce = opts.quiet, opts.vce
    try:
        fam = family.with_categories(dist.design.categories) if family.is_ordinal else family
        check_distributed_outcome(dist.sums, dist.design, fam)
        structure = choose_structure(parsed, dist.design, cov)
        if not quiet:
            for note in dist.design.notes:
                print(note)
        fweight, pweight, gw_var = dist.spec.weights
        if pweight and parse_vce(vce) is None:
            vce = "robust"  # sampling weights imply robust standard errors, as in memory
        factory = DaskFactory(dist, fam, structure)
        p = len(dist.design.x_names)
        pooled = factory.pooled(lambda: pooled_start(dist.sums, fam, p))
        fitted = fit_glmm(
            dist.design,
            fam,
            structure,
            rule,
            maxiter=opts.maxiter,
            level=opts.level,
            log=opts.log,
            engines=(factory, pooled),
        )
        if dist.sums.get("weighted") is not None:
            nobs = dist.design.n_obs if pweight else float(dist.sums["weighted"][2])
            fitted = replace(fitted, weights=WeightInfo(fweight, pweight, gw_var, nobs))
        variable = vce_variable(vce, dist.spec.group)
        if variable is not None:  # one more map: the scores summed by VAR's clusters
            assert isinstance(fitted.engine, DaskEngine)
            cov_all, info = cluster_sandwich(
                fitted.engine, fitted.params_all, fitted.cov_all, variable, dist.spec.group
            )
            fitted = replace(fitted, cov_all=cov_all, vce=info)
        elif parse_vce(vce) is not None:  # one more map: the clusters' scores
            assert fitted.engine is not None and vce is not None
            scores = fitted.engine.contributions(fitted.params_all).score
            out = robust_cov(
                fitted.cov_all, scores, np.zeros(0, np.int64), dist.spec.group, vce, None, None
            )
            assert out is not None
            fitted = replace(fitted, cov_all=out[0], vce=out[1])
        res = on_dask(replace(fitted, engine=None), dist, rule)
    finally:
        dist.release()
    printed = () if quiet else dist.design.notes
    return with_notes(res, singular_notes(res), printed)
