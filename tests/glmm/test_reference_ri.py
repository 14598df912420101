"""Random-intercept GLMMs against lme4 / glmmTMB (tests/reference, made by reference/r/*.R).

Targets: the ``_tight`` lme4 fits or glmmTMB (exact Laplace); log-likelihoods are the full
ones (``loglik_full``). lme4's Laplace for probit and cloglog curves its grid with the
expected (Fisher) information, so those fits use ``curvature="fisher"``; with the observed
curvature (the true Laplace approximation) our log-likelihood is higher, as a test below shows.
"""

from __future__ import annotations

import numpy as np
import pytest

import mixedglm as mg

from refdata import load_reference, load_reference_data

CONTRA = "use ~ age + I(age**2) + urban + C(livch) + (1 | district)"
BANGLA = "c_use ~ urban + age + child1 + child2 + child3 + (1 | district)"
NAMES = {
    "(Intercept)": "_cons",
    "I(age^2)": "I(age ** 2)",
    "livch1": "C(livch)[1]",
    "livch2": "C(livch)[2]",
    "livch3+": "C(livch)[3+]",
    "period2": "C(period)[2]",
    "period3": "C(period)[3]",
    "period4": "C(period)[4]",
}

# id, data, formula, options, references (any one may be matched for the estimates)
CASES = [
    (
        "cbpp_laplace",
        "cbpp",
        "incidence ~ C(period) + (1 | herd)",
        {"trials": "size", "nagq": 1},
        ["cbpp_glmer_laplace_tight", "cbpp_glmmtmb_laplace"],
    ),
    (
        "cbpp_nagq25",
        "cbpp",
        "incidence ~ C(period) + (1 | herd)",
        {"trials": "size", "nagq": 25, "method": "mcaghermite"},
        ["cbpp_glmer_nagq25_tight"],
    ),
    (
        "contra_nagq1",
        "contraception",
        CONTRA,
        {"nagq": 1},
        ["contra_glmer_ri_nagq1_tight", "contra_glmmtmb_ri_laplace"],
    ),
    (
        "contra_nagq7",
        "contraception",
        CONTRA,
        {"nagq": 7, "method": "mcaghermite"},
        ["contra_glmer_ri_nagq7_tight"],
    ),
    (
        "contra_nagq12",
        "contraception",
        CONTRA,
        {"nagq": 12, "method": "mcaghermite"},
        ["contra_glmer_ri_nagq12_tight"],
    ),
    ("bangla_nagq1", "contraception", BANGLA, {"nagq": 1}, ["bangladesh_glmer_ri_nagq1_tight"]),
    (
        "bangla_nagq7",
        "contraception",
        BANGLA,
        {"nagq": 7, "method": "mcaghermite"},
        ["bangladesh_glmer_ri_nagq7_tight"],
    ),
    (
        "bangla_nagq12",
        "contraception",
        BANGLA,
        {"nagq": 12, "method": "mcaghermite"},
        ["bangladesh_glmer_ri_nagq12_tight"],
    ),
    (
        "probit_laplace",
        "contraception",
        CONTRA,
        {"nagq": 1, "link": "probit", "curvature": "fisher"},
        ["contra_glmer_ri_probit_laplace_tight"],
    ),
    (
        "cloglog_laplace",
        "contraception",
        CONTRA,
        {"nagq": 1, "link": "cloglog", "curvature": "fisher"},
        ["contra_glmer_ri_cloglog_laplace_tight"],
    ),
    (
        "probit_nagq12",
        "contraception",
        CONTRA,
        {"nagq": 12, "link": "probit", "method": "mcaghermite"},
        ["contra_glmer_ri_probit_nagq12_tight"],
    ),
    (
        "cloglog_nagq12",
        "contraception",
        CONTRA,
        {"nagq": 12, "link": "cloglog", "method": "mcaghermite"},
        ["contra_glmer_ri_cloglog_nagq12_tight"],
    ),
    (
        "mmmec_laplace",
        "mmmec",
        "deaths ~ uvb + (1 | region)",
        {"nagq": 1, "family": "poisson", "exposure": "expected"},
        ["mmmec_glmer_offset_ri_laplace_tight", "mmmec_glmmtmb_offset_ri_laplace"],
    ),
    (
        "mmmec_nagq12",
        "mmmec",
        "deaths ~ uvb + (1 | region)",
        {"nagq": 12, "family": "poisson", "exposure": "expected", "method": "mcaghermite"},
        ["mmmec_glmer_offset_ri_nagq12_tight"],
    ),
]

RTOL = 1e-4


def _fit(data: str, formula: str, options: dict) -> mg.api.GLMMResults:
    opts = {"family": "binomial", **options}
    return mg.glmm(formula, load_reference_data(data), nolog=True, quiet=True, **opts)


def _ours(res, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    keys = [NAMES.get(n, n) for n in names]
    return res.params[keys].to_numpy(), res.bse[keys].to_numpy()


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def fitted(request):
    case_id, data, formula, options, refs = request.param
    return case_id, _fit(data, formula, options), [load_reference(r) for r in refs]


def test_loglik_matches_full_reference(fitted):
    _, res, refs = fitted
    best = max(r["loglik_full"] for r in refs)
    # at least as high as the best reference, and within 1e-6 of it
    assert res.loglik >= best - 1e-6
    assert res.loglik - best < 1e-6
    assert res.converged


def _loglik_at(res, ref: dict) -> float:
    """Our log-likelihood (same method and curvature) at the reference's estimates."""
    from mixedglm.engines.aghq import AGHQObjective

    objective = AGHQObjective(
        res.design.cluster_arrays(),
        res.family,
        res.structure,
        nagq=res.nagq,
        method=res.method,
        curvature=res.curvature,
    )
    names = [NAMES.get(n, n) for n in ref["fixef"]["names"]]
    estimates = dict(zip(names, ref["fixef"]["estimate"], strict=True))
    beta = [estimates[n] for n in res.params.index]
    return objective.loglik(np.r_[beta, ref["varcomp"][0]["sd"]])


def test_estimates_match_a_reference(fitted):
    """Within 1e-4 relative of a reference, or - where the reference stopped short of the
    optimum (Contraception's badly scaled I(age^2) makes the surface flat) - at a point
    with a higher log-likelihood than the reference's and within 1e-3 SE of it."""
    case_id, res, refs = fitted
    errors = {}
    for ref in refs:
        beta, _ = _ours(res, ref["fixef"]["names"])
        errors[ref["id"]] = _rel(beta, np.array(ref["fixef"]["estimate"]))
    best_id = min(errors, key=errors.get)
    if errors[best_id] < RTOL:
        return
    ref = next(r for r in refs if r["id"] == best_id)
    at_ref = _loglik_at(res, ref)
    assert abs(at_ref - ref["loglik_full"]) < 1e-6, "the reference's objective differs from ours"
    assert res.loglik > at_ref, f"{case_id}: the reference point has a higher log-likelihood"
    beta, _ = _ours(res, ref["fixef"]["names"])
    in_se = np.abs(beta - np.array(ref["fixef"]["estimate"])) / _ours(res, ref["fixef"]["names"])[1]
    assert np.max(in_se) < 1e-3, f"{case_id}: estimates differ by {np.max(in_se):.2e} SE"


def test_standard_errors_match_a_reference(fitted):
    """SEs within 1e-4 relative of lme4's vcov, glmmTMB's sdreport, or lme4's independent
    Richardson-extrapolated numDeriv Hessian (``hessian_se``), whichever is closest."""
    case_id, res, refs = fitted
    errors = []
    for ref in refs:
        _, se = _ours(res, ref["fixef"]["names"])
        errors.append(_rel(se, np.array(ref["fixef"]["se"])))
        if "se_theta_beta" in ref.get("hessian_se", {}):
            errors.append(_rel(se, np.array(ref["hessian_se"]["se_theta_beta"][1:])))
    assert min(errors) < RTOL, f"{case_id}: standard errors differ by {min(errors):.2e} relative"


def test_random_intercept_sd_and_se(fitted):
    _, res, refs = fitted
    sd = float(np.sqrt(res.varcomp()[0].estimate))
    assert min(abs(sd - r["varcomp"][0]["sd"]) / r["varcomp"][0]["sd"] for r in refs) < RTOL
    lme4 = [r for r in refs if "hessian_se" in r and "varpar_se" in r["hessian_se"]]
    if lme4:  # lme4 _tight fits carry a numDeriv delta-method SE of var(_cons)
        ref_se = lme4[0]["hessian_se"]["varpar_se"]
        assert abs(res.varcomp()[0].se - ref_se) / ref_se < 1e-3


def test_sleepstudy_random_intercept_gaussian_ml():
    ref = load_reference("sleep_lmer_ml_ri")
    res = _fit("sleepstudy", "Reaction ~ Days + (1 | Subject)", {"family": "gaussian"})
    assert abs(res.loglik - ref["loglik"]) < 1e-6
    beta, _ = _ours(res, ref["fixef"]["names"])
    assert _rel(beta, np.array(ref["fixef"]["estimate"])) < 1e-6
    comps = {vc.name: vc.estimate for vc in res.varcomp()}
    assert (
        abs(np.sqrt(comps["var(_cons)"]) - ref["varcomp"][0]["sd"]) < 1e-5 * ref["varcomp"][0]["sd"]
    )
    assert abs(np.sqrt(comps["var(e)"]) - ref["sigma"]) < 1e-5 * ref["sigma"]


def test_observed_curvature_laplace_is_higher_than_lme4_fisher_laplace():
    """True Laplace (observed curvature) differs from lme4's probit Laplace; both agree
    once the quadrature is accurate (nagq 12)."""
    ref = load_reference("contra_glmer_ri_probit_laplace_tight")
    res = _fit("contraception", CONTRA, {"nagq": 1, "link": "probit"})
    assert res.loglik > ref["loglik_full"] + 0.1
