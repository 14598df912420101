"""Linear models with several grouping factors on lme4's profiled criterion. REML (lmer's
default for Gaussian models) against lme4's
``lmer(..., REML = TRUE)`` (tests/reference/r/fit_multilevel.R): Penicillin (crossed),
Pastes (nested) and VerbAgg's response taken as a number (crossed, fixed effects and a
correlated random slope by item). Targets: estimates and SEs 1e-4 relative, the REML
log-likelihood at least lmer's (lmer stops up to 1e-7 short on VerbAgg) and within 1e-6.
The profiled criterion is also checked against a dense computation with ``V`` itself, and
the ML one against the joint Laplace engine (exact for a Gaussian model); ML fits, which run
on the profiled criterion too, against the general path (Newton on the Laplace engine)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.engines import lmm_profiled
from mixedglm.engines.lmm_profiled import ProfiledLMM
from mixedglm.engines.rules import make_rule
from mixedglm.errors import ConvergenceWarning, MixedGLMError
from mixedglm.models.multilevel import MemoryEngines, fit_multilevel

from refdata import load_reference, load_reference_data

CASES = {
    "penicillin_lmer_reml_crossed": ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    "pastes_lmer_reml_nested": ("pastes", "strength ~ 1 + (1 | batch/cask)"),
    "verbagg_lmer_reml_crossed_slope": (
        "verbagg",
        "resp ~ Anger + C(Gender) + C(btype) + C(situ) + (1 | id) + (1 + C(Gender) | item)",
    ),
}
NAMES = {
    "(Intercept)": "_cons",
    "GenderM": "C(Gender)[M]",
    "btypescold": "C(btype)[scold]",
    "btypeshout": "C(btype)[shout]",
    "situself": "C(situ)[self]",
    "cask:batch": "batch:cask",
}


@pytest.fixture(scope="module", params=list(CASES))
def fitted(request):
    data_name, formula = CASES[request.param]
    data = load_reference_data(data_name)
    res = mg.glmm(formula, data, family="gaussian", reml=True, nolog=True, quiet=True)
    return res, load_reference(request.param)


def test_reml_equals_lmer(fitted):
    res, ref = fitted
    assert res.method == "REML"
    assert res.loglik >= ref["loglik"] - 1e-9
    assert res.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    names = [NAMES.get(n, n) for n in np.atleast_1d(ref["fixef"]["names"])]
    np.testing.assert_allclose(res.params[names], ref["fixef"]["estimate"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res.bse[names], ref["fixef"]["se"], rtol=1e-4)
    assert math.exp(res.aux[0]) == pytest.approx(ref["sigma"], rel=1e-4)
    sd = res.sd()
    for vc in ref["varcomp"]:
        if vc["group"] == "Residual":
            continue
        factor = res.design.factor(NAMES.get(vc["group"], vc["group"]))
        shown = res.design.display[res.design.factors.index(factor)]
        rows = sd[(sd["group"] == shown) & (sd["kind"] == "sd")]
        terms = [NAMES.get(t, t) for t in np.atleast_1d(vc["terms"])]
        got = [rows.loc[f"sd({t})", "estimate"] for t in terms]
        np.testing.assert_allclose(got, np.atleast_1d(vc["sd"]), rtol=1e-4)
    assert res.aic == pytest.approx(ref["AIC"], abs=1e-3)
    text = str(res.summary())
    assert text.startswith("Mixed-effects REML regression")
    assert f"Log restricted-likelihood = {res.loglik:.8g}" in text
    assert "Integration method" not in text
    assert res.to_dict()["method"] == "REML"


def test_reml_random_effects_equal_lmer_ranef(fitted):
    res, ref = fitted
    for group, want in ref["ranef_first5"].items():
        frame = res.random_effects()[NAMES.get(group, group)]
        frame.index = frame.index.astype(str)  # VerbAgg's ids are numbers
        for term, modes in want["modes"].items():
            col = NAMES.get(term, term)
            # lmer labels nested levels cask:batch, ours batch:cask
            labels = [":".join(reversed(lv.split(":"))) for lv in want["levels"]]
            got = frame[col].reindex(labels if ":" in group else want["levels"])
            # lmer's theta is 3e-5 short of the optimum on VerbAgg: a mode near zero moves
            # by 2e-6 (its conditional SD is 0.06)
            np.testing.assert_allclose(got, modes, rtol=1e-4, atol=1e-5)
            se = frame[f"se({col})"].reindex(labels if ":" in group else want["levels"])
            np.testing.assert_allclose(se, want["cond_sd"][term], rtol=1e-4)


def _dense_loglik(design, theta_rel: np.ndarray, sigma: float, reml: bool) -> float:
    """-1/2 [log|S| + (log|X'S^-1X|) + r'S^-1 r] - n/2 log 2pi (REML: n - p and the X
    term), with ``S = sigma^2 (I + Z Lr Lr' Z')`` built densely."""
    base = design.base
    X, y = base.X, base.y
    n, p = X.shape
    cols, start = [], 0
    for f in design.factors:
        k = f.structure.n_theta
        lam = f.structure.lam(theta_rel[start : start + k])
        start += k
        Zf = np.zeros((n, f.n_levels * f.q))
        for a in range(f.q):
            Zf[np.arange(n), f.codes * f.q + a] = f.Z[:, a]
        cols.append(Zf @ np.kron(np.eye(f.n_levels), lam))
    A = np.hstack(cols)
    S = sigma**2 * (np.eye(n) + A @ A.T)
    Si = np.linalg.inv(S)
    xsx = X.T @ Si @ X
    beta = np.linalg.solve(xsx, X.T @ Si @ y)
    r = y - X @ beta
    out = -0.5 * (np.linalg.slogdet(S)[1] + r @ Si @ r + n * math.log(2 * math.pi))
    if reml:
        out += -0.5 * np.linalg.slogdet(xsx)[1] + 0.5 * p * math.log(2 * math.pi)
    return float(out)


@pytest.mark.parametrize("name", ["penicillin", "pastes"])
def test_profiled_criterion_equals_dense_computation(name):
    data_name, formula = {
        "penicillin": CASES["penicillin_lmer_reml_crossed"],
        "pastes": CASES["pastes_lmer_reml_nested"],
    }[name]
    data = load_reference_data(data_name)
    res = mg.glmm(formula, data, family="gaussian", reml=True, nolog=True, quiet=True)
    model = ProfiledLMM(res.design)
    rng = np.random.default_rng(3)
    for _ in range(3):
        theta_abs = res.params_all[res.n_beta : -1] * rng.uniform(0.5, 1.5, res.n_theta)
        log_sigma = float(res.aux[0]) + rng.uniform(-0.2, 0.2)
        sigma = math.exp(log_sigma)
        for reml in (True, False):
            want = _dense_loglik(res.design, theta_abs / sigma, sigma, reml)
            got = model.loglik_at(theta_abs, log_sigma, reml)
            assert got == pytest.approx(want, abs=1e-8)
    # the profiled maximum is the REML estimate: no nearby point is higher
    top = model.loglik(res.params_all[res.n_beta : -1] / math.exp(res.aux[0]), True)[0]
    assert top == pytest.approx(res.loglik, abs=1e-9)
    for step in np.eye(res.n_theta) * 1e-3:
        theta_rel = res.params_all[res.n_beta : -1] / math.exp(res.aux[0])
        assert model.loglik(theta_rel + step, True)[0] < top
        assert model.loglik(theta_rel - step, True)[0] < top


def test_profiled_ml_equals_the_laplace_engine():
    data = load_reference_data("penicillin")
    res = mg.glmm(CASES["penicillin_lmer_reml_crossed"][1], data, family="gaussian",
                  method="laplace", nolog=True, quiet=True)  # fmt: skip
    model = ProfiledLMM(res.design)
    theta_rel = res.params_all[res.n_beta : -1] / math.exp(res.aux[0])
    ll, st = model.loglik(theta_rel, False)
    assert ll == pytest.approx(res.loglik, abs=1e-8)
    np.testing.assert_allclose(st["beta"], res.params.to_numpy(), rtol=1e-7)


def test_reml_refusals_name_the_problem():
    data = load_reference_data("verbagg")
    with pytest.raises(MixedGLMError, match="reml=True is for linear"):
        mg.glmm("r2 ~ Anger + (1 | id) + (1 | item)", data, reml=True, nolog=True, quiet=True)
    with pytest.raises(MixedGLMError, match="vce= robust or cluster is not available"):
        mg.glmm("resp ~ Anger + (1 | id) + (1 | item)", data, family="gaussian", reml=True,
                vce="robust", nolog=True, quiet=True)  # fmt: skip
    data = data.assign(w=1.0)
    with pytest.raises(MixedGLMError, match="fweight"):
        mg.glmm("resp ~ Anger + (1 | id) + (1 | item)", data, family="gaussian", reml=True,
                fweight="w", nolog=True, quiet=True)  # fmt: skip


def _sim_crossed(seed: int, sd_b: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 600
    a, b = rng.integers(0, 40, n), rng.integers(0, 15, n)
    x = rng.normal(size=n)
    slope = rng.normal(0, 0.4, 40)
    y = 1 + 0.5 * x + rng.normal(0, 0.7, 40)[a] + slope[a] * x + rng.normal(0, sd_b, 15)[b]
    return pd.DataFrame({"y": y + rng.normal(0, 1.0, n), "x": x, "a": a, "b": b})


@pytest.mark.parametrize(("formula", "sd_b"), [
    ("y ~ x + (1 + x | a) + (1 | b)", 0.5),
    ("y ~ x + (1 | a) + (1 | b)", 0.0),  # b's variance at (or next to) zero
    ("y ~ x + (1 | b/a)", 0.5),  # nested: the default rule is quadrature (exact here too)
])  # fmt: skip
def test_ml_by_the_profiled_criterion_equals_the_laplace_engine(formula, sd_b):
    """A Gaussian model's ML fit runs on the profiled criterion; the general path (joint
    Laplace, exact for a Gaussian model, with Newton and its differenced Hessian) gives the
    same estimates, SEs and log-likelihood."""
    data = _sim_crossed(5, sd_b)
    res = mg.glmm(formula, data, family="gaussian", nolog=True, quiet=True)
    assert res.estimator == "ML" and res.opt.converged
    rule = make_rule("laplace", None, None)
    design = res.design
    slow = fit_multilevel(design, res.family, rule, engines=MemoryEngines(design, res.family))
    assert res.loglik == pytest.approx(slow.loglik, abs=1e-6)
    assert res.loglik >= slow.loglik - 1e-9
    np.testing.assert_allclose(res.params, slow.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.bse, slow.bse, rtol=1e-4)
    sd_new, sd_old = res.sd(), slow.sd()
    keep = sd_old["estimate"] > 1e-3  # a zero variance: both at the boundary, no SE
    np.testing.assert_allclose(
        sd_new.loc[keep, "estimate"], sd_old.loc[keep, "estimate"], rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(sd_new.loc[keep, "se"], sd_old.loc[keep, "se"], rtol=1e-3)
    for name, frame in res.random_effects().items():
        np.testing.assert_allclose(
            frame.to_numpy(), slow.random_effects()[name].to_numpy(), rtol=1e-4, atol=1e-5
        )


@pytest.mark.slow
@pytest.mark.parametrize("reml", [True, False])
def test_insteval_equals_lmer(reml):
    """lme4's own large crossed example (73,421 ratings, 2,972 students x 1,128 lecturers,
    28 department x service levels), REML and ML. lmer's ML ``vcov`` is the fixed effects'
    block alone, ``sigma^2 (R_X'R_X)^-1`` (as Stata's ``mixed``); ours is the inverse of the
    whole observed information (as ``meglm`` and the other families), 1.4e-3 larger for
    ``service`` here: lmer's figure is checked against the block computed at our estimates."""
    ref = load_reference(f"insteval_lmer_{'reml' if reml else 'ml'}_crossed")
    data = load_reference_data("insteval")
    res = mg.glmm("y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", data,
                  family="gaussian", reml=reml, nolog=True, quiet=True)  # fmt: skip
    assert res.loglik >= ref["loglik"] - 1e-9
    assert res.loglik == pytest.approx(ref["loglik"], abs=1e-5)
    names = ["_cons", "service"]
    np.testing.assert_allclose(res.params[names], ref["fixef"]["estimate"], rtol=1e-4)
    sd = res.sd()
    want = {v["group"]: v["sd"] for v in ref["varcomp"]}
    for group, shown in (("s", "s"), ("d", "d"), ("dept:service", "dept>service")):
        got = sd.loc[sd["group"] == shown, "estimate"].iloc[0]
        assert got == pytest.approx(want[group], rel=1e-4)
    assert math.exp(res.aux[0]) == pytest.approx(ref["sigma"], rel=1e-5)
    if reml:
        np.testing.assert_allclose(res.bse[names], ref["fixef"]["se"], rtol=1e-4)
        return
    model = ProfiledLMM(res.design)
    st = model.solve(res.params_all[res.n_beta : -1] / math.exp(res.aux[0]))
    block = math.exp(2 * res.aux[0]) * np.linalg.inv(st["rx"].T @ st["rx"])
    order = [list(res.params.index).index(n) for n in names]
    np.testing.assert_allclose(np.sqrt(np.diag(block))[order], ref["fixef"]["se"], rtol=1e-4)
    np.testing.assert_allclose(res.bse[names], ref["fixef"]["se"], rtol=2e-3)


def test_a_dense_block_too_large_falls_back_to_the_general_path(monkeypatch):
    """ML: the general engines (which split nested designs into their top clusters) fit
    what the profiled criterion's one dense block cannot hold; REML says why it cannot."""
    data = _sim_crossed(7, 0.5)
    formula = "y ~ x + (1 | a) + (1 | b)"
    fast = mg.glmm(formula, data, family="gaussian", nolog=True, quiet=True)
    monkeypatch.setattr(lmm_profiled, "MAX_REST", 10)  # b has 15 levels
    slow = mg.glmm(formula, data, family="gaussian", nolog=True, quiet=True)
    assert slow.opt.history and not fast.opt.history  # Newton's iterations, not COBYQA's
    assert slow.loglik == pytest.approx(fast.loglik, abs=1e-6)
    with pytest.raises(MixedGLMError, match="more than it handles"):
        mg.glmm(formula, data, family="gaussian", reml=True, nolog=True, quiet=True)


def test_non_convergence_is_reported():
    data = load_reference_data("verbagg")
    formula = "resp ~ Anger + C(Gender) + (1 | id) + (1 + C(Gender) | item)"
    with pytest.warns(ConvergenceWarning, match="evaluations of the profiled criterion"):
        res = mg.glmm(formula, data, family="gaussian", maxiter=1, nolog=True, quiet=True)
    assert not res.opt.converged
    res = mg.glmm(formula, data, family="gaussian", nolog=True, quiet=True)
    assert res.opt.converged
