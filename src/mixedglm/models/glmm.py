"""The user-facing entry points: they chain the stages and do no mathematics themselves.

``glmm()`` = data -> formula -> design -> family -> AGHQ objective -> Newton -> covariance ->
results.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from mixedglm.data import DataSource, apply_subset, check_engine, load_data
from mixedglm.design.build import ModelDesign, build_design
from mixedglm.design.checks import fitted_separation_notes, outcome_notes
from mixedglm.design.weights import (
    WeightInfo,
    check_weights,
    group_weight_vector,
    observation_weights,
)
from mixedglm.engines.aghq import AGHQEngine
from mixedglm.engines.base import Engine, EngineFactory
from mixedglm.engines.covariance import STRUCTURES, CovarianceStructure
from mixedglm.engines.glm import GLMObjective
from mixedglm.engines.rules import LARGE_GRID, IntegrationRule
from mixedglm.errors import FormulaError, MixedGLMError, QuadratureWarning
from mixedglm.families import Family, get_family
from mixedglm.formula import ParsedFormula, parse_formula
from mixedglm.formula.idioms import apply_idioms
from mixedglm.inference import covariance_with_boundary
from mixedglm.inference.robust import parse_vce
from mixedglm.inference.singular import singular_notes, with_notes
from mixedglm.models.factor_params import negligible_effects
from mixedglm.models.lmm_multilevel import reml_multilevel_glmm
from mixedglm.models.multilevel import multilevel_glmm, needs_multilevel
from mixedglm.models.reml import fit_reml
from mixedglm.models.vce import glmm_robust
from mixedglm.models.weights import row_weights, weighted_engines
from mixedglm.optim import newton_maximize
from mixedglm.optim.newton import Objective
from mixedglm.options import FitOptions, check_level, check_maxiter, integration_rule
from mixedglm.results.glmm import GLMMResults
from mixedglm.results.multilevel import MultilevelResults


def _printer(enabled: bool) -> Callable[[str], None] | None:
    return print if enabled else None


def choose_structure(
    formula: ParsedFormula, design: ModelDesign, cov: str | None
) -> CovarianceStructure:
    """The covariance structure of the grouping factor's random effects.

    ``(1 + x | g)``: unstructured (lme4); ``(1 + x || g)`` and several single-column terms
    such as ``(1 | g) + (0 + x | g)``: independent (Stata's default); ``cov=`` overrides.
    """
    terms = formula.random
    names = tuple(design.z_names)
    if cov is not None:
        kind = cov.lower()
        if kind not in STRUCTURES:
            raise MixedGLMError(
                f"unknown covariance structure '{cov}': use one of {', '.join(STRUCTURES)}"
            )
        if kind == "exchangeable" and len(names) < 2:
            raise MixedGLMError("cov='exchangeable' needs at least two random-effect columns")
        return CovarianceStructure(kind, names)
    if len(terms) == 1:
        return CovarianceStructure("unstructured" if terms[0].correlated else "independent", names)
    widths = [len(spec.column_names) for spec in design.random_specs]
    if all(w == 1 for w in widths) or all(not t.correlated for t in terms):
        return CovarianceStructure("independent", names)
    raise FormulaError(
        "several random-effect terms with more than one column for the same group are not "
        "supported: write one term, e.g. (1 + x | g), and choose cov="
    )


def _refuse_with_several_factors(where: str = "", **given: object) -> None:
    """Options not available yet with several grouping factors (``where``: " on Dask" when
    only the Dask fit lacks them): an error naming them, never silently ignored."""
    asked = [name for name, value in given.items() if value]
    if asked:
        instead = "fit in memory" if where else "fit without it (or with one grouping factor)"
        raise MixedGLMError(
            f"{', '.join(asked)} with several grouping factors is not available yet{where}: "
            f"{instead}"
        )


def _one_factor_cov(cov: str | dict | None) -> str | None:
    """``cov`` for a model with one grouping factor: a structure's name or None (a dict by
    factor is for several grouping factors, :mod:`mixedglm.models.multilevel`)."""
    if isinstance(cov, dict):
        raise MixedGLMError(
            "cov= as a dict by grouping factor is for in-memory models with several grouping "
            "factors: with one, give the structure's name, e.g. cov='unstructured'"
        )
    return cov


def _log_lines(log: Callable[[str], None] | None, *lines: str) -> None:
    if log:
        for line in lines:
            log(line)


def _start_values(
    engine: Engine, beta0: np.ndarray, scales: np.ndarray, structure: CovarianceStructure,
    aux0: np.ndarray, log: Callable[[str], None] | None, theta_scale: float = 1.0,
) -> np.ndarray:  # fmt: skip
    """Pooled-GLM coefficients, then the best of a few scalings of the variance start.

    The scalings are compared by the Laplace approximation (``engine``: one point per
    cluster, a tenth of the cost of the quadrature, and it orders them the same way).
    """
    theta0 = structure.start(scales) * theta_scale  # gaussian: on the outcome's scale
    best, best_ll = None, -np.inf
    _log_lines(log, "", "Refining starting values (Laplace):", "")
    for node, factor in enumerate((1.0, 0.5, 2.0, 0.25)):
        x = np.concatenate([beta0, theta0 * factor, aux0])
        ll = engine.evaluate(x, 0).loglik
        _log_lines(log, f"{f'Grid node {node}:':<14} log likelihood = {ll:.8g}")
        if np.isfinite(ll) and ll > best_ll:
            best, best_ll = x, ll
    if best is None:
        raise MixedGLMError("the log likelihood is not finite at any starting value")
    return best


COARSE_POINTS = 3
# the coarse stage only gives start values: its mean-variance grids need not sit at their
# fixed points as closely as the full rule's (each digit costs a pass over the data)
COARSE_TOLERANCE = 1e-3


def _coarse_fit(
    make_engine: EngineFactory, rule: IntegrationRule, x0: np.ndarray, maxiter: int,
    log: Callable[[str], None] | None,
) -> tuple[np.ndarray, Engine | None]:  # fmt: skip
    """Approach the optimum with a 3-point rule of the same kind before the full rule.

    Far from the optimum the adaptive grid moves at every step and each evaluation costs
    several passes over the data; with 3 points instead of, say, 12 those passes cost a
    quarter. The 3-point optimum is close to the full one, which then needs one or two
    Newton steps. (A start value only: the full rule's own convergence criterion decides.)
    """
    if rule.is_laplace or rule.nagq <= COARSE_POINTS + 1:
        return x0, None
    coarse = make_engine(rule.with_points(COARSE_POINTS, COARSE_TOLERANCE))
    _log_lines(log, "", f"Fitting full model with {COARSE_POINTS} quadrature points:", "")
    try:
        x, _, _ = newton_maximize(coarse, x0, log=log, maxiter=maxiter, gtol=1e-3)
    except FloatingPointError:
        return x0, None
    if not np.all(np.isfinite(x)):
        return x0, None
    return x, coarse


def _warn_large_grid(rule: IntegrationRule, q: int) -> None:
    n_points = rule.n_points(q)
    if n_points > LARGE_GRID:
        warnings.warn(
            QuadratureWarning(
                f"{rule.nagq} points in each of {q} dimensions is {n_points:,} quadrature "
                "points per cluster: the fit will be slow (fewer points, or method='laplace', "
                "is much faster)"
            ),
            stacklevel=4,
        )


def in_memory_engines(
    design: ModelDesign, family: Family, structure: CovarianceStructure
) -> tuple[EngineFactory, GLMObjective]:
    """The engine factory and the pooled GLM of a design held in memory."""
    arrays = design.cluster_arrays()
    factor = design.group.name if design.group is not None else "group"

    def make(rule: IntegrationRule) -> Engine:
        return AGHQEngine(arrays, family, structure, rule, factor=factor)

    pooled = GLMObjective(arrays.X, arrays.y, arrays.trials, arrays.offset, family, arrays.weights)
    return make, pooled


def fit_glmm(
    design: ModelDesign,
    family: Family,
    structure: CovarianceStructure,
    rule: IntegrationRule | None = None,
    *,
    maxiter: int = 100,
    level: float = 95.0,
    log: Callable[[str], None] | None = None,
    engines: tuple[EngineFactory, Objective] | None = None,
) -> GLMMResults:
    """Estimate a GLMM on a ready :class:`ModelDesign` (no data handling here).

    The stages talk to engines only through :mod:`mixedglm.engines.base`: ``engines`` is a
    factory of the model's engine for a rule and the pooled GLM's objective (default: in
    memory, :func:`in_memory_engines`; the Dask scale-out passes its own).
    """
    rule = rule or IntegrationRule()
    _warn_large_grid(rule, structure.q)
    t0 = time.perf_counter()
    make_engine, pooled = engines or in_memory_engines(design, family, structure)
    _log_lines(log, "Fitting fixed-effects model:", "")
    start0 = pooled.start()  # type: ignore[attr-defined]
    x_pooled, ev_pooled, _ = newton_maximize(pooled, start0, log=log, maxiter=maxiter)
    p = len(design.x_names)
    scales = np.sqrt(np.mean(design.Z**2, axis=0))
    laplace = make_engine(rule.laplace())
    aux0 = x_pooled[p:]
    outcome_scale = float(np.exp(aux0[0])) if family.name == "gaussian" and aux0.size else 1.0
    start = _start_values(laplace, x_pooled[:p], scales, structure, aux0, log, outcome_scale)
    x0, coarse = _coarse_fit(make_engine, rule, start, maxiter, log)
    engine = laplace if rule.is_laplace else make_engine(rule)
    warm_start = getattr(engine, "warm_start", None)
    if warm_start is not None:
        warm_start(coarse or laplace)
    _log_lines(log, "", "Fitting full model:", "")
    try:
        x, ev, opt = newton_maximize(engine, x0, log=log, maxiter=maxiter)
    except FloatingPointError:  # the coarse fit led somewhere the full rule cannot start
        x, ev, opt = newton_maximize(engine, start, log=log, maxiter=maxiter)
    notes: list[str] = list(design.notes)
    n_theta = structure.n_theta
    hess = None if ev.hessian is None else ev.hessian[p : p + n_theta, p : p + n_theta]
    boundary = negligible_effects(structure, scales, x[p : p + n_theta], hess)
    if boundary.any():
        x = x.copy()
        x[p : p + n_theta][boundary] = 0.0
        ev = engine.evaluate(x, 2)
        lam = structure.lam(x[p : p + n_theta])
        zero = [structure.columns[a] for a in range(structure.q) if not np.any(lam[a])]
        notes.append(
            f"note: var({' '.join(zero)}) estimated at zero (on the boundary of the parameter "
            "space)"
        )
    assert ev.hessian is not None
    cov_all, hess_ok = covariance_with_boundary(ev.hessian, p, boundary, notes)
    (posterior,) = engine.posterior(x, "means").values()
    elapsed = time.perf_counter() - t0
    opt.warn_if_not_converged(stacklevel=3)
    return GLMMResults(
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
        time_s=elapsed,
        notes=tuple(notes),
        posterior_mean=posterior.mean,
        posterior_cov=posterior.cov,
        hessian_ok=hess_ok,
        boundary=boundary,
        curvature=rule.curvature,
        level=level,
        engine=engine,
    )


def glmm(
    formula: str,
    data: DataSource,
    family: str | Family = "binomial",
    link: str | None = None,
    *,
    nagq: int | dict[str, int] | None = None,
    method: str | None = None,
    cov: str | dict | None = None,
    subset: str | None = None,
    offset: str | None = None,
    exposure: str | None = None,
    trials: str | None = None,
    dispersion: str | None = None,
    curvature: str | None = None,
    level: float = 95.0,
    maxiter: int = 100,
    nolog: bool = False,
    quiet: bool = False,
    vce: str | None = None,
    reml: bool = False,
    fweight: str | None = None,
    pweight: str | None = None,
    group_weights: dict[str, str] | None = None,
    engine: str = "memory",
    scheduler: str | None = None,
    workers: int | None = None,
) -> GLMMResults | MultilevelResults:
    """Fit a generalized linear mixed model by maximum likelihood.

    Parameters
    ----------
    formula
        lme4 syntax: ``"y ~ x1 + C(region) + (1 | school)"``; ``(1 + x || g)`` for
        independent random slopes, ``(1 + x | g)`` for correlated ones; several grouping
        factors (``(1 | a/b)``, ``(1 | a) + (1 | a:b)``, crossed ``(1 | s) + (1 | i)``)
        are fitted by :mod:`mixedglm.models.multilevel`.
    data
        A DataFrame, a path to a CSV/Parquet/Stata file, or a bundled dataset name.
    family, link
        ``binomial``/``bernoulli`` (logit, probit, cloglog), ``poisson`` (log),
        ``gaussian`` (identity), ``nbinomial`` (log; ``"nbinomial constant"`` for constant
        dispersion), ``gamma`` (log), ``ordinal`` (logit, probit, cloglog; ``ologit`` and
        ``oprobit`` are synonyms).
    nagq
        Quadrature points per random effect (default 7, as meglm; at most
        :data:`~mixedglm.engines.rules.MAX_NAGQ`); 1 is the Laplace approximation. Nested
        factors: also ``{factor: points}``, each level's own count (``{"comm": 12,
        "comm:mom": 7}``; ``comm>mom`` as Stata prints it is accepted).
    method
        ``mvaghermite`` (default: grid at each cluster's posterior mean and variance, as
        Stata), ``mcaghermite`` (at the mode and curvature, as lme4) or ``laplace``.
    cov
        Covariance structure of random slopes: ``independent``, ``exchangeable``,
        ``identity`` or ``unstructured``; with several factors also a dict by factor.
    subset
        A condition selecting the estimation sample, as Stata's ``if`` (``"sample10 == 1"``).
    offset, exposure, trials
        Columns: an offset; an exposure whose log is the offset; binomial trials.
    dispersion
        Negative binomial only: ``mean`` (NB2, Var = mu (1 + alpha mu), the default, as
        ``menbreg``) or ``constant`` (NB1, Var = mu (1 + delta)).
    curvature
        ``observed`` (true Laplace) or ``fisher`` (expected information, as lme4's PIRLS
        for non-canonical links); only for the mode-curvature grid.
    nolog, quiet
        Suppress the iteration log; also suppress notes.
    vce
        ``"oim"`` (default: observed information), ``"robust"`` (sandwich clustered at the
        grouping factor, as Stata's ``vce(robust)``) or ``"cluster VAR"`` (VAR's clusters
        must contain the groups); see :mod:`mixedglm.inference.robust`.
    reml
        Gaussian models only: restricted maximum likelihood (lmer's default, Stata's
        ``mixed, reml``) instead of ML; see :mod:`mixedglm.models.reml`.
    fweight, pweight, group_weights
        Level-1 frequency weights (a row of weight ``k`` counts as ``k`` rows), level-1
        sampling weights (not available yet), and cluster frequency weights
        ``{"group": "variable"}`` (constant within clusters); see
        :mod:`mixedglm.models.weights`.
    engine, scheduler, workers
        ``"dask"`` fits on a Dask cluster (implied by a Dask DataFrame; ``data`` may then be
        a directory or glob of Parquet files): the client in use, the ``scheduler`` at an
        address, or a LocalCluster of ``workers`` processes (see ``docs/scale.md``).
    """
    parse_vce(vce)  # a bad vce fails before any work
    fam = get_family(family, link, dispersion)
    if reml and (fam.name != "gaussian" or fam.link != "identity"):
        raise MixedGLMError(
            f"reml=True is for linear (gaussian) models, not the {fam.name} family: REML "
            "has no GLMM counterpart in Stata or lme4"
        )
    rule = integration_rule(method, nagq, curvature, supports_fisher=fam.supports_fisher)
    level, maxiter = check_level(level), check_maxiter(maxiter)
    parsed = parse_formula(formula)
    if rule.levels and not needs_multilevel(parsed):
        raise MixedGLMError(
            "nagq per level ({factor: points}) is for several nested grouping factors; this "
            "model has one: give one number"
        )
    if check_engine(engine, data):
        from mixedglm.models.dask_glmm import fit_on_dask  # Dask only when asked for

        nested = needs_multilevel(parsed)  # nested factors: models/dask_multilevel.py
        if nested:
            _refuse_with_several_factors(" on Dask", vce=parse_vce(vce) is not None, reml=reml)
            _refuse_with_several_factors(
                fweight=fweight, pweight=pweight, group_weights=group_weights
            )
        if group_weights and parse_vce(vce) is not None:
            raise MixedGLMError("vce= robust or cluster is not available with group_weights=")
        if reml and parse_vce(vce) is not None:
            raise MixedGLMError("vce= robust or cluster is not available with reml=True")
        if reml and (fweight or pweight or group_weights):
            raise MixedGLMError("weights are not available with reml=True")
        opts = FitOptions(
            subset=subset, offset=offset, exposure=exposure, level=level, maxiter=maxiter,
            nolog=nolog, quiet=quiet, vce=vce, scheduler=scheduler, workers=workers,
        )  # fmt: skip
        return fit_on_dask(
            parsed, data, fam, opts, rule=rule, cov=cov if nested else _one_factor_cov(cov),
            trials=trials, asked=(method, nagq, curvature),
            weights=(fweight, pweight, group_weights), reml=reml,
        )  # fmt: skip
    frame = apply_subset(load_data(data), subset)
    idioms = apply_idioms(parsed, frame, offset=offset, trials=trials, allow_cbind=fam.is_binary)
    parsed, frame, offset, trials = idioms.formula, idioms.data, idioms.offset, idioms.trials
    if trials is None and fam.name == "binomial":
        fam = replace(fam, name="bernoulli")
    if trials is not None and not fam.is_binary:
        raise MixedGLMError("trials= is for the binomial family")
    if needs_multilevel(parsed):  # several grouping factors: models/multilevel.py
        _refuse_with_several_factors(fweight=fweight, pweight=pweight, group_weights=group_weights)
        if reml and parse_vce(vce) is not None:
            raise MixedGLMError("vce= robust or cluster is not available with reml=True")
        if reml:
            return reml_multilevel_glmm(
                parsed, frame, fam, cov=cov, offset=offset, exposure=exposure, maxiter=maxiter,
                level=level, quiet=quiet, log=_printer(not nolog and not quiet),
            )  # fmt: skip
        return multilevel_glmm(
            parsed,
            frame,
            fam,
            method=method,
            nagq=nagq,
            curvature=curvature,
            cov=cov,
            offset=offset,
            exposure=exposure,
            trials=trials,
            maxiter=maxiter,
            level=level,
            quiet=quiet,
            log=_printer(not nolog and not quiet),
            vce=vce,
        )
    gname = parsed.groups[0] if parsed.groups else None
    check_weights(frame, fweight, pweight, group_weights, gname)
    if group_weights and parse_vce(vce) is not None:
        raise MixedGLMError("vce= robust or cluster is not available with group_weights=")
    design = build_design(parsed, frame, fam, offset=offset, exposure=exposure, trials=trials)
    assert design.source_positions is not None  # build_design keeps the rows' positions
    rows = frame.iloc[design.source_positions]
    wvar = fweight or pweight
    w_obs = observation_weights(rows, wvar, "fweight" if fweight else "pweight") if wvar else None
    gw, gw_var = None, None
    if group_weights:
        gw_var = next(iter(group_weights.values()))
        gw = group_weight_vector(
            rows[gw_var], design.group_codes, design.starts, gw_var, gname or ""
        )
    if fam.is_ordinal:
        fam = fam.with_categories(design.categories)
    structure = choose_structure(parsed, design, _one_factor_cov(cov))
    trials_arr = design.trials if design.binomial_trials else None
    checks = outcome_notes(
        design.y, design.X, design.x_names, fam.name, design.response, trials_arr
    )
    if not quiet:
        for note in (*design.notes, *checks):
            print(note)
    log = _printer(not nolog and not quiet)
    if reml:
        if parse_vce(vce) is not None:
            raise MixedGLMError("vce= robust or cluster is not available with reml=True")
        if gw is not None or w_obs is not None:
            raise MixedGLMError("weights are not available with reml=True")
        res = fit_reml(design, fam, structure, maxiter=max(maxiter, 200), level=level, log=log)
        return replace(res, data=rows)
    weighted = w_obs is not None or gw is not None
    res = fit_glmm(
        design,
        fam,
        structure,
        rule,
        maxiter=maxiter,
        level=level,
        log=log,
        engines=weighted_engines(design, fam, structure, w_obs, gw) if weighted else None,
    )
    if weighted:
        total = row_weights(design, w_obs, gw)
        nobs = design.n_obs if pweight else float(total.sum())
        info = WeightInfo(fweight, pweight, gw_var, nobs, total)
        res = replace(res, weights=info)
    if log:
        log("")
    res = replace(res, data=rows)
    if pweight and parse_vce(vce) is None:
        vce = "robust"  # sampling weights imply robust standard errors, as Stata
    res = glmm_robust(res, vce, frame)
    printed = () if quiet else (*design.notes, *checks)
    checks = fitted_separation_notes(
        checks, design.y, design.X, design.x_names, fam.name,
        (res.params.to_numpy(), res.bse.to_numpy()), trials_arr,
    )  # fmt: skip
    return with_notes(res, [*checks, *singular_notes(res)], printed)
