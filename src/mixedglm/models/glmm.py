"""The user-facing entry points: they chain the stages and do no mathematics themselves.

``glmm()`` = data -> formula -> design -> family -> AGHQ objective -> Newton -> covariance ->
results.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np

from mixedglm.data import DataSource, apply_subset, load_data
from mixedglm.design.build import ModelDesign, build_design
from mixedglm.design.checks import (
    check_outcome_varies,
    separation_notes,
    separation_suspected,
    univariate_separation_notes,
)
from mixedglm.engines.aghq import AGHQObjective
from mixedglm.engines.covariance import STRUCTURES, CovarianceStructure
from mixedglm.engines.glm import GLMObjective
from mixedglm.errors import ConvergenceWarning, FormulaError, MixedGLMError, QuadratureWarning
from mixedglm.families import Family, get_family
from mixedglm.formula import ParsedFormula, parse_formula
from mixedglm.inference import covariance_from_hessian
from mixedglm.inference.singular import singular_notes, with_notes
from mixedglm.optim import newton_maximize
from mixedglm.options import check_level, check_maxiter, integration_rule
from mixedglm.results.glmm import GLMMResults

METHODS = ("mvaghermite", "mcaghermite", "laplace")


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


def _start_values(
    objective: AGHQObjective, beta0: np.ndarray, aux0: np.ndarray, log: Callable[[str], None] | None
) -> np.ndarray:
    """Pooled-GLM coefficients, then the best of a few scalings of the variance start.

    The scalings are compared by the Laplace approximation (one point per cluster: a tenth
    of the cost of the quadrature, and it orders them the same way).
    """
    scales = np.sqrt(np.mean(objective.arrays.Z**2, axis=0))
    theta0 = objective.structure.start(scales)
    if objective.family.name == "gaussian" and aux0.size:  # on the outcome's scale
        theta0 = theta0 * float(np.exp(aux0[0]))
    laplace = AGHQObjective(
        objective.arrays, objective.family, objective.structure, nagq=1, method="laplace"
    )
    best, best_ll = None, -np.inf
    if log:
        log("")
        log("Refining starting values (Laplace):")
        log("")
    for node, factor in enumerate((1.0, 0.5, 2.0, 0.25)):
        x = np.concatenate([beta0, theta0 * factor, aux0])
        ll = laplace.loglik(x)
        if log:
            log(f"{f'Grid node {node}:':<14} log likelihood = {ll:.8g}")
        if np.isfinite(ll) and ll > best_ll:
            best, best_ll = x, ll
    if best is None:
        raise MixedGLMError("the log likelihood is not finite at any starting value")
    return best


COARSE_POINTS = 3


def _coarse_fit(
    objective: AGHQObjective, x0: np.ndarray, maxiter: int, log: Callable[[str], None] | None
) -> np.ndarray:
    """Approach the optimum with a 3-point rule of the same kind before the full rule.

    Far from the optimum the adaptive grid moves at every step and each evaluation costs
    several passes over the data; with 3 points instead of, say, 12 those passes cost a
    quarter. The 3-point optimum is close to the full one, which then needs one or two
    Newton steps. (A start value only: the full rule's own convergence criterion decides.)
    """
    if objective.nagq <= COARSE_POINTS + 1:
        return x0
    coarse = AGHQObjective(
        objective.arrays,
        objective.family,
        objective.structure,
        nagq=COARSE_POINTS,
        method=objective.method,
        curvature=objective.curvature,
    )
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
    objective.adopt_grid(coarse)
    return x


def _boundary(objective: AGHQObjective, theta: np.ndarray) -> np.ndarray:
    """Which ``theta`` entries belong to a random effect whose variance is zero: a row of
    ``Lambda`` negligible (SD below 1e-6 on the linear-predictor scale)."""
    scales = np.sqrt(np.mean(objective.arrays.Z**2, axis=0))
    basis = objective.structure.basis()
    lam = objective.structure.lam(theta)
    flags = np.zeros(theta.shape[0], dtype=bool)
    for a in range(lam.shape[0]):
        if np.linalg.norm(lam[a]) * scales[a] < 1e-6:
            flags |= np.any(basis[:, a, :] != 0, axis=1)
    return flags


def fit_glmm(
    design: ModelDesign,
    family: Family,
    structure: CovarianceStructure,
    *,
    nagq: int = 7,
    method: str = "mvaghermite",
    curvature: str = "observed",
    maxiter: int = 100,
    level: float = 95.0,
    log: Callable[[str], None] | None = None,
) -> GLMMResults:
    """Estimate a GLMM on a ready :class:`ModelDesign` (no data handling here)."""
    n_points = nagq**structure.q
    if n_points > 1000:
        warnings.warn(
            QuadratureWarning(
                f"{nagq} points in each of {structure.q} dimensions is {n_points:,} quadrature "
                "points per cluster: the fit will be slow (fewer points, or method='laplace', "
                "is much faster)"
            ),
            stacklevel=3,
        )
    t0 = time.perf_counter()
    arrays = design.cluster_arrays()
    pooled = GLMObjective(arrays.X, arrays.y, arrays.trials, arrays.offset, family)
    if log:
        log("Fitting fixed-effects model:")
        log("")
    x_pooled, ev_pooled, _ = newton_maximize(pooled, pooled.start(), log=log, maxiter=maxiter)
    p = arrays.X.shape[1]
    objective = AGHQObjective(
        arrays, family, structure, nagq=nagq, method=method, curvature=curvature
    )
    start = _start_values(objective, x_pooled[:p], x_pooled[p:], log)
    x0 = _coarse_fit(objective, start, maxiter, log)
    if log:
        log("")
        log("Fitting full model:")
        log("")
    try:
        x, ev, opt = newton_maximize(objective, x0, log=log, maxiter=maxiter)
    except FloatingPointError:  # the coarse fit led somewhere the full rule cannot start
        x, ev, opt = newton_maximize(objective, start, log=log, maxiter=maxiter)
    notes: list[str] = list(design.notes)
    theta = x[p : p + objective.n_theta]
    boundary = _boundary(objective, theta)
    if boundary.any():
        x = x.copy()
        x[p : p + objective.n_theta][boundary] = 0.0
        ev = objective(x, 2)
        lam = structure.lam(x[p : p + objective.n_theta])
        zero = [structure.columns[a] for a in range(structure.q) if not np.any(lam[a])]
        notes.append(
            f"note: var({' '.join(zero)}) estimated at zero (on the boundary of the parameter "
            "space)"
        )
    full_flags = np.zeros(x.shape[0], dtype=bool)
    full_flags[p : p + objective.n_theta] = boundary
    cov_all, hess_ok = covariance_from_hessian(ev.hessian, full_flags)
    if not hess_ok:
        notes.append("note: Hessian is not negative definite; standard errors may be unreliable")
    if not np.array_equal(objective.last_params, x):
        objective.loglik(x)  # the posterior moments below belong to x
    mean_u, cov_u = (a.copy() for a in objective.last_posterior)
    elapsed = time.perf_counter() - t0
    if not opt.converged:
        warnings.warn(
            ConvergenceWarning(
                f"convergence not achieved after {opt.iterations} iterations "
                f"(max |gradient| = {opt.max_abs_gradient:.3g}, {opt.message})"
            ),
            stacklevel=3,
        )
    return GLMMResults(
        design=design,
        family=family,
        structure=structure,
        method=objective.method,
        nagq=objective.nagq,
        params_all=x,
        cov_all=cov_all,
        loglik=float(ev.loglik),
        loglik_pooled=float(ev_pooled.loglik),
        opt=opt,
        time_s=elapsed,
        notes=tuple(notes),
        posterior_mean=mean_u,
        posterior_cov=cov_u,
        hessian_ok=hess_ok,
        boundary=boundary,
        curvature=curvature,
        level=level,
    )


def glmm(
    formula: str,
    data: DataSource,
    family: str = "binomial",
    link: str | None = None,
    *,
    nagq: int | None = None,
    method: str | None = None,
    cov: str | None = None,
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
) -> GLMMResults:
    """Fit a generalized linear mixed model by maximum likelihood.

    Parameters
    ----------
    formula
        lme4 syntax: ``"y ~ x1 + C(region) + (1 | school)"``; ``(1 + x || g)`` for
        independent random slopes, ``(1 + x | g)`` for correlated ones.
    data
        A DataFrame, a path to a CSV/Parquet/Stata file, or a bundled dataset name.
    family, link
        ``binomial``/``bernoulli`` (logit, probit, cloglog), ``poisson`` (log),
        ``gaussian`` (identity), ``nbinomial`` (log; ``"nbinomial constant"`` for constant
        dispersion), ``gamma`` (log), ``ordinal`` (logit, probit, cloglog; ``ologit`` and
        ``oprobit`` are synonyms).
    nagq
        Quadrature points per random effect (default 7, as meglm; at most
        :data:`~mixedglm.engines.rules.MAX_NAGQ`); 1 is the Laplace approximation.
    method
        ``mvaghermite`` (default: grid at each cluster's posterior mean and variance, as
        Stata), ``mcaghermite`` (at the mode and curvature, as lme4) or ``laplace``.
    cov
        Covariance structure of random slopes: ``independent``, ``exchangeable``,
        ``identity`` or ``unstructured``.
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
    """
    fam = get_family(family, link, dispersion)
    rule = integration_rule(
        method, nagq, curvature, supports_fisher=fam.name in ("bernoulli", "binomial", "poisson")
    )
    level, maxiter = check_level(level), check_maxiter(maxiter)
    if trials is None and fam.name == "binomial":
        fam = Family("bernoulli", fam.link)
    if trials is not None and not fam.is_binary:
        raise MixedGLMError("trials= is for the binomial family")
    parsed = parse_formula(formula)
    frame = apply_subset(load_data(data), subset)
    design = build_design(parsed, frame, fam, offset=offset, exposure=exposure, trials=trials)
    if fam.is_ordinal:
        fam = fam.with_categories(design.categories)
    structure = choose_structure(parsed, design, cov)
    trials_arr = design.trials if design.binomial_trials else None
    check_outcome_varies(design.y, design.response, fam.name, trials_arr)
    checks = univariate_separation_notes(design.y, design.X, design.x_names, fam.name)
    if not quiet:
        for note in (*design.notes, *checks):
            print(note)
    log = _printer(not nolog and not quiet)
    res = fit_glmm(
        design,
        fam,
        structure,
        nagq=rule.nagq,
        method=rule.method,
        curvature=rule.curvature,
        maxiter=maxiter,
        level=level,
        log=log,
    )
    if log:
        log("")
    printed = () if quiet else (*design.notes, *checks)
    if not checks and separation_suspected(design.X, design.x_names, res.params, res.bse):
        checks = separation_notes(design.y, design.X, design.x_names, fam.name, trials_arr)
    return with_notes(res, [*checks, *singular_notes(res)], printed)
