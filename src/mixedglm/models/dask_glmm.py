"""``glmm()`` on Dask: the in-memory fit's stages, each evaluation mapped over the workers.

The stages and their logs are those of :func:`mixedglm.models.glmm.fit_glmm`: the pooled GLM
from the same start, the best of four scalings of the variance start by the Laplace
approximation, a 3-point fit when the rule has more than four points (whose modes warm-start
the full rule), Newton with the full rule, the boundary check and the covariance from the
Hessian. Each evaluation is a :class:`~mixedglm.engines.dask_engine.DaskEngine` call (one map
over the workers, one sum on the client); the sums that the in-memory fit takes over the rows
(start values, the random effects' scales) are reduced once from the partitions' summaries.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np

from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.engines.dask_engine import DaskEngine, DaskFactory
from mixedglm.engines.rules import IntegrationRule
from mixedglm.errors import ConvergenceWarning, MixedGLMError, QuadratureWarning
from mixedglm.families import Family
from mixedglm.families.ordinal import _quantile, aux_from_cutpoints
from mixedglm.formula import ParsedFormula
from mixedglm.inference import covariance_from_hessian
from mixedglm.models.glmm import choose_structure
from mixedglm.optim import newton_maximize
from mixedglm.results.dask_glmm import DaskGLMMResults
from mixedglm.scale.frame import DistributedData, as_dask_frame, distribute
from mixedglm.scale.session import dask_client

COARSE_POINTS = 3


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
    const_cols = np.flatnonzero(sums["ones"])
    if const_cols.size and not family.is_ordinal:
        c = const_cols[0]
        if family.is_binary:
            from scipy import special

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


def _rule(nagq: int, method: str, curvature: str) -> IntegrationRule:
    """The rule the in-memory engine settles on for these options."""
    if method == "laplace" or nagq == 1:
        return IntegrationRule("laplace", 1, curvature)
    if nagq == 2 and method == "mvaghermite":
        return IntegrationRule("mcaghermite", 2, curvature)
    return IntegrationRule(method, nagq, curvature)


def _start_values(
    factory: DaskFactory,
    rule: IntegrationRule,
    scales: np.ndarray,
    x_pooled: np.ndarray,
    p: int,
    log: Callable[[str], None] | None,
) -> np.ndarray:
    theta0 = factory.structure.start(scales)
    laplace = factory(IntegrationRule("laplace", 1, "observed"))  # as fit_glmm's
    best, best_ll = None, -np.inf
    if log:
        log("")
        log("Refining starting values (Laplace):")
        log("")
    for node, factor in enumerate((1.0, 0.5, 2.0, 0.25)):
        x = np.concatenate([x_pooled[:p], theta0 * factor, x_pooled[p:]])
        ll = laplace.loglik(x)
        if log:
            log(f"{f'Grid node {node}:':<14} log likelihood = {ll:.8g}")
        if np.isfinite(ll) and ll > best_ll:
            best, best_ll = x, ll
    if best is None:
        raise MixedGLMError("the log likelihood is not finite at any starting value")
    return best


def _coarse_fit(
    factory: DaskFactory,
    full: DaskEngine,
    rule: IntegrationRule,
    x0: np.ndarray,
    maxiter: int,
    log: Callable[[str], None] | None,
) -> np.ndarray:
    if rule.nagq <= COARSE_POINTS + 1:
        return x0
    coarse = factory(IntegrationRule(rule.method, COARSE_POINTS, rule.curvature))
    if log:
        log("")
        log(f"Fitting full model with {COARSE_POINTS} quadrature points:")
        log("")
    try:
        x, _, _ = newton_maximize(coarse, x0, log=log, maxiter=maxiter, gtol=1e-3)
    except FloatingPointError:
        return x0
    if not np.all(np.isfinite(x)):
        return x0
    full.adopt_grid(coarse)
    return x


def _boundary(structure: CovarianceStructure, scales: np.ndarray, theta: np.ndarray):
    basis = structure.basis()
    lam = structure.lam(theta)
    flags = np.zeros(theta.shape[0], dtype=bool)
    for a in range(lam.shape[0]):
        if np.linalg.norm(lam[a]) * scales[a] < 1e-6:
            flags |= np.any(basis[:, a, :] != 0, axis=1)
    return flags


def fit_distributed(
    data: DistributedData,
    family: Family,
    structure: CovarianceStructure,
    rule: IntegrationRule,
    *,
    maxiter: int = 100,
    level: float = 95.0,
    log: Callable[[str], None] | None = None,
) -> DaskGLMMResults:
    """Estimate the GLMM on distributed data (the stages of ``fit_glmm``)."""
    n_points = rule.nagq**structure.q
    if n_points > 1000:
        warnings.warn(
            QuadratureWarning(
                f"{rule.nagq} points in each of {structure.q} dimensions is {n_points:,} "
                "quadrature points per cluster: the fit will be slow (fewer points, or "
                "method='laplace', is much faster)"
            ),
            stacklevel=4,
        )
    t0 = time.perf_counter()
    design = data.design
    factory = DaskFactory(data, family, structure)
    pooled = factory.pooled()
    p = len(design.x_names)
    if log:
        log("Fitting fixed-effects model:")
        log("")
    x_pooled, ev_pooled, _ = newton_maximize(
        pooled, pooled_start(data.sums, family, p), log=log, maxiter=maxiter
    )
    scales = np.sqrt(data.sums["zsq"] / data.sums["n"])
    objective = factory(rule)
    start = _start_values(factory, rule, scales, x_pooled, p, log)
    x0 = _coarse_fit(factory, objective, rule, start, maxiter, log)
    if log:
        log("")
        log("Fitting full model:")
        log("")
    try:
        x, ev, opt = newton_maximize(objective, x0, log=log, maxiter=maxiter)
    except FloatingPointError:
        x, ev, opt = newton_maximize(objective, start, log=log, maxiter=maxiter)
    notes = list(design.notes)
    n_theta = structure.n_theta
    boundary = _boundary(structure, scales, x[p : p + n_theta])
    if boundary.any():
        x = x.copy()
        x[p : p + n_theta][boundary] = 0.0
        ev = objective(x, 2)
        lam = structure.lam(x[p : p + n_theta])
        zero = [structure.columns[a] for a in range(structure.q) if not np.any(lam[a])]
        notes.append(
            f"note: var({' '.join(zero)}) estimated at zero (on the boundary of the parameter "
            "space)"
        )
    full_flags = np.zeros(x.shape[0], dtype=bool)
    full_flags[p : p + n_theta] = boundary
    cov_all, hess_ok = covariance_from_hessian(ev.hessian, full_flags)
    if not hess_ok:
        notes.append("note: Hessian is not negative definite; standard errors may be unreliable")
    if not opt.converged:
        warnings.warn(
            ConvergenceWarning(
                f"convergence not achieved after {opt.iterations} iterations "
                f"(max |gradient| = {opt.max_abs_gradient:.3g}, {opt.message})"
            ),
            stacklevel=4,
        )
    q = structure.q
    return DaskGLMMResults(
        design=design,
        family=family,
        structure=structure,
        method=rule.method,
        nagq=rule.nagq,
        params_all=x,
        cov_all=cov_all,
        loglik=float(ev.loglik),
        loglik_pooled=float(ev_pooled.loglik),
        opt=opt,
        time_s=time.perf_counter() - t0,
        notes=tuple(notes),
        posterior_mean=np.zeros((0, q)),
        posterior_cov=np.zeros((0, q, q)),
        hessian_ok=hess_ok,
        boundary=boundary,
        curvature=rule.curvature,
        level=level,
        lazy=data.lazy,
        spec=data.spec,
        rule=rule,
        n_partitions=data.n_partitions,
        n_workers=data.n_workers,
        timings=data.timings,
    )


def fit_on_dask(
    parsed: ParsedFormula,
    data: object,
    family: Family,
    *,
    nagq: int,
    method: str,
    curvature: str,
    cov: str | None,
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
) -> DaskGLMMResults:
    """``glmm()`` with ``engine="dask"`` (or Dask data): read, distribute, fit, release."""
    log = print if not nolog and not quiet else None
    with dask_client(scheduler, workers) as client:
        ddf = as_dask_frame(data)
        dist = distribute(
            client,
            ddf,
            parsed,
            family,
            offset=offset,
            exposure=exposure,
            trials=trials,
            subset=subset,
            show_progress=log is not None,
        )
        try:
            fam = family.with_categories(dist.design.categories) if family.is_ordinal else family
            structure = choose_structure(parsed, dist.design, cov)
            if not quiet:
                for note in dist.design.notes:
                    print(note)
            res = fit_distributed(
                dist,
                fam,
                structure,
                _rule(nagq, method, curvature),
                maxiter=maxiter,
                level=level,
                log=log,
            )
        finally:
            dist.release()
    if log:
        log("")
    return res
