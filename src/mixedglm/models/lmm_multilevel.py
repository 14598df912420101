"""Linear mixed models with several grouping factors by their profiled likelihood (lme4's
``lmer``): REML (``reml=True``, lmer's default) and the ML estimates' fast start.

The criterion (:mod:`mixedglm.engines.lmm_profiled`) depends on the relative ``theta``
only; it is minimised by BFGS and polished by Newton steps on central differences (as the
one-factor REML fit, :mod:`mixedglm.models.reml`). REML's covariance is lmer's and Stata's
``mixed, reml``: ``sigma^2 (R_X'R_X)^-1`` for the fixed effects, the inverse of the negative
Hessian of the REML log-likelihood in ``[theta, log sigma]`` (profiled over ``beta`` only)
for the variance parameters. The random effects are the conditional modes and covariances
at the estimates (the joint Laplace engine's, exact for a Gaussian model), as lme4's
``ranef`` and ``condVar``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import optimize

from mixedglm.design.checks import outcome_notes
from mixedglm.design.multilevel import MultilevelDesign, build_multilevel_design
from mixedglm.engines.lmm_profiled import ProfiledLMM
from mixedglm.engines.rules import make_rule
from mixedglm.errors import MixedGLMError
from mixedglm.families import Family
from mixedglm.formula import ParsedFormula
from mixedglm.inference import covariance_from_hessian
from mixedglm.models.multilevel import MemoryEngines, boundary_flags, theta_slices
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

    sol = optimize.minimize(
        criterion, x0, method="BFGS", options={"gtol": 1e-3, "maxiter": maxiter}
    )
    theta_rel = newton_polish(criterion, sol.x)
    loglik, st = model.loglik(theta_rel, reml)
    converged = bool(sol.success) or loglik >= -sol.fun - 1e-9 * max(1.0, abs(sol.fun))
    opt = OptSummary(
        converged=converged,
        iterations=int(getattr(sol, "nit", 0)),
        loglik=loglik,
        scaled_gradient=float("nan"),
        max_abs_gradient=float(np.max(np.abs(getattr(sol, "jac", np.zeros(1))))),
        message=str(sol.message),
        history=(),
        evaluations=count[0],
    )
    return theta_rel, st, opt


def fit_reml_multilevel(
    design: MultilevelDesign,
    family: Family,
    *,
    maxiter: int = 200,
    level: float = 95.0,
    log: Callable[[str], None] | None = None,
) -> MultilevelResults:
    """REML for a Gaussian (identity-link) model with several grouping factors."""
    if family.name != "gaussian" or family.link != "identity":
        raise MixedGLMError(
            f"REML is for linear (gaussian, identity-link) models, not {family.name}/{family.link}"
        )
    t0 = time.perf_counter()
    model = ProfiledLMM(design)
    if model.n <= model.p:
        raise MixedGLMError("REML needs more observations than fixed effects")
    provider = MemoryEngines(design, family)
    if log:
        log("Performing REML optimization (BFGS on the profiled criterion):")
    theta_rel, st, opt = profiled_optimum(model, provider.scales, True, maxiter)
    sigma = math.sqrt(st["sigma2"])
    theta = theta_rel * sigma
    p, t = model.p, model.n_theta
    boundary = boundary_flags(design, provider.scales, theta)
    notes = list(design.base.notes)
    if boundary.any():
        theta = np.where(boundary, 0.0, theta)
        notes.append(
            "note: a variance component is estimated at zero (on the boundary of the "
            "parameter space)"
        )
    var_x = np.concatenate([theta, [math.log(sigma)]])
    hess = richardson_hessian(lambda z: model.loglik_at(z[:t], float(z[t]), True), var_x)
    cov_var, ok = covariance_from_hessian(hess, np.concatenate([boundary, [False]]))
    if not ok:
        notes.append("note: Hessian is not negative definite; standard errors may be unreliable")
    rx = st["rx"]
    cov = np.zeros((p + t + 1, p + t + 1))
    cov[:p, :p] = st["sigma2"] * np.linalg.inv(rx.T @ rx)
    cov[p:, p:] = cov_var
    params = np.concatenate([st["beta"], theta, [math.log(sigma)]])
    posterior = provider.laplace().posterior(params)
    pooled = model.loglik(np.zeros(t), True)[0]
    if log:
        log(f"Log restricted-likelihood = {opt.loglik:.8g}")
    return MultilevelResults(
        design=design,
        family=family,
        rule=make_rule("laplace", None, None),
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
        estimator="REML",
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
    res = fit_reml_multilevel(design, family, maxiter=max(maxiter, 200), level=level, log=log)
    rows = frame.iloc[base.source_positions] if base.source_positions is not None else None
    return replace(res, notes=(*res.notes, *checks), data=rows)
