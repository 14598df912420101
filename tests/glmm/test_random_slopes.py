"""Random slopes: Laplace fits against lme4 / glmmTMB, q-dimensional quadrature consistency,
covariance structures, estat sd, predicted random effects, predictions, estat icc."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import mixedglm as mg
from mixedglm.engines.aghq import AGHQObjective
from mixedglm.errors import DataError, MixedGLMError

from refdata import load_reference, load_reference_data

NAMES = {
    "(Intercept)": "_cons",
    "I(age^2)": "I(age ** 2)",
    "livch1": "C(livch)[1]",
    "livch2": "C(livch)[2]",
    "livch3+": "C(livch)[3+]",
}
FIXED = "use ~ age + I(age**2) + urban + C(livch)"
BANGLA = "c_use ~ urban + age + child1 + child2 + child3"
CASES = [
    (
        "contra_rs",
        f"{FIXED} + (1 + urban | district)",
        ["contra_glmer_rs_laplace_tight", "contra_glmmtmb_rs_laplace"],
    ),
    (
        "contra_rsind",
        f"{FIXED} + (1 | district) + (0 + urban | district)",
        ["contra_glmer_rsind_laplace_tight", "contra_glmmtmb_rsind_laplace"],
    ),
    ("bangla_rs", f"{BANGLA} + (1 + urban | district)", ["bangladesh_glmer_rs_laplace_tight"]),
    (
        "bangla_rsind",
        f"{BANGLA} + (1 + urban || district)",
        ["bangladesh_glmer_rsind_laplace_tight"],
    ),
]


def fit(formula: str, data: pd.DataFrame, **kw) -> mg.api.GLMMResults:
    return mg.glmm(formula, data, nolog=True, quiet=True, **kw)


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def laplace_fit(request):
    case, formula, refs = request.param
    return (
        case,
        fit(formula, load_reference_data("contraception"), nagq=1),
        [load_reference(r) for r in refs],
    )


def _sigma_of(ref: dict) -> np.ndarray:
    comps = ref["varcomp"]
    if len(comps) == 1:  # one correlated term: (Intercept), urban
        return np.array(comps[0]["cov"])
    return np.diag([c["variance"] for c in comps])


def test_laplace_random_slopes_match_lme4_and_glmmtmb(laplace_fit):
    case, res, refs = laplace_fit
    assert res.converged
    best = max(r["loglik_full"] for r in refs)
    assert res.loglik >= best - 1e-6 and abs(res.loglik - best) < 1e-4
    est_err, se_err, var_err = [], [], []
    for ref in refs:
        names = [NAMES.get(n, n) for n in ref["fixef"]["names"]]
        est_err.append(np.max(np.abs(res.params[names] / ref["fixef"]["estimate"] - 1)))
        ses = [ref["fixef"]["se"]]
        if "se_theta_beta" in ref.get("hessian_se", {}):
            n_theta = len(ref["hessian_se"]["se_theta_beta"]) - len(names)
            ses.append(ref["hessian_se"]["se_theta_beta"][n_theta:])
        se_err += [np.max(np.abs(res.bse[names] / np.array(s) - 1)) for s in ses]
        # Sigma in lme4's column order (Intercept, urban); ours is (_cons, urban) as well
        var_err.append(np.max(np.abs(res.sigma - _sigma_of(ref)) / np.abs(_sigma_of(ref)).max()))
    assert min(est_err) < 1e-4, f"{case}: estimates {min(est_err):.2e}"
    assert min(se_err) < 1e-4, f"{case}: SEs {min(se_err):.2e}"
    assert min(var_err) < 1e-4, f"{case}: variance components {min(var_err):.2e}"


def test_variance_component_standard_errors_match_lme4_numderiv():
    ref = load_reference("contra_glmer_rs_laplace_tight")
    res = fit(f"{FIXED} + (1 + urban | district)", load_reference_data("contraception"), nagq=1)
    ours = {vc.name: vc.se for vc in res.varcomp()}
    theirs = dict(
        zip(ref["hessian_se"]["varpar_names"], ref["hessian_se"]["varpar_se"], strict=True)
    )
    pairs = [
        ("var(_cons)", "var((Intercept)|district)"),
        ("var(urban)", "var(urban|district)"),
        ("cov(urban,_cons)", "cov((Intercept),urban|district)"),
    ]
    for a, b in pairs:
        assert ours[a] == pytest.approx(theirs[b], rel=1e-3)


@pytest.mark.parametrize(
    ("ref_id", "formula"),
    [
        ("sleep_glmmtmb_ml_rs", "Reaction ~ Days + (1 + Days | Subject)"),
        ("sleep_lmer_ml_rsind", "Reaction ~ Days + (1 + Days || Subject)"),
    ],
)
def test_sleepstudy_random_slopes_gaussian_ml(ref_id, formula):
    ref = load_reference(ref_id)
    res = fit(formula, load_reference_data("sleepstudy"), family="gaussian", nagq=1)
    assert res.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    assert res.params[["_cons", "Days"]].to_numpy() == pytest.approx(
        ref["fixef"]["estimate"], rel=1e-5
    )
    sd = np.sqrt(np.diag(res.sigma))
    ref_sd = (
        ref["varcomp"][0]["sd"]
        if len(ref["varcomp"][0]["terms"]) == 2
        else [ref["varcomp"][0]["sd"], ref["varcomp"][1]["sd"]]
    )
    assert sd == pytest.approx(ref_sd, rel=1e-4)
    if ref["package"] == "glmmTMB":  # full-information SEs, as ours
        assert res.bse[["_cons", "Days"]].to_numpy() == pytest.approx(ref["fixef"]["se"], rel=1e-4)


def test_q2_quadrature_settles_as_nagq_grows(contraception):
    """At fixed parameters on Contraception (the Laplace estimates of a correlated random
    slope) the log-likelihood settles as the points per dimension grow. Measured: 7 points
    are 3.3e-6 (mean-variance) and 1.0e-5 (mode-curvature) from 30 points, 12 points 1.4e-9
    and 4.7e-9, 20 points below 1e-12."""
    base = fit(f"{FIXED} + (1 + urban | district)", contraception, nagq=1)
    arrays = base.design.cluster_arrays()
    for method in ("mvaghermite", "mcaghermite"):
        values = {
            n: AGHQObjective(arrays, base.family, base.structure, nagq=n, method=method).loglik(
                base.params_all
            )
            for n in (5, 7, 12, 20, 30)
        }
        errors = {n: abs(v - values[30]) for n, v in values.items()}
        assert errors[5] > errors[7] > errors[12] > errors[20]
        assert errors[7] < 2e-5 and errors[12] < 1e-8 and errors[20] < 1e-11
    assert abs(values[7] - base.loglik) > 1e-3  # Laplace is visibly different


def test_q2_aghq_fit_estimates_settle(contraception):
    fits = {n: fit(f"{BANGLA} + (1 + urban || district)", contraception, nagq=n) for n in (7, 12)}
    assert fits[7].loglik == pytest.approx(fits[12].loglik, abs=1e-5)
    assert np.allclose(fits[7].params, fits[12].params, rtol=1e-4, atol=1e-5)
    assert "Integration pts.  =          7" in str(fits[7].summary())


@pytest.mark.slow
def test_posterior_means_and_sds_equal_brute_force_integrals(contraception):
    res = fit(f"{BANGLA} + (1 + urban | district)", contraception, nagq=12)
    design = res.design
    effects = res.random_effects()
    cov = res.sigma
    for i in (0, 5, 17):
        s, e = design.starts[i], design.starts[i + 1]
        xb = design.X[s:e] @ res.params.to_numpy()
        y, Z = design.y[s:e], design.Z[s:e]

        def weight(b0, b1, xb=xb, y=y, Z=Z):
            p = 1 / (1 + np.exp(-(xb + Z[:, 0] * b0 + Z[:, 1] * b1)))
            return np.prod(np.where(y == 1, p, 1 - p)) * stats.multivariate_normal.pdf(
                [b0, b1], cov=cov
            )

        box = [[-4, 4], [-4, 4]]
        opts = {"epsabs": 0, "epsrel": 1e-9}
        total = integrate.nquad(weight, box, opts=opts)[0]
        m0 = integrate.nquad(lambda a, b: a * weight(a, b), box, opts=opts)[0] / total
        m1 = integrate.nquad(lambda a, b: b * weight(a, b), box, opts=opts)[0] / total
        second = integrate.nquad(lambda a, b: b * b * weight(a, b), box, opts=opts)[0] / total
        v1 = second - m1**2
        label = design.group.labels[i]
        assert effects.loc[label, "_cons"] == pytest.approx(m0, rel=1e-5, abs=1e-7)
        assert effects.loc[label, "urban"] == pytest.approx(m1, rel=1e-5, abs=1e-7)
        assert effects.loc[label, "se(urban)"] == pytest.approx(np.sqrt(v1), rel=1e-5)


def test_random_effects_layout_modes_and_expansion(contraception):
    res = fit(f"{BANGLA} + (1 + urban || district)", contraception, nagq=7)
    means = res.random_effects()
    assert list(means.columns) == ["urban", "_cons", "se(urban)", "se(_cons)"]
    assert means.index.name == "district" and len(means) == 60
    modes = res.random_effects(kind="modes")
    assert np.max(np.abs(modes["_cons"] - means["_cons"])) < 0.05  # close, not equal
    assert not np.allclose(modes["_cons"], means["_cons"])
    rows = res.random_effects(expand=True, se=False)
    assert rows.index.equals(contraception.index)
    assert rows["_cons"].to_numpy() == pytest.approx(
        means.loc[contraception["district"], "_cons"].to_numpy()
    )


def test_estat_sd_is_the_square_root_and_correlation(contraception):
    res = fit(f"{BANGLA} + (1 + urban | district)", contraception, nagq=1)
    sd = res.sd()
    var = {vc.name: vc for vc in res.varcomp()}
    assert sd.loc["sd(urban)", "estimate"] == pytest.approx(np.sqrt(var["var(urban)"].estimate))
    # delta method: se(sd) = se(var) / (2 sd)
    assert sd.loc["sd(urban)", "se"] == pytest.approx(
        var["var(urban)"].se / (2 * sd.loc["sd(urban)", "estimate"]), rel=1e-10
    )
    corr = var["cov(urban,_cons)"].estimate / np.sqrt(
        var["var(urban)"].estimate * var["var(_cons)"].estimate
    )
    assert sd.loc["corr(urban,_cons)", "estimate"] == pytest.approx(corr)
    # the correlation's interval is symmetric on the atanh scale
    lo, hi = sd.loc["corr(urban,_cons)", ["ci_low", "ci_high"]]
    assert np.arctanh(corr) - np.arctanh(lo) == pytest.approx(np.arctanh(hi) - np.arctanh(corr))
    text = res.estat_sd()
    assert " corr(urban,_cons)|" in text and "        sd(urban)|" in text


def test_covariance_structures(contraception):
    formula = f"{BANGLA} + (1 + urban || district)"
    ind = fit(formula, contraception, nagq=1)
    idt = fit(formula, contraception, nagq=1, cov="identity")
    exc = fit(formula, contraception, nagq=1, cov="exchangeable")
    uns = fit(formula, contraception, nagq=1, cov="unstructured")
    # nested models: each richer structure fits at least as well
    assert idt.loglik <= ind.loglik + 1e-8 and idt.loglik <= exc.loglik + 1e-8
    assert exc.loglik <= uns.loglik + 1e-8
    assert idt.sigma[0, 0] == pytest.approx(idt.sigma[1, 1]) and idt.sigma[0, 1] == 0
    assert exc.sigma[0, 0] == pytest.approx(exc.sigma[1, 1])
    assert [vc.name for vc in exc.varcomp()] == ["var(urban _cons)", "cov(urban _cons)"]
    assert [vc.name for vc in idt.varcomp()] == ["var(urban _cons)"]
    assert uns.loglik == pytest.approx(
        fit(f"{BANGLA} + (1 + urban | district)", contraception, nagq=1).loglik, abs=1e-8
    )
    assert "chi2(3)" in str(uns.summary()) and "LR test is conservative" in str(uns.summary())


def test_predictions(contraception):
    res = fit(f"{BANGLA} + (1 + urban | district)", contraception, nagq=7)
    design = res.design
    mu = res.predict()
    assert mu.index.equals(contraception.index)
    effects = res.random_effects(se=False)
    b = effects.loc[contraception["district"], ["_cons", "urban"]].to_numpy()
    X = contraception[["urban", "age", "child1", "child2", "child3"]].to_numpy()
    xb = X @ res.params.to_numpy()[:5] + res.params["_cons"]
    eta = xb + b[:, 0] + b[:, 1] * contraception["urban"].to_numpy()
    assert res.predict(kind="xb").to_numpy() == pytest.approx(xb)
    assert res.predict(kind="eta").to_numpy() == pytest.approx(eta)
    assert mu.to_numpy() == pytest.approx(1 / (1 + np.exp(-eta)))
    # marginal mean: E over b ~ N(0, Sigma), checked by a 2-D integral for two rows
    marginal = res.predict(conditional=False)
    for row in (0, 100):
        z = np.array([1.0, contraception["urban"].iloc[row]])
        sd = float(np.sqrt(z @ res.sigma @ z))
        value = integrate.quad(
            lambda t, row=row, sd=sd: stats.norm.pdf(t) / (1 + np.exp(-(xb[row] + sd * t))),
            -10,
            10,
            epsabs=1e-12,
        )[0]
        assert marginal.iloc[row] == pytest.approx(value, rel=1e-8)
    # new data: known clusters use their effects, new clusters zero
    new = contraception.iloc[:3].copy()
    assert res.predict(new).to_numpy() == pytest.approx(mu.iloc[:3].to_numpy())
    new["district"] = -5
    assert res.predict(new, kind="eta").to_numpy() == pytest.approx(xb[:3])
    assert len(design.z_names) == 2


def test_icc_random_intercept_only(contraception):
    res = fit(f"{BANGLA} + (1 | district)", contraception, nagq=7)
    icc = res.icc()
    var = res.varcomp()[0].estimate
    assert icc.iloc[0]["icc"] == pytest.approx(var / (var + np.pi**2 / 3))
    assert icc.iloc[0]["icc"] == pytest.approx(res.xt_params()["rho"][0])
    slopes = fit(f"{BANGLA} + (1 + urban || district)", contraception, nagq=1)
    with pytest.raises(MixedGLMError, match="random-intercept models"):
        slopes.icc()


def test_slope_bad_input(contraception):
    data = contraception.assign(dconst=contraception["district"] * 2.0)
    with pytest.raises(DataError, match="'dconst' is constant within every group of 'district'"):
        fit(f"{BANGLA} + (1 + dconst | district)", data)
    with pytest.raises(MixedGLMError, match="exchangeable' needs at least two"):
        fit(f"{BANGLA} + (1 | district)", contraception, cov="exchangeable")
    with pytest.raises(MixedGLMError, match="unknown covariance structure 'diagonal'"):
        fit(f"{BANGLA} + (1 + urban || district)", contraception, cov="diagonal")
    with pytest.raises(DataError, match="variable 'region' not found"):
        fit(f"{BANGLA} + (1 + urban | region)", contraception)


@pytest.mark.filterwarnings("ignore::mixedglm.errors.ConvergenceWarning")
def test_large_grid_warns(contraception):
    from mixedglm.errors import QuadratureWarning

    with pytest.warns(QuadratureWarning, match="11 points in each of 3 dimensions"):
        fit(
            "c_use ~ urban + age + (1 + urban + age || district)",
            contraception.iloc[:300],
            nagq=11,
            maxiter=1,
        )
