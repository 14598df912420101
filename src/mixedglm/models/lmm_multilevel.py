"""Linear mixed models with several grouping factors by their profiled likelihood (lme4's
``lmer``): ML (by default, as Stata's ``mixed``) and REML (``reml=True``, lmer's default).

The criterion (:mod:`mixedglm.engines.lmm_profiled`) depends on the relative ``theta``
only; it is minimised by COBYQA (a derivative-free trust region, the successor of lmer's
bobyqa) and polished by a Newton step on central differences (as the one-factor REML fit,
:mod:`mixedglm.models.reml`). REML's covariance is lmer's and Stata's
``mixed, reml``: ``sigma^2 (R_X'R_X)^-1`` for the fixed effects, the inverse of the negative
Hessian of the REML log-likelihood in ``[theta, log sigma]`` (profiled over ``beta`` only)
for the variance parameters. The random effects are the conditional modes and covariances
at the estimates (the joint Laplace engine's, exact for a Gaussian model), as lme4's
``ranef`` and ``condVar``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import optimize

from mixedglm.design.checks import outcome_notes
from mixedglm.design.multilevel import MultilevelDesign, build_multilevel_design
from mixedglm.engines import lmm_profiled
from mixedglm.engines.laplace_joint import JointLaplaceEngine
from mixedglm.engines.lmm_profiled import ProfiledLMM, rest_size
from mixedglm.engines.rules import IntegrationRule, make_rule
from mixedglm.errors import ConvergenceWarning, MixedGLMError
from mixedglm.families import Family
from mixedglm.formula import ParsedFormula
from mixedglm.inference import covariance_from_hessian, covariance_with_boundary
from mixedglm.inference.vcov import NOT_DEFINITE_NOTE
from mixedglm.models.factor_params import boundary_flags, factor_scales, theta_slices
from mixedglm.models.reml import newton_polish, richardson_hessian
from mixedglm.optim import OptSummary
from mixedglm.results.multilevel import MultilevelResults


def profiled_optimum(
    model: ProfiledLMM, scales: list[np.ndarray], reml: bool, maxiter: int
) -> tuple[np.ndarray, dict, OptSummary]:
    """The relative ``theta`` maximising the profiled (RE)ML log-likelihood, the factor's
    summaries there and the optimiser's summary."""
    design = model.design
    x0 = np.concatenate(
        [2.0 * f.structure.start(s) for f, s in zip(design.factors, scales, strict=True)]
    )
    count = [0]

    def criterion(theta_rel: np.ndarray) -> float:
        count[0] += 1
        try:
            value = -model.loglik(theta_rel, reml)[0]
        except np.linalg.LinAlgError:
            return math.inf
        return value if math.isfinite(value) else math.inf

    # COBYQA (Powell's successor to BOBYQA, lmer's optimiser): about a third of the
    # evaluations of BFGS on differenced gradients (VerbAgg: 93 against 250)
    # (``maxiter``: 50 evaluations each, about a Newton iteration's worth of differences)
    sol = optimize.minimize(
        criterion, x0, method="COBYQA", options={"maxfev": 50 * maxiter, "final_tr_radius": 1e-8}
    )
    theta_rel = newton_polish(criterion, sol.x, steps=1)
    loglik, st = model.loglik(theta_rel, reml)
    opt = OptSummary(
        converged=bool(sol.success),
        iterations=int(getattr(sol, "nit", 0)),
        loglik=loglik,
        scaled_gradient=float("nan"),
        max_abs_gradient=float("nan"),  # derivative-free
        message=str(sol.message),
        history=(),
        evaluations=count[0],
    )
    return theta_rel, st, opt


def is_linear(family: Family) -> bool:
    """Gaussian with the identity link: the profiled likelihood applies."""
    return family.name == "gaussian" and family.link == "identity"


def profiled_applies(design: MultilevelDesign, family: Family) -> bool:
    """A Gaussian model whose factors other than the largest fit in one dense block (else
    the general engines, which split nested designs into their top clusters)."""
    return is_linear(family) and rest_size(design) <= lmm_profiled.MAX_REST


def _beta_jacobian(model: ProfiledLMM, var_x: np.ndarray) -> np.ndarray:
    """``d beta^ / d [theta, log sigma]`` (``beta^`` depends on ``theta / sigma``) by
    central differences."""
    t = model.n_theta
    out = np.empty((model.p, t + 1))
    for k in range(t + 1):
        h = 1e-5 * max(1.0, abs(float(var_x[k])))
        ends = []
        for sign in (1.0, -1.0):
            z = var_x.copy()
            z[k] += sign * h
            ends.append(model.solve(z[:t] / math.exp(z[t]))["beta"])
        out[:, k] = (ends[0] - ends[1]) / (2.0 * h)
    return out


def _ml_hessian(model: ProfiledLMM, st: dict, var_x: np.ndarray) -> np.ndarray:
    """The ML log-likelihood's Hessian in ``[beta, theta, log sigma]``: the fixed effects'
    block ``-R_X'R_X / sigma^2`` exactly; with ``J = d beta^ / d phi`` the cross block is
    ``-H_bb J`` and the variance block the Hessian of the log-likelihood profiled over
    ``beta`` plus ``J' H_bb J`` (the Schur complement identity read backwards)."""
    t, p = model.n_theta, model.p
    h_bb = -(st["rx"].T @ st["rx"]) * math.exp(-2.0 * var_x[t])
    jac = _beta_jacobian(model, var_x)
    h_pp = richardson_hessian(lambda z: model.loglik_at(z[:t], float(z[t]), False), var_x)
    out = np.empty((p + t + 1, p + t + 1))
    out[:p, :p] = h_bb
    out[:p, p:] = -h_bb @ jac
    out[p:, :p] = out[:p, p:].T
    out[p:, p:] = h_pp + jac.T @ h_bb @ jac
    return out


def fit_profiled(
    design: MultilevelDesign,
    family: Family,
    rule: IntegrationRule,
    *,
    reml: bool,
    maxiter: int = 200,
    level: float = 95.0,
    log: Callable[[str], None] | None = None,
) -> MultilevelResults:
    """ML or REML for a Gaussian (identity-link) model with several grouping factors; with
    ML the results are those of ``rule`` (exact for a Gaussian model, whatever the rule)."""
    if not is_linear(family):
        raise MixedGLMError(
            f"REML is for linear (gaussian, identity-link) models, not {family.name}/{family.link}"
        )
    t0 = time.perf_counter()
    model = ProfiledLMM(design)
    if model.n <= model.p:
        raise MixedGLMError("a linear mixed model needs more observations than fixed effects")
    scales = factor_scales(design)
    word = "REML" if reml else "ML"
    if log:
        log(f"Performing {word} optimization (COBYQA on the profiled criterion):")
    theta_rel, st, opt = profiled_optimum(model, scales, reml, maxiter)
    sigma = math.sqrt(st["sigma2"])
    theta = theta_rel * sigma
    p, t = model.p, model.n_theta
    boundary = boundary_flags(design, scales, theta)
    notes = list(design.base.notes)
    if boundary.any():
        theta = np.where(boundary, 0.0, theta)
        notes.append(
            "note: a variance component is estimated at zero (on the boundary of the "
            "parameter space)"
        )
    var_x = np.concatenate([theta, [math.log(sigma)]])
    params = np.concatenate([st["beta"], var_x])
    if reml:  # lmer's and Stata's: the fixed effects' block apart
        hess = richardson_hessian(lambda z: model.loglik_at(z[:t], float(z[t]), True), var_x)
        cov_var, ok = covariance_from_hessian(hess, np.concatenate([boundary, [False]]))
        if not ok:
            notes.append(NOT_DEFINITE_NOTE)
        cov = np.zeros((p + t + 1, p + t + 1))
        cov[:p, :p] = st["sigma2"] * np.linalg.inv(st["rx"].T @ st["rx"])
        cov[p:, p:] = cov_var
    else:
        cov, ok = covariance_with_boundary(_ml_hessian(model, st, var_x), p, boundary, notes)
    if not opt.converged:
        warnings.warn(
            ConvergenceWarning(
                f"convergence not achieved after {opt.evaluations} evaluations of the "
                f"profiled criterion ({opt.message})"
            ),
            stacklevel=3,
        )
    posterior = JointLaplaceEngine(design, family).posterior(params)
    pooled = model.loglik(np.zeros(t), reml)[0]
    if log:
        log(f"Log {'restricted-' if reml else ''}likelihood = {opt.loglik:.8g}")
    return MultilevelResults(
        design=design,
        family=family,
        rule=make_rule("laplace", None, None) if reml else rule,
        params_all=params,
        cov_all=cov,
        loglik=opt.loglik,
        loglik_pooled=pooled,
        opt=opt,
        time_s=time.perf_counter() - t0,
        notes=tuple(notes),
        posterior=posterior,
        theta_slices=tuple(theta_slices(design)),
        hessian_ok=ok,
        boundary=boundary,
        level=level,
        estimator=word,
    )


def reml_multilevel_glmm(
    parsed: ParsedFormula,
    frame: pd.DataFrame,
    family: Family,
    *,
    cov: object = None,
    offset: str | None = None,
    exposure: str | None = None,
    maxiter: int = 200,
    level: float = 95.0,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
) -> MultilevelResults:
    """Design and REML fit of a several-factor Gaussian model (``glmm(..., reml=True)``)."""
    design = build_multilevel_design(
        parsed, frame, family, cov=cov, offset=offset, exposure=exposure
    )
    base = design.base
    checks = outcome_notes(base.y, base.X, base.x_names, family.name, base.response, None)
    if not quiet:
        for note in (*base.notes, *checks):
            print(note)
    rule = make_rule("laplace", None, None)
    res = fit_profiled(design, family, rule, reml=True, maxiter=maxiter, level=level, log=log)
    rows = frame.iloc[base.source_positions] if base.source_positions is not None else None
    return replace(res, notes=(*res.notes, *checks), data=rows)
