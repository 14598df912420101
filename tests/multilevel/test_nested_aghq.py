"""Nested adaptive quadrature (``engines/nested_aghq.py``): the log-likelihood against a
brute-force nested Gauss-Hermite integral written here with numpy, the gradient and Hessian
against finite differences, the one-factor engine when the inner variance is zero,
convergence in the number of points, every family through the engine, and guImmun against
the published 12-point quadrature fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.design.multilevel import build_multilevel_design
from mixedglm.engines.nested_aghq import NestedAGHQEngine
from mixedglm.engines.rules import IntegrationRule, make_rule
from mixedglm.errors import MixedGLMError
from mixedglm.families import Family, get_family
from mixedglm.formula import parse_formula

from nested_data import brute_force_nested as _brute_force
from nested_data import simulate_nested as _sim
from refdata import load_reference_data

BERNOULLI = Family("bernoulli", "logit")


def _engine(formula: str, data: pd.DataFrame, family: Family, nagq: int = 7):
    design = build_multilevel_design(parse_formula(formula), data, family)
    return NestedAGHQEngine(design, family, make_rule("mvaghermite", nagq))


@pytest.mark.slow
@pytest.mark.parametrize("y,kind", [("yb", "bernoulli"), ("yp", "poisson")])
def test_loglik_equals_brute_force_nested_integral(y, kind):
    data = _sim()
    family = BERNOULLI if kind == "bernoulli" else get_family("poisson")
    x = np.array([0.5, 0.2, 0.8, 0.6])  # [x, _cons, sd(top), sd(top>mid)]
    want = _brute_force(data, y, kind, 0.2, 0.5, 0.8, 0.6)
    engine = _engine(f"{y} ~ x + (1 | top/mid)", data, family, nagq=20)
    assert engine.loglik(x) == pytest.approx(want, abs=1e-6)
    # Stata's default 7 points: close, not exact
    seven = _engine(f"{y} ~ x + (1 | top/mid)", data, family, nagq=7)
    assert abs(seven.loglik(x) - want) < 1e-3
    assert not np.any(seven.last_status)


def _fd_gradient(engine, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    eye = np.eye(x.size)
    return np.array([(engine.loglik(x + h * e) - engine.loglik(x - h * e)) / (2 * h) for e in eye])


def _fd_hessian(engine, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    eye = np.eye(x.size)
    cols = [(engine.gradient(x + h * e)[1] - engine.gradient(x - h * e)[1]) / (2 * h) for e in eye]
    return np.array(cols).T


GRADIENT_CASES = [
    ("yb ~ x + (1 | top/mid)", BERNOULLI, [0.5, 0.2, 0.8, 0.6]),
    (
        "yp ~ x + (1 + x | top) + (1 | top:mid)",
        get_family("poisson"),
        [0.5, 0.2, 0.7, 0.1, 0.3, 0.5],
    ),
    ("yb ~ x + (1 | top) + (1 + x || top:mid)", BERNOULLI, [0.5, 0.2, 0.8, 0.6, 0.4]),
]


@pytest.mark.parametrize("formula,family,x", GRADIENT_CASES)
def test_gradient_and_hessian_against_finite_differences(formula, family, x):
    x = np.asarray(x, dtype=float)
    engine = _engine(formula, _sim(), family)
    ev = engine.evaluate(x, 2)
    fd = _fd_gradient(engine, x)
    # the gradient is exact for the quadrature (the grids' movement included)
    np.testing.assert_allclose(ev.gradient, fd, rtol=1e-6, atol=1e-6)
    # the Hessian is the fixed-grid (Louis) one: exact up to the quadrature error, which
    # vanishes as the number of points grows
    many = _engine(formula, _sim(), family, nagq=20)
    ev20 = many.evaluate(x, 2)
    fd20 = _fd_hessian(many, x)
    np.testing.assert_allclose(ev20.hessian, fd20, rtol=1e-4, atol=1e-4)
    assert np.max(np.abs(ev.hessian - _fd_hessian(engine, x))) < 0.05 * np.max(np.abs(fd20))


@pytest.mark.slow
def test_hessian_terms_of_an_ancillary_parameter():
    """The leaf units' derivative pass (rows outer, nodes inner) with an ancillary
    parameter (negative binomial): the Louis Hessian with 20 points against differences of
    the exact gradient."""
    data = _family_data().iloc[:96]
    engine = _engine("yn ~ x + (1 | top/mid)", data, get_family("nbinomial"), nagq=20)
    x = np.array([0.5, 0.3, 0.6, 0.5, 0.4])
    ev = engine.evaluate(x, 2)
    np.testing.assert_allclose(ev.hessian, _fd_hessian(engine, x), rtol=1e-4, atol=1e-4)


def test_three_nested_factors_gradient_and_brute_force():
    """Four levels (three nested factors): exact gradient and the 2-factor integral when the
    innermost variance is zero."""
    rng = np.random.default_rng(4)
    data = _sim(seed=3, n_top=4, n_mid=3, per=6)
    data["low"] = data["mid"] * 2 + rng.integers(0, 2, len(data))
    engine = _engine("yb ~ x + (1 | top/mid/low)", data, BERNOULLI)
    x = np.array([0.5, 0.2, 0.8, 0.6, 0.5])
    ev = engine.evaluate(x, 1)
    np.testing.assert_allclose(ev.gradient, _fd_gradient(engine, x), rtol=1e-6, atol=1e-6)
    zero = np.array([0.5, 0.2, 0.8, 0.6, 0.0])
    two = _engine("yb ~ x + (1 | top/mid)", data, BERNOULLI, nagq=20)
    many = _engine("yb ~ x + (1 | top/mid/low)", data, BERNOULLI, nagq=20)
    want = _brute_force(data, "yb", "bernoulli", 0.2, 0.5, 0.8, 0.6)
    assert two.loglik(zero[:4]) == pytest.approx(want, abs=1e-6)
    assert many.loglik(zero) == pytest.approx(want, abs=1e-6)


def test_derivative_pass_reuses_the_childrens_grids(monkeypatch):
    """A parent's derivative pass takes its children's grids and node posteriors as its last
    pass left them (no placing pass): the same log-likelihood, gradient and Hessian as
    placing them again, for two and three nested factors."""
    rng = np.random.default_rng(4)
    data = _sim(seed=3, n_top=4, n_mid=3, per=6)
    data["low"] = data["mid"] * 2 + rng.integers(0, 2, len(data))
    cases = [
        ("yb ~ x + (1 | top/mid)", [0.5, 0.2, 0.8, 0.6]),
        ("yb ~ x + (1 | top/mid/low)", [0.5, 0.2, 0.8, 0.6, 0.5]),
    ]
    for formula, x in cases:
        reuse = _engine(formula, data, BERNOULLI)
        assert reuse._warm.wl.size > 0
        with monkeypatch.context() as m:
            m.setattr("mixedglm.engines.nested_aghq.MAX_PLACED", 0)
            again = _engine(formula, data, BERNOULLI)
        assert again._warm.wl.size == 0
        for point in (np.asarray(x), np.asarray(x) + 0.05):  # cold grids, then warm ones
            a, b = reuse.evaluate(point, 2), again.evaluate(point, 2)
            assert a.loglik == pytest.approx(b.loglik, abs=1e-10)
            np.testing.assert_allclose(a.gradient, b.gradient, rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(a.hessian, b.hessian, rtol=1e-9, atol=1e-10)


def test_zero_inner_variance_equals_one_factor_engine():
    data = _sim(seed=7, n_top=10)
    one = mg.glmm("yb ~ x + (1 | top)", data, nolog=True, quiet=True)
    x = np.concatenate([one.params_all, [0.0]])
    engine = _engine("yb ~ x + (1 | top/mid)", data, BERNOULLI)
    assert engine.loglik(x) == pytest.approx(one.loglik, abs=1e-8)


def test_contributions_sum_to_the_totals_and_posterior_means():
    data = _sim()
    engine = _engine("yb ~ x + (1 | top/mid)", data, BERNOULLI)
    x = np.array([0.5, 0.2, 0.8, 0.6])
    contrib = engine.contributions(x)
    ev = engine.evaluate(x, 1)
    assert contrib.loglik.shape == (6,) and contrib.score.shape == (6, 4)
    assert contrib.loglik.sum() == pytest.approx(ev.loglik, abs=1e-10)
    np.testing.assert_allclose(contrib.score.sum(axis=0), ev.gradient, atol=1e-10)
    post = engine.posterior(x)
    assert set(post) == {"top", "top:mid"} and post["top:mid"].mean.shape == (18, 1)
    # the posterior mean of a top effect by brute force on a fine grid
    t, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / np.sqrt(2 * np.pi)
    dg = data[data["top"] == 0]
    log_inner = np.zeros(60)
    inner_means = []
    for _, dm in dg.groupby("mid"):
        yy = dm["yb"].to_numpy()
        eta = 0.2 + 0.5 * dm["x"].to_numpy()[None, None, :] + 0.8 * t[:, None, None]
        eta = eta + 0.6 * t[None, :, None]
        lik = np.exp((yy * eta - np.logaddexp(0.0, eta)).sum(axis=-1))  # (top node, mid node)
        log_inner += np.log(lik @ w)
        inner_means.append((lik * t[None, :]) @ w / (lik @ w))  # E[u_mid | u_top, data]
    post_top = np.exp(log_inner) * w
    post_top /= post_top.sum()
    assert post["top"].mean[0, 0] == pytest.approx(post_top @ t, abs=1e-4)
    assert post["top:mid"].mean[0, 0] == pytest.approx(post_top @ inner_means[0], abs=1e-4)
    modes = engine.posterior(x, "modes")
    assert modes["top"].kind == "modes"


def test_fitted_loglik_settles_as_points_grow():
    data = _sim(seed=2, n_top=30, n_mid=4, per=3)
    fits = [
        mg.glmm("yb ~ x + (1 | top/mid)", data, nagq=n, nolog=True, quiet=True) for n in (7, 12, 20)
    ]
    assert all(f.opt.converged and f.method == "mvaghermite" for f in fits)
    d1 = abs(fits[1].loglik - fits[0].loglik)
    d2 = abs(fits[2].loglik - fits[1].loglik)
    assert d2 < d1 and d2 < 1e-3
    assert "Integration pts.  =         12" in str(fits[1].summary())


def test_grids_are_placed_to_statas_tolerance_at_most():
    """Every nested grid is placed again for every node of its parents: the fixed point to
    Stata's 1e-8 posterior SDs (not the one-factor engine's 1e-10), or a looser rule's."""
    design = build_multilevel_design(parse_formula("yb ~ x + (1 | top/mid)"), _sim(), BERNOULLI)
    rule = make_rule("mvaghermite", 7)
    assert rule.tolerance == 1e-10
    assert NestedAGHQEngine(design, BERNOULLI, rule).tree.tol == 1e-8
    loose = IntegrationRule("mvaghermite", 7, tolerance=1e-3)
    assert NestedAGHQEngine(design, BERNOULLI, loose).tree.tol == 1e-3
    assert NestedAGHQEngine(design, BERNOULLI, rule, tolerance=1e-12).tree.tol == 1e-12


@pytest.mark.parametrize(
    "formula,x",
    [
        ("yb ~ x + (1 + x | top) + (1 | top:mid)", [0.5, 0.2, 0.7, 0.1, 0.3, 0.6]),
        ("yb ~ x + (1 | top) + (1 + x || top:mid)", [0.5, 0.2, 0.8, 0.6, 0.4]),
    ],
)
def test_levels_with_fewer_effects_than_another_are_adaptive(formula, x):
    """A level with fewer random effects than another factorises its own block of the
    work arrays (a padded block is not positive definite: every unit's mean-variance grid
    and mode search failed, the grid fell back to the standard normal one, 4e-3 off with 7
    points): no fallback, 7 points within 1e-5 of 20, mcaghermite as well."""
    x = np.asarray(x, dtype=float)
    data = _sim()
    want = _engine(formula, data, BERNOULLI, nagq=20).loglik(x)
    seven = _engine(formula, data, BERNOULLI)
    assert abs(seven.loglik(x) - want) < 1e-5
    assert not np.any(seven.last_status)
    design = build_multilevel_design(parse_formula(formula), data, BERNOULLI)
    mc = NestedAGHQEngine(design, BERNOULLI, make_rule("mcaghermite", 7))
    assert abs(mc.loglik(x) - want) < 1e-5


def test_the_fit_ends_on_a_step_without_derivatives(monkeypatch):
    """Newton's last step, which its contraction predicts to converge, is evaluated for
    the log-likelihood only: the reported log-likelihood is the engine's at the estimates,
    and they are its maximum."""
    orders: list[int] = []
    evaluate = NestedAGHQEngine.evaluate

    def recorded(self, params, order):
        orders.append(order)
        return evaluate(self, params, order)

    monkeypatch.setattr(NestedAGHQEngine, "evaluate", recorded)
    res = mg.glmm("yb ~ x + (1 | top/mid)", _sim(), nolog=True, quiet=True)
    assert res.opt.converged and orders[-1] == 0 and orders.count(0) == 1
    ev = evaluate(NestedAGHQEngine(res.design, res.family, res.rule), res.params_all, 2)
    assert ev.loglik == pytest.approx(res.loglik, abs=1e-9)
    assert ev.gradient @ np.linalg.solve(-ev.hessian, ev.gradient) < 1e-9


def test_routing_and_refusals():
    data = _sim(seed=5, n_top=12)
    res = mg.glmm("yb ~ x + (1 | top/mid)", data, nolog=True, quiet=True)
    assert res.method == "mvaghermite" and res.nagq == 7
    text = str(res.summary())
    assert "Integration method: mvaghermite" in text and "Integration pts.  =          7" in text
    lap = mg.glmm("yb ~ x + (1 | top/mid)", data, method="laplace", nolog=True, quiet=True)
    assert lap.method == "laplace" and "Integration method:     Laplace" in str(lap.summary())
    design = build_multilevel_design(parse_formula("yb ~ x + (1 | top/mid)"), data, BERNOULLI)
    with pytest.raises(MixedGLMError, match="mvaghermite"):
        NestedAGHQEngine(design, BERNOULLI, make_rule("laplace"))
    # mcaghermite is accepted (tests/multilevel/test_nested_rules.py); one point is not
    with pytest.raises(MixedGLMError, match="mcaghermite needs at least 2 points"):
        NestedAGHQEngine(design, BERNOULLI, IntegrationRule("mcaghermite", 1))


def test_one_interaction_factor_equals_the_one_factor_fit():
    """``(1 | a:b)`` alone goes through the nested engine with one level: the same fit as the
    one-factor engine on the combined column."""
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {"a": rng.integers(0, 10, 400), "b": rng.integers(0, 4, 400), "x": rng.normal(size=400)}
    )
    u = rng.normal(0, 0.8, 40)[data["a"] * 4 + data["b"]]
    data["y"] = rng.binomial(1, 1 / (1 + np.exp(-(0.3 * data["x"] + u))))
    data["ab"] = data["a"] * 4 + data["b"]
    nested = mg.glmm("y ~ x + (1 | a:b)", data, nolog=True, quiet=True)
    one = mg.glmm("y ~ x + (1 | ab)", data, nolog=True, quiet=True)
    assert nested.method == "mvaghermite"
    assert nested.loglik == pytest.approx(one.loglik, abs=1e-7)
    np.testing.assert_allclose(nested.params, one.params, atol=1e-5)


def _family_data(seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_top, n_mid, per = 25, 4, 4
    top = np.repeat(np.arange(n_top), n_mid * per)
    mid = np.repeat(np.arange(n_top * n_mid), per)
    x = rng.normal(size=top.size)
    eta = 0.3 + 0.5 * x + rng.normal(0, 0.6, n_top)[top] + rng.normal(0, 0.5, n_top * n_mid)[mid]
    mu = np.exp(eta)
    expo = rng.uniform(0.5, 2.0, top.size)
    latent = eta + rng.logistic(size=top.size)
    trials = rng.integers(1, 6, top.size)
    return pd.DataFrame(
        {
            "top": top,
            "mid": mid,
            "x": x,
            "n": trials,
            "yk": rng.binomial(trials, 1 / (1 + np.exp(-eta))),
            "yp": rng.poisson(mu * expo),
            "expo": expo,
            "yg": eta + rng.normal(0, 0.5, top.size),
            "yn": rng.negative_binomial(2, 2 / (2 + mu)),
            "ygam": rng.gamma(3.0, mu / 3.0),
            "yo": np.digitize(latent, [-0.5, 0.8, 2.0]),
        }
    )


FAMILY_CASES = [
    ("yk ~ x + (1 | top/mid)", {"family": "binomial", "trials": "n"}),
    ("yp ~ x + (1 | top/mid)", {"family": "poisson", "exposure": "expo"}),
    ("yg ~ x + (1 | top/mid)", {"family": "gaussian"}),
    ("yn ~ x + (1 | top/mid)", {"family": "nbinomial"}),
    ("ygam ~ x + (1 | top/mid)", {"family": "gamma"}),
    ("yo ~ x + (1 | top/mid)", {"family": "ologit"}),
    ("yk ~ x + (1 | top/mid)", {"family": "binomial", "link": "probit", "trials": "n"}),
]


@pytest.mark.slow
@pytest.mark.parametrize("formula,options", FAMILY_CASES)
def test_every_family_fits_through_the_engine(formula, options):
    data = _family_data()
    res = mg.glmm(formula, data, nolog=True, quiet=True, **options)
    assert res.method == "mvaghermite" and res.opt.converged
    assert res.loglik >= res.loglik_pooled - 1e-6
    design, family = res.design, res.family
    engine = NestedAGHQEngine(design, family, res.rule)
    ev = engine.evaluate(res.params_all, 1)
    assert ev.loglik == pytest.approx(res.loglik, abs=1e-8)
    assert np.max(np.abs(ev.gradient)) < 1e-3
    # differences of the log-likelihood over 1e-5 need grids placed tighter than the fit's
    # 1e-8: their history moves it by about 1e-10
    tight = NestedAGHQEngine(design, family, res.rule, tolerance=1e-12)
    np.testing.assert_allclose(
        ev.gradient, _fd_gradient(tight, res.params_all), rtol=1e-5, atol=1e-5
    )
    assert np.all(np.isfinite(res.bse))


GUIMMUN = (
    "immun ~ kid2p + mom25p + C(ord) + C(ethn) + C(momEd) + C(husEd) + momWork + rural"
    " + pcInd81 + (1 | comm/mom)"
)


@pytest.mark.slow
def test_guimmun_three_levels_by_quadrature():
    """Against Rodriguez's 12-point quadrature fit (lr3, http://data.princeton.edu/pop510/
    maxlik.html: logL -1323.9618, log sigma_mom 0.839785, log sigma_comm 0.024317,
    kid2p 1.716657, _cons -1.233400); the Laplace fit is far lower (-1355.70, lme4's)."""
    data = load_reference_data("guimmun")
    seven = mg.glmm(GUIMMUN, data, nolog=True, quiet=True)
    twelve = mg.glmm(GUIMMUN, data, nagq=12, nolog=True, quiet=True)
    assert seven.opt.converged and twelve.opt.converged
    assert twelve.loglik == pytest.approx(-1323.9618, abs=5e-3)
    sd = twelve.sd()["estimate"].to_numpy()
    np.testing.assert_allclose(np.log(sd), [0.024317, 0.839785], atol=2e-3)
    assert twelve.params["kid2p"] == pytest.approx(1.716657, abs=2e-3)
    assert twelve.params["_cons"] == pytest.approx(-1.233400, abs=5e-3)
    assert abs(seven.loglik - twelve.loglik) < 0.1
    np.testing.assert_allclose(seven.params, twelve.params, atol=1e-2)
    assert twelve.loglik > -1355.70 + 25  # well above lme4's Laplace
    effects = twelve.random_effects()
    assert effects["comm:mom"].shape == (1595, 2) and np.all(effects["comm"]["se(_cons)"] > 0)


def test_laplace_start_steps_on_score_outer_products_with_many_top_clusters(monkeypatch):
    """With many top-level clusters the Laplace start's Newton steps use the clusters' score
    outer products (no differenced Hessian); with few, the differenced Hessian. The
    quadrature fit that follows is the same either way."""
    from mixedglm.engines.laplace_joint import JointLaplaceEngine
    from mixedglm.optim import outer

    asked: list[int] = []
    original = JointLaplaceEngine.newton_hessian

    def counted(self, params):
        asked.append(1)
        return original(self, params)

    monkeypatch.setattr(JointLaplaceEngine, "newton_hessian", counted)
    data = _sim(seed=4, n_top=60, n_mid=2, per=3)
    kw = {"nagq": 5, "nolog": True, "quiet": True}
    bhhh = mg.glmm("yb ~ x + (1 | top/mid)", data, **kw)
    assert not asked and bhhh.converged
    monkeypatch.setattr(outer, "MIN_CLUSTERS", 1000)
    differenced = mg.glmm("yb ~ x + (1 | top/mid)", data, **kw)
    assert asked and differenced.converged
    # both converged (scaled gradient < 1e-9) from different starts: the same optimum to a
    # small fraction of a standard error
    se = np.sqrt(np.diag(differenced.cov_all))
    assert np.all(np.abs(bhhh.params_all - differenced.params_all) < 1e-3 * se)
    assert bhhh.loglik == pytest.approx(differenced.loglik, abs=1e-6)


def test_sample_terms_are_the_clusters_contributions():
    """The sampled top-level units' scores and Hessian sum are those of a whole evaluation
    restricted to them (with every unit: the whole evaluation's)."""
    engine = _engine("yb ~ x + (1 | top/mid)", _sim(), BERNOULLI)
    x = np.array([0.5, 0.2, 0.8, 0.6])
    ev = engine.evaluate(x, 2)
    contrib = engine.contributions(x)
    codes, score, hess = engine.sample_terms(x, np.arange(6))
    np.testing.assert_array_equal(codes, np.arange(6))
    np.testing.assert_allclose(score, contrib.score, atol=1e-10)
    np.testing.assert_allclose(hess, ev.hessian, atol=1e-10)
    codes, score, _ = engine.sample_terms(x, np.array([1, 4]))
    np.testing.assert_allclose(score, contrib.score[[1, 4]], atol=1e-10)


def test_sampled_first_step_lands_on_the_same_optimum(monkeypatch):
    """With many top-level clusters the quadrature starts from the Laplace estimates moved
    by a Newton step estimated on a sample of the clusters (the Laplace scores as control
    variates): closer to the optimum than the Laplace estimates, and the fit converges to
    the same optimum as from the Laplace estimates themselves."""
    from mixedglm.models import multilevel

    data = _sim(seed=8, n_top=400, n_mid=3, per=4)
    starts: list[np.ndarray] = []
    evaluate = NestedAGHQEngine.evaluate

    def first(self, params, order):
        if not starts:
            starts.append(np.array(params))
        return evaluate(self, params, order)

    monkeypatch.setattr(NestedAGHQEngine, "evaluate", first)
    sampled = mg.glmm("yb ~ x + (1 | top/mid)", data, nolog=True, quiet=True)
    monkeypatch.setattr(multilevel, "SAMPLE_MIN", 10**9)
    starts_sampled = starts.pop()
    plain = mg.glmm("yb ~ x + (1 | top/mid)", data, nolog=True, quiet=True)
    laplace_start = starts.pop()
    assert sampled.converged and plain.converged
    se = np.sqrt(np.diag(plain.cov_all))
    assert np.all(np.abs(sampled.params_all - plain.params_all) < 1e-3 * se)
    assert sampled.loglik == pytest.approx(plain.loglik, abs=1e-7)
    # the standard errors: from the Hessian of the iterate before the last step (taken
    # without derivatives), each fit's within 1e-3 of those of the optimum's Hessian
    ev = evaluate(NestedAGHQEngine(plain.design, plain.family, plain.rule), plain.params_all, 2)
    exact = np.sqrt(np.diag(np.linalg.inv(-ev.hessian)))
    for res in (sampled, plain):
        np.testing.assert_allclose(np.sqrt(np.diag(res.cov_all)), exact, rtol=1e-3)
    # the sampled step moved the start most of the way from the Laplace estimates
    far = np.abs(laplace_start - plain.params_all) / se
    near = np.abs(starts_sampled - plain.params_all) / se
    assert np.max(near) < 0.2 * np.max(far)
    assert sampled.opt.evaluations <= plain.opt.evaluations


def test_the_posterior_means_come_from_the_last_evaluation(monkeypatch):
    """A fit's last evaluation (at the estimates) stores the posterior means: no pass of
    their own, the same means as placing the grids again."""
    orders: list[int] = []
    run = NestedAGHQEngine._run

    def counted(self, params, order, warm=None):
        orders.append(order)
        return run(self, params, order, warm)

    monkeypatch.setattr(NestedAGHQEngine, "_run", counted)
    res = mg.glmm("yb ~ x + (1 | top/mid)", _sim(), nolog=True, quiet=True)
    n_runs = len(orders)
    assert orders[-1] == 0 and n_runs == res.opt.evaluations
    fresh = NestedAGHQEngine(res.design, res.family, res.rule).posterior(res.params_all)
    for name, post in fresh.items():
        np.testing.assert_allclose(res.posterior[name].mean, post.mean, atol=1e-7)
        np.testing.assert_allclose(res.posterior[name].cov, post.cov, atol=1e-7)
