"""Models with several grouping factors: parse -> multilevel design -> engine -> Newton ->
covariance -> :class:`~mixedglm.results.multilevel.MultilevelResults`.

Nested factors are integrated by adaptive quadrature level by level
(:mod:`mixedglm.engines.nested_aghq`, Stata's ``melogit y x || comm: || mom:``): the default
without ``method`` is Stata's, ``mvaghermite`` with 7 points per random effect at every
level (``nagq={factor: points}`` gives each level its own count; ``method="mcaghermite"``
places the grids at the modes and curvatures); the fit starts from the joint Laplace
estimates (with many top-level clusters moved by a Newton step of the quadrature estimated
on a sample of them). ``method="laplace"`` (or
``nagq=1``) uses the joint Laplace approximation (:mod:`mixedglm.engines.laplace_joint`),
lme4's ``glmer`` with ``nAGQ = 1``; crossed factors always use it (as Stata does), and
quadrature asked for with crossed factors is an error that says so.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mixedglm.design.checks import fitted_separation_notes, outcome_notes
from mixedglm.design.multilevel import MultilevelDesign, build_multilevel_design
from mixedglm.engines.glm import GLMObjective
from mixedglm.engines.laplace_hessian import ProfiledNewtonSteps
from mixedglm.engines.laplace_joint import JointLaplaceEngine
from mixedglm.engines.nested_aghq import NestedAGHQEngine
from mixedglm.engines.rules import IntegrationRule, make_rule
from mixedglm.errors import ConvergenceWarning, MixedGLMError
from mixedglm.families import Family
from mixedglm.formula import ParsedFormula
from mixedglm.inference import covariance_with_boundary
from mixedglm.inference.robust import parse_vce
from mixedglm.models.factor_params import boundary_flags, factor_scales, theta_slices
from mixedglm.models.lmm_multilevel import fit_profiled, profiled_applies
from mixedglm.models.multilevel_start import start_values
from mixedglm.models.vce import robust_cov
from mixedglm.optim import Evaluation, OptSummary, newton_maximize
from mixedglm.optim.held import HOLD_BELOW, HeldHessianSteps, scaled_gradient
from mixedglm.optim.outer import OuterProductSteps, enough_clusters
from mixedglm.results.multilevel import MultilevelResults

MC_TRUST = 1e-2  # scaled gradient below which Newton takes full steps (mcaghermite)
RECHECK = 10.0  # the exact Hessian's scaled gradient above RECHECK * gtol: more Newton steps
# the quadrature's first step from the Laplace estimates on a sample of the top-level
# clusters (a tenth, at least SAMPLE_MIN), with at least four times as many clusters in all
SAMPLE_SHARE, SAMPLE_MIN = 0.1, 100
# crossed factors: Newton's Hessian (profiled, with the log determinant's curvature) held,
# BFGS-updated, from a scaled gradient of 0.01 (the crossed benchmark: 4 steps, from 10
# and 1: 5; 14 simulated crossed fits of 2 SDs from 0 to 3, 2 families: 88 steps, from 10:
# 112, never held: 92); without that curvature 10 was best (6 steps, 0.1 and 1: 7)
HOLD_CROSSED = 0.01


def needs_multilevel(formula: ParsedFormula) -> bool:
    """Whether the formula has several grouping factors or an interaction ``a:b``."""
    return len(formula.groups) > 1 or any(t.is_compound for t in formula.random)


def check_rule(design: MultilevelDesign, rule: IntegrationRule) -> None:
    """Nested factors: Laplace or quadrature (mean-variance or mode-curvature grids);
    crossed factors: Laplace only. Say what to use instead of a rule that does not apply."""
    if rule.is_laplace or design.nested:
        return
    raise MixedGLMError(
        f"the grouping factors {', '.join(f.name for f in design.factors)} are crossed: "
        "adaptive quadrature does not apply to crossed random effects (Stata also uses "
        "the Laplace approximation there): use method='laplace' (or --laplace / nagq=1)"
    )


def resolve_levels(design: MultilevelDesign, rule: IntegrationRule) -> IntegrationRule:
    """The rule with its per-level counts keyed by the factors' names (``comm:mom``; given
    as in the formula or as Stata prints them, ``comm>mom``), one for every factor; unknown,
    repeated or missing factors are errors that name them."""
    if not rule.levels:
        return rule
    names = [f.name for f in design.factors]
    known = {**{f: f for f in names}, **dict(zip(design.display, names, strict=True))}
    unknown = [given for given, _ in rule.levels if given not in known]
    if unknown:
        raise MixedGLMError(
            f"nagq per level: no grouping factor {', '.join(repr(u) for u in unknown)}; the "
            f"model's levels are {', '.join(repr(n) for n in names)}"
        )
    counts: dict[str, int] = {}
    for given, n in rule.levels:
        if known[given] in counts:
            raise MixedGLMError(f"nagq per level: '{known[given]}' is given twice")
        counts[known[given]] = n
    missing = [n for n in names if n not in counts]
    if missing:
        raise MixedGLMError(
            f"nagq per level: no count for {', '.join(repr(m) for m in missing)} (give one "
            "for every level, or one number for all)"
        )
    ordered = tuple((names[k], counts[names[k]]) for k in design.order)
    return replace(rule, levels=ordered)


def level_points(design: MultilevelDesign, rule: IntegrationRule) -> list[int]:
    """Points per random effect at each level, from the top (the design's ``order``)."""
    return [rule.points(design.factors[k].name) for k in design.order]


class Engines(Protocol):
    """What :func:`fit_multilevel` needs of the data: its engines and the factors' scales."""

    @property
    def scales(self) -> list[np.ndarray]: ...

    def pooled(self) -> Any: ...
    def laplace(self) -> Any: ...
    def nested(self, rule: IntegrationRule) -> Any: ...
    def unconverged(self, engine: Any) -> int: ...


class MemoryEngines:
    """The engines of a fit on a design in memory; :func:`fit_multilevel` takes another
    provider with the same methods (the Dask one,
    :class:`~mixedglm.engines.dask_nested.DaskNestedEngines`, sums partitions' engines).

    ``scales``: each factor's root mean squares of its random-effect columns."""

    def __init__(self, design: MultilevelDesign, family: Family) -> None:
        self.design, self.family = design, family

    @cached_property
    def scales(self) -> list[np.ndarray]:
        return factor_scales(self.design)

    def pooled(self) -> GLMObjective:
        """The pooled GLM (no random effects), its ``start()`` the start values."""
        base = self.design.base
        return GLMObjective(base.X, base.y, base.trials, base.offset, self.family)

    def laplace(self) -> JointLaplaceEngine:
        return JointLaplaceEngine(self.design, self.family)

    def nested(self, rule: IntegrationRule) -> NestedAGHQEngine:
        engine = NestedAGHQEngine(self.design, self.family, rule)
        engine.keep_posterior = True  # the fit's last evaluation serves the posterior means
        return engine

    def unconverged(self, engine: NestedAGHQEngine) -> int:
        """Top-level clusters whose mean-variance grid fell back in the last evaluation."""
        return int(np.count_nonzero(engine.last_status))


def _sampled_step(engine: Any, laplace: Any, n_top: int, x: np.ndarray) -> np.ndarray:
    """The Laplace estimates ``x`` moved by the quadrature's Newton step, its score and
    Hessian estimated on an evenly spread sample of the top-level clusters: the score as the
    Laplace score of all clusters plus the sample's differences between the two scores (the
    Laplace scores as control variates: the differences vary far less from cluster to
    cluster than the scores), scaled to all clusters. From the Laplace optimum, as far as a
    full Newton step of the quadrature (scaled gradient about 35 on a million rows), this
    lands as close to its optimum (about 0.01) as that full step, for a tenth of its cost: a
    Newton iteration on all clusters fewer. ``x`` unchanged without enough clusters, for an
    engine without ``sample_terms`` (Dask) or where the estimates are not usable."""
    m = max(SAMPLE_MIN, round(SAMPLE_SHARE * n_top))
    sample = getattr(engine, "sample_terms", None)
    if sample is None or 4 * m > n_top:
        return x
    units = ((np.arange(m) + 0.5) * (n_top / m)).astype(np.int64)
    codes, score, hess = sample(x, units)
    lap = np.asarray(laplace.contributions(x).score, dtype=float)
    grad = lap.sum(axis=0) + (n_top / m) * (score - lap[codes]).sum(axis=0)
    neg_h = -(n_top / m) * 0.5 * (hess + hess.T)
    if not (np.all(np.isfinite(grad)) and np.all(np.isfinite(neg_h))):
        return x
    try:
        chol = np.linalg.cholesky(neg_h)
    except np.linalg.LinAlgError:
        return x
    return x + np.linalg.solve(chol.T, np.linalg.solve(chol, grad))


def _recheck(
    engine: Any,
    x: np.ndarray,
    ev: Evaluation,
    opt: OptSummary,
    gtol: float,
    log: Callable | None,
    maxiter: int,
) -> tuple[np.ndarray, Evaluation, OptSummary]:
    """The convergence checked on the exact Hessian (Newton's steps may have held an older
    one, :mod:`mixedglm.optim.held`): when its scaled gradient is well above ``gtol``, more
    Newton steps on exact Hessians."""
    assert ev.gradient is not None and ev.hessian is not None
    if not opt.converged or scaled_gradient(ev.gradient, ev.hessian) <= RECHECK * gtol:
        return x, ev, opt
    if getattr(engine, "forward_covariance", False):
        # refuted on forward differences: central ones decide and serve further steps (on
        # forward ones a fit drifting with a separating covariate took 100 more steps)
        engine.forward_covariance = False
        ev = engine(x, 2)
        assert ev.gradient is not None and ev.hessian is not None
        if scaled_gradient(ev.gradient, ev.hessian) <= RECHECK * gtol:
            return x, ev, opt
    x, ev, more = newton_maximize(engine, x, log=log, maxiter=maxiter, gtol=gtol)
    summary = replace(
        more,
        iterations=opt.iterations + more.iterations,
        evaluations=opt.evaluations + more.evaluations,
        # the further steps' iteration 0 is the point where the first ones stopped
        history=opt.history
        + tuple(replace(r, iteration=opt.iterations + r.iteration) for r in more.history[1:]),
    )
    return x, ev, summary


def fit_multilevel(
    design: MultilevelDesign,
    family: Family,
    rule: IntegrationRule,
    *,
    maxiter: int = 100,
    level: float = 95.0,
    log: Callable[[str], None] | None = None,
    engines: Engines | None = None,
) -> MultilevelResults:
    """Estimate a model with several grouping factors on a ready design; ``engines``
    provides the engines (by default :class:`MemoryEngines` on ``design``)."""
    check_rule(design, rule)
    if engines is None and profiled_applies(design, family):  # exact, far faster: lmer's
        return fit_profiled(design, family, rule, reml=False, maxiter=maxiter, level=level, log=log)
    t0 = time.perf_counter()
    base = design.base
    provider: Engines = engines or MemoryEngines(design, family)
    pooled = provider.pooled()
    if log:
        log("Fitting fixed-effects model:")
        log("")
    x_pooled, ev_pooled, _ = newton_maximize(pooled, pooled.start(), log=log, maxiter=maxiter)
    p = base.X.shape[1]
    laplace = provider.laplace()
    x0 = start_values(laplace, design, provider.scales, x_pooled[:p], x_pooled[p:], log)
    if log:
        log("")
        log("Fitting full model:" if rule.is_laplace else "Fitting Laplace model:")
        log("")
    laplace.exact = False  # Newton steps: the cheaper Hessian; the covariance: the exact one
    # as start values for quadrature the Laplace estimates need not be tight
    gtol = 1e-9 if rule.is_laplace else 1e-2
    # near the optimum the last differenced Hessian is held (one gradient per step); the
    # Hessian only at accepted points (a rejected step's would cost a gradient per parameter)
    # crossed factors: Newton's Hessian the profiled one (laplace_hessian), held sooner
    crossed = isinstance(laplace, JointLaplaceEngine) and not design.nested
    objective = ProfiledNewtonSteps(laplace) if crossed else laplace
    steps: Any = HeldHessianSteps(objective, below=HOLD_CROSSED if crossed else HOLD_BELOW)
    if not rule.is_laplace and enough_clusters(design.n_top, x0.size):
        steps = OuterProductSteps(laplace)  # a start: one gradient per step suffices
    x, ev, opt = newton_maximize(steps, x0, log=log, maxiter=maxiter, gtol=gtol, trial_order=0)
    laplace.exact = True
    engine = laplace
    if not rule.is_laplace:
        engine = provider.nested(rule)
        if log:
            log("")
            log(f"Fitting full model ({_points_words(design, rule)}):")
            log("")
        # mode-curvature grids: the fixed-grid score's zero (as Stata's grids held fixed
        # within a Newton iteration), full steps once the scaled gradient is below 1e-2
        # mean-variance grids: the evaluation that would only confirm convergence is one
        # of the log-likelihood (the Hessian for the covariance is the previous iterate's)
        trust = 0.0 if rule.is_meanvar else MC_TRUST
        x = _sampled_step(engine, laplace, design.n_top, x)
        x, ev, opt = newton_maximize(
            engine, x, log=log, maxiter=maxiter, trust=trust, last_step=rule.is_meanvar
        )
    notes = list(base.notes)
    slices = theta_slices(design)
    n_theta = slices[-1].stop
    hess = None if ev.hessian is None else ev.hessian[p : p + n_theta, p : p + n_theta]
    boundary = boundary_flags(design, provider.scales, x[p : p + n_theta], hess)
    if boundary.any():
        x = x.copy()
        x[p : p + n_theta][boundary] = 0.0
        notes.append(
            "note: a variance component is estimated at zero (on the boundary of the "
            "parameter space)"
        )
    if boundary.any() or rule.is_laplace or ev.hessian is None:
        ev = engine(x, 2)  # Laplace: the exact Hessian (Newton used a cheaper one)
        if rule.is_laplace and not boundary.any():
            x, ev, opt = _recheck(engine, x, ev, opt, gtol, log, maxiter)
    assert ev.hessian is not None
    cov_all, hess_ok = covariance_with_boundary(ev.hessian, p, boundary, notes)
    n_bad = 0 if rule.is_laplace else provider.unconverged(engine)
    if n_bad:
        notes.append(
            f"note: in {n_bad} top-level cluster{'s' if n_bad != 1 else ''} a unit's "
            "mean-variance grid did not converge; its mode-curvature grid was used"
        )
    if not rule.is_laplace:
        try:
            posterior = engine.posterior(x)
        except MixedGLMError:  # too many quadrature paths to store: the Laplace modes
            posterior = engine.posterior(x, "modes")
            notes.append("note: random effects are the joint Laplace modes (too many paths)")
    else:
        posterior = engine.posterior(x)
    if not opt.converged:
        warnings.warn(
            ConvergenceWarning(
                f"convergence not achieved after {opt.iterations} iterations "
                f"(max |gradient| = {opt.max_abs_gradient:.3g}, {opt.message})"
            ),
            stacklevel=3,
        )
    return MultilevelResults(
        design=design,
        family=family,
        rule=rule,
        params_all=x,
        cov_all=cov_all,
        loglik=float(ev.loglik),
        loglik_pooled=float(ev_pooled.loglik),
        opt=opt,
        time_s=time.perf_counter() - t0,
        notes=tuple(notes),
        posterior=posterior,
        theta_slices=tuple(slices),
        hessian_ok=hess_ok,
        boundary=boundary,
        level=level,
    )


def _points_words(design: MultilevelDesign, rule: IntegrationRule) -> str:
    """``mvaghermite, 7 points per level`` or the count of each level."""
    if not rule.levels:
        return f"{rule.method}, {rule.nagq} points per level"
    each = [f"{design.display[k]} {rule.points(design.factors[k].name)}" for k in design.order]
    return f"{rule.method}, points per level: {', '.join(each)}"


def multilevel_rule(
    design: MultilevelDesign, method: str | None, nagq: object, curvature: str | None
) -> IntegrationRule:
    """The rule for several factors: nested ones by default ``mvaghermite`` with 7 points
    (Stata's default), crossed ones Laplace (asked for, or by default, as Stata); quadrature
    that does not apply is refused with a message."""
    default_points = nagq is None  # an explicit nagq with crossed factors is refused
    if (method is None and default_points and not design.nested) or (
        isinstance(method, str) and method.strip().lower() == "laplace" and default_points
    ):
        return make_rule("laplace", None, curvature)
    rule = make_rule(method, nagq, curvature)
    check_rule(design, rule)
    return resolve_levels(design, rule)


def multilevel_glmm(
    parsed: ParsedFormula,
    frame: pd.DataFrame,
    family: Family,
    *,
    method: str | None = None,
    nagq: object = None,
    curvature: str | None = None,
    cov: object = None,
    offset: str | None = None,
    exposure: str | None = None,
    trials: str | None = None,
    maxiter: int = 100,
    level: float = 95.0,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
    vce: str | None = None,
) -> MultilevelResults:
    """Design and fit of a several-factor model (what :func:`mixedglm.glmm` calls);
    ``vce``: robust or cluster-robust standard errors (nested factors)."""
    design = build_multilevel_design(
        parsed, frame, family, cov=cov, offset=offset, exposure=exposure, trials=trials
    )
    base = design.base
    n_trials = base.trials if base.binomial_trials else None
    data = (base.y, base.X, base.x_names, family.name)
    checks = outcome_notes(*data, base.response, n_trials)
    res = fit_design(
        design, family, method=method, nagq=nagq, curvature=curvature, maxiter=maxiter,
        level=level, quiet=quiet, log=log, checks=checks,
    )  # fmt: skip
    found = fitted_separation_notes(
        checks, *data, (res.params.to_numpy(), res.bse.to_numpy()), n_trials
    )
    new = [note for note in found if note not in res.notes]
    rows = frame.iloc[base.source_positions] if base.source_positions is not None else None
    res = replace(res, notes=(*res.notes, *new), data=rows)
    return multilevel_robust(res, vce, frame)


def multilevel_robust(
    res: MultilevelResults, vce: str | None, frame: pd.DataFrame
) -> MultilevelResults:
    """``res`` with the sandwich covariance of ``vce`` (Stata's ``melogit ..., vce(robust)``:
    clusters are the top level's units, or groups of them): the engine's scores per
    top-level cluster at the estimates. Crossed factors have no independent clusters."""
    if parse_vce(vce) is None:
        return res
    design = res.design
    if not design.nested:
        raise MixedGLMError(
            f"vce='{vce}' needs independent clusters; the crossed factors "
            f"{', '.join(f.name for f in design.factors)} do not split the data into any"
        )
    provider = MemoryEngines(design, res.family)
    engine = provider.laplace() if res.rule.is_laplace else provider.nested(res.rule)
    scores = engine.contributions(res.params_all).score
    top = design.factors[design.order[0]].name
    positions = design.base.source_positions
    out = robust_cov(res.cov_all, scores, design.top_codes, top, vce, frame, positions)
    assert out is not None
    cov, info = out
    return replace(res, cov_all=cov, vce=info)


def fit_design(
    design: MultilevelDesign,
    family: Family,
    *,
    method: str | None,
    nagq: object,
    curvature: str | None,
    maxiter: int,
    level: float,
    quiet: bool,
    log: Callable[[str], None] | None,
    engines: Engines | None = None,
    checks: Sequence[str] = (),
) -> MultilevelResults:
    """The rule, the design's notes and the fit of a several-factor design (in memory, or
    on the ``engines`` of a Dask fit); ``checks``: notes on the data to show with the
    design's and keep with the results."""
    if family.is_ordinal:
        family = family.with_categories(design.base.categories)
    rule = multilevel_rule(design, method, nagq, curvature)
    if rule.curvature == "fisher":
        raise MixedGLMError(
            "curvature='fisher' is not available with several grouping factors: the joint "
            "Laplace engine uses the observed curvature"
        )
    if not quiet:
        for note in (*design.base.notes, *checks):
            print(note)
    res = fit_multilevel(
        design, family, rule, maxiter=maxiter, level=level, log=log, engines=engines
    )
    return replace(res, notes=(*res.notes, *checks)) if checks else res
