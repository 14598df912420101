"""Models with several grouping factors: parse -> multilevel design -> engine -> Newton ->
covariance -> :class:`~mixedglm.results.multilevel.MultilevelResults`.

Nested factors are integrated by adaptive quadrature level by level
(:mod:`mixedglm.engines.nested_aghq`, Stata's ``melogit y x || comm: || mom:``): the default
without ``method`` is Stata's, ``mvaghermite`` with 7 points per random effect at every
level; the fit starts from the joint Laplace estimates. ``method="laplace"`` (or
``nagq=1``) uses the joint Laplace approximation (:mod:`mixedglm.engines.laplace_joint`),
lme4's ``glmer`` with ``nAGQ = 1``; crossed factors always use it (as Stata does), and
quadrature asked for with crossed factors is an error that says so.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from mixedglm.design.multilevel import MultilevelDesign, build_multilevel_design
from mixedglm.engines.glm import GLMObjective
from mixedglm.engines.laplace_joint import JointLaplaceEngine
from mixedglm.engines.nested_aghq import NestedAGHQEngine
from mixedglm.engines.rules import IntegrationRule, make_rule
from mixedglm.errors import ConvergenceWarning, MixedGLMError
from mixedglm.families import Family
from mixedglm.formula import ParsedFormula
from mixedglm.inference import NOT_DEFINITE_NOTE, covariance_from_hessian
from mixedglm.optim import newton_maximize
from mixedglm.results.multilevel import MultilevelResults

BOUNDARY_SD = 1e-6


def needs_multilevel(formula: ParsedFormula) -> bool:
    """Whether the formula has several grouping factors or an interaction ``a:b``."""
    return len(formula.groups) > 1 or any(t.is_compound for t in formula.random)


def check_rule(design: MultilevelDesign, rule: IntegrationRule) -> None:
    """Nested factors: Laplace or mean-variance quadrature; crossed factors: Laplace only.
    Say what to use instead of a rule that does not apply."""
    if rule.is_laplace:
        return
    if design.nested:
        if not rule.is_meanvar:
            raise MixedGLMError(
                f"method='{rule.method}' is not available with several nested levels "
                f"({', '.join(design.display)}): use method='mvaghermite' (the default, "
                "Stata's) or method='laplace'"
            )
        return
    raise MixedGLMError(
        f"the grouping factors {', '.join(f.name for f in design.factors)} are crossed: "
        "adaptive quadrature does not apply to crossed random effects (Stata also uses "
        "the Laplace approximation there): use method='laplace' (or --laplace / nagq=1)"
    )


def _start(
    engine: JointLaplaceEngine, beta0: np.ndarray, aux0: np.ndarray, log: Callable | None
) -> np.ndarray:
    """Pooled-GLM coefficients and the best of a few scalings of SD 0.5 per column."""
    thetas = []
    for f in engine.design.factors:
        scales = np.sqrt(np.mean(f.Z**2, axis=0))
        thetas.append(f.structure.start(scales))
    theta0 = np.concatenate(thetas)
    best, best_ll, best_u = None, -np.inf, engine.u
    if log:
        log("")
        log("Refining starting values (Laplace):")
        log("")
    factors = (1.0, 0.5, 2.0, 0.25)
    # evaluated from the smallest scaling up, so that each mode search starts from the modes
    # of the nearest scaling (from 2.0 after 0.5 it took several times longer); logged and
    # chosen in Stata's order; the best's modes start the Laplace fit
    lls, modes = {}, {}
    for node in sorted(range(len(factors)), key=lambda k: factors[k]):
        lls[node] = engine.loglik(np.concatenate([beta0, theta0 * factors[node], aux0]))
        modes[node] = engine.u.copy()
    for node, factor in enumerate(factors):
        ll = lls[node]
        if log:
            log(f"{f'Grid node {node}:':<14} log likelihood = {ll:.8g}")
        if np.isfinite(ll) and ll > best_ll:
            best, best_ll = np.concatenate([beta0, theta0 * factor, aux0]), ll
            best_u = modes[node]
    engine.u = best_u
    if best is None:
        raise MixedGLMError("the log likelihood is not finite at any starting value")
    return best


def _boundary(engine: JointLaplaceEngine | NestedAGHQEngine, theta: np.ndarray) -> np.ndarray:
    """``theta`` entries of random effects whose SD is negligible (below 1e-6 on the
    linear predictor's scale)."""
    flags = np.zeros(theta.shape[0], dtype=bool)
    for k, f in enumerate(engine.design.factors):
        th = engine.theta_of(theta, k)
        lam = f.structure.lam(th)
        scales = np.sqrt(np.mean(f.Z**2, axis=0))
        basis = f.structure.basis()
        local = np.zeros(th.shape[0], dtype=bool)
        for a in range(f.q):
            if np.linalg.norm(lam[a]) * scales[a] < BOUNDARY_SD:
                local |= np.any(basis[:, a, :] != 0, axis=1)
        flags[engine._theta_slices[k]] = local
    return flags


def fit_multilevel(
    design: MultilevelDesign,
    family: Family,
    rule: IntegrationRule,
    *,
    maxiter: int = 100,
    level: float = 95.0,
    log: Callable[[str], None] | None = None,
) -> MultilevelResults:
    """Estimate a model with several grouping factors on a ready design."""
    check_rule(design, rule)
    t0 = time.perf_counter()
    base = design.base
    pooled = GLMObjective(base.X, base.y, base.trials, base.offset, family)
    if log:
        log("Fitting fixed-effects model:")
        log("")
    x_pooled, ev_pooled, _ = newton_maximize(pooled, pooled.start(), log=log, maxiter=maxiter)
    p = base.X.shape[1]
    laplace = JointLaplaceEngine(design, family)
    x0 = _start(laplace, x_pooled[:p], x_pooled[p:], log)
    if log:
        log("")
        log("Fitting full model:" if rule.is_laplace else "Fitting Laplace model:")
        log("")
    laplace.exact = False  # Newton steps: the cheaper Hessian; the covariance: the exact one
    # as start values for quadrature the Laplace estimates need not be tight
    gtol = 1e-9 if rule.is_laplace else 1e-2
    x, ev, opt = newton_maximize(laplace, x0, log=log, maxiter=maxiter, gtol=gtol)
    laplace.exact = True
    engine: JointLaplaceEngine | NestedAGHQEngine = laplace
    if not rule.is_laplace:
        engine = NestedAGHQEngine(design, family, rule)
        if log:
            log("")
            log(f"Fitting full model ({rule.method}, {rule.nagq} points per level):")
            log("")
        x, ev, opt = newton_maximize(engine, x, log=log, maxiter=maxiter)
    notes = list(base.notes)
    theta = x[p : p + engine.n_theta]
    boundary = _boundary(engine, theta)
    if boundary.any():
        x = x.copy()
        x[p : p + engine.n_theta][boundary] = 0.0
        notes.append(
            "note: a variance component is estimated at zero (on the boundary of the "
            "parameter space)"
        )
    if boundary.any() or rule.is_laplace or ev.hessian is None:
        ev = engine(x, 2)  # Laplace: the exact Hessian (Newton used a cheaper one)
    flags = np.zeros(x.shape[0], dtype=bool)
    flags[p : p + engine.n_theta] = boundary
    assert ev.hessian is not None
    cov_all, hess_ok = covariance_from_hessian(ev.hessian, flags)
    if not hess_ok:
        notes.append(NOT_DEFINITE_NOTE)
    if isinstance(engine, NestedAGHQEngine) and np.any(engine.last_status):
        n_bad = int(np.count_nonzero(engine.last_status))
        notes.append(
            f"note: in {n_bad} top-level cluster{'s' if n_bad != 1 else ''} a unit's "
            "mean-variance grid did not converge; its mode-curvature grid was used"
        )
    if isinstance(engine, NestedAGHQEngine):
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
        theta_slices=tuple(engine._theta_slices),
        hessian_ok=hess_ok,
        boundary=boundary,
        level=level,
    )


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
    return rule


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
) -> MultilevelResults:
    """Design and fit of a several-factor model (what :func:`mixedglm.glmm` calls)."""
    design = build_multilevel_design(
        parsed, frame, family, cov=cov, offset=offset, exposure=exposure, trials=trials
    )
    if family.is_ordinal:
        family = family.with_categories(design.base.categories)
    rule = multilevel_rule(design, method, nagq, curvature)
    if rule.curvature == "fisher":
        raise MixedGLMError(
            "curvature='fisher' is not available with several grouping factors: the joint "
            "Laplace engine uses the observed curvature"
        )
    if not quiet:
        for note in design.base.notes:
            print(note)
    return fit_multilevel(design, family, rule, maxiter=maxiter, level=level, log=log)
