"""The joint Laplace engine on its own: exact gradient against finite differences (nested,
crossed, slopes, families with ancillary parameters), one factor equal to the single-factor
Laplace engine, per-top-cluster contributions, the gaussian case equal to the exact
marginal likelihood, and conditional modes/variances against a dense brute-force solve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from mixedglm.design.multilevel import build_multilevel_design
from mixedglm.engines.aghq import AGHQObjective
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.engines.laplace_joint import JointLaplaceEngine
from mixedglm.families import Family, get_family
from mixedglm.formula import parse_formula

from refdata import load_reference_data


def _sim(seed: int = 1, n_a: int = 12, n_b: int = 7, per: int = 4) -> pd.DataFrame:
    """Crossed a x b with replicates, plus c nested in a."""
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(n_a), n_b * per)
    b = np.tile(np.repeat(np.arange(n_b), per), n_a)
    c = a * 3 + rng.integers(0, 3, a.size)
    x = rng.normal(size=a.size)
    eta = 0.3 + 0.5 * x + rng.normal(0, 0.8, n_a)[a] + rng.normal(0, 0.5, n_b)[b]
    eta += rng.normal(0, 0.4, 3 * n_a)[c] + rng.normal(0, 0.3, n_b)[b] * x
    return pd.DataFrame(
        {
            "a": a,
            "b": b,
            "c": c,
            "x": x,
            "yb": rng.binomial(1, 1 / (1 + np.exp(-eta))),
            "yp": rng.poisson(np.exp(0.5 * eta)),
            "yg": eta + rng.normal(0, 0.7, a.size),
            "yn": rng.negative_binomial(3, 3 / (3 + np.exp(0.5 * eta))),
        }
    )


def _engine(formula: str, data: pd.DataFrame, family: Family):
    design = build_multilevel_design(parse_formula(formula), data, family)
    return design, JointLaplaceEngine(design, family)


def _fd_gradient(engine, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    out = np.empty_like(x)
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = h
        out[k] = (engine.loglik(x + e) - engine.loglik(x - e)) / (2 * h)
    return out


BERNOULLI = Family("bernoulli", "logit")
CASES = [
    ("yb ~ x + (1 | a) + (1 | b)", BERNOULLI, 0),
    ("yb ~ x + (1 | a/c)", BERNOULLI, 0),
    ("yp ~ x + (1 | a) + (1 + x | b)", get_family("poisson"), 0),
    ("yp ~ x + (1 | a) + (1 | a:c) + (1 | b)", get_family("poisson"), 0),
    ("yg ~ x + (1 | a) + (1 | b)", get_family("gaussian"), 1),
    ("yn ~ x + (1 | b) + (1 | a)", get_family("nbinomial"), 1),
    ("yb ~ x + (1 + x || a) + (1 | b)", Family("bernoulli", "probit"), 0),
]


@pytest.mark.parametrize("formula,family,n_aux", CASES)
def test_gradient_is_exact(formula, family, n_aux):
    data = _sim()
    _, engine = _engine(formula, data, family)
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [
            [0.2, 0.4],
            0.3 + 0.4 * rng.random(engine.n_theta),
            np.full(n_aux, -0.3),
        ]
    )
    ll, grad = engine.gradient(x)
    assert np.isfinite(ll)
    np.testing.assert_allclose(grad, _fd_gradient(engine, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("formula,family,n_aux", CASES)
def test_forward_hessian_equals_central_differences(formula, family, n_aux):
    """Forward differences of the exact gradient at 1e-6 (``fd_hessian``: the auxiliary
    parameters' columns of the crossed fit's Newton Hessian) equal central differences at
    1e-5 up to their ``O(h)`` error."""
    from mixedglm.engines import laplace_hessian

    data = _sim()
    _, engine = _engine(formula, data, family)
    rng = np.random.default_rng(4)
    x = np.concatenate([[0.2, 0.4], 0.3 + 0.4 * rng.random(engine.n_theta), np.full(n_aux, -0.3)])
    central = laplace_hessian.central_hessian(engine, x, 1e-5)
    forward = engine.fd_hessian(x)
    scale = np.max(np.abs(central))
    np.testing.assert_allclose(forward, central, rtol=1e-3, atol=1e-5 * scale)
    assert engine.loglik(x) == engine.gradient(x)[0]  # back at x


def test_covariance_hessian_equals_central_differences_at_the_old_step():
    """At a crossed fit's optimum the covariance's Hessian (forward differences at 1e-7,
    each moved point's modes found in one factorisation) and its standard errors equal
    those from central differences at 1e-5 (the step before): measured 1.6e-6 and 1.4e-7."""
    import mixedglm as mg
    from mixedglm.engines import laplace_hessian

    data = _sim(seed=2, n_a=30, n_b=12, per=3)
    res = mg.glmm("yb ~ x + (1 | a) + (1 | b)", data, method="laplace", nolog=True, quiet=True)
    _, engine = _engine("yb ~ x + (1 | a) + (1 | b)", data, BERNOULLI)
    assert engine.forward_covariance  # crossed
    central = laplace_hessian.central_hessian(engine, res.params_all, 1e-5)
    central = 0.5 * (central + central.T)
    se_central = np.sqrt(np.diag(np.linalg.inv(-central)))
    np.testing.assert_allclose(np.sqrt(np.diag(res.cov_all)), se_central, rtol=1e-6)
    np.testing.assert_allclose(engine.exact_hessian(res.params_all), central, rtol=1e-5)
    engine.forward_covariance = False  # central differences at 1e-6 (nested fits')
    np.testing.assert_allclose(engine.exact_hessian(res.params_all), central, rtol=1e-6)


def test_nested_fits_keep_central_differences_for_the_covariance():
    """Nested factors (also fitted on Dask, whose standard errors must equal these) keep
    the central differences; crossed ones take forward differences."""
    data = _sim()
    assert not _engine("yb ~ x + (1 | a/c)", data, BERNOULLI)[1].forward_covariance
    assert _engine("yb ~ x + (1 | a) + (1 | b)", data, BERNOULLI)[1].forward_covariance


@pytest.mark.parametrize("formula,family,n_aux", CASES[:3])
def test_predicted_modes_are_first_order_exact(formula, family, n_aux):
    """The mode at moved parameters is ``u^ + h du^/dparam`` up to ``O(h^2)`` (what the
    differenced gradients start PIRLS from); without the prediction the error is ``O(h)``."""
    data = _sim()
    _, engine = _engine(formula, data, family)
    x = np.concatenate([[0.2, 0.4], np.full(engine.n_theta, 0.5), np.full(n_aux, -0.3)])
    base, _, _, _ = engine._at(x)
    u0 = base["u"].copy()
    h = 1e-3
    for r in range(engine.n_beta + engine.n_theta):
        move = engine._mode_derivative(base, r)
        moved = x.copy()
        moved[r] += h
        u1 = engine._at(moved)[0]["u"].copy()
        first_order = np.max(np.abs(u1 - u0 - h * move))
        assert np.max(np.abs(u1 - u0)) > 1e-5  # the mode moves with the parameter
        assert first_order < 0.02 * np.max(np.abs(u1 - u0))
        engine._at(x)


def test_one_factor_equals_single_factor_laplace(contraception):
    """With one (interaction) factor the joint engine is the single-factor Laplace."""
    data = contraception.assign(one=1)
    _, engine = _engine("use ~ age + urban + (1 + urban | district:one)", data, BERNOULLI)
    arrays_design = build_multilevel_design(
        parse_formula("use ~ age + urban + (1 + urban | district:one)"), data, BERNOULLI
    )
    order = np.argsort(arrays_design.factors[0].codes, kind="stable")
    from mixedglm.engines.aghq import ClusterArrays

    f = arrays_design.factors[0]
    base = arrays_design.base
    sizes = np.bincount(f.codes)
    arrays = ClusterArrays(
        y=base.y[order],
        trials=base.trials[order],
        offset=base.offset[order],
        X=np.ascontiguousarray(base.X[order]),
        Z=np.ascontiguousarray(f.Z[order]),
        starts=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
    )
    single = AGHQObjective(
        arrays, BERNOULLI, CovarianceStructure("unstructured", f.structure.columns), nagq=1
    )
    x = np.array([0.01, 0.6, -0.9, 0.5, -0.3, 0.4])
    assert engine.loglik(x) == pytest.approx(single.loglik(x), abs=1e-9)
    np.testing.assert_allclose(engine.gradient(x)[1], single.gradient(x)[1], atol=1e-7)


def test_contributions_sum_to_the_totals_per_top_cluster():
    data = _sim(seed=5)
    design, engine = _engine("yp ~ x + (1 | a/c)", data, get_family("poisson"))
    assert design.nested and design.n_top == 12
    x = np.array([0.1, 0.3, 0.5, 0.4])
    contrib = engine.contributions(x)
    assert contrib.loglik.shape == (12,)
    assert contrib.score.shape == (12, 4)
    ll, grad = engine.gradient(x)
    assert contrib.loglik.sum() == pytest.approx(ll, abs=1e-9)
    np.testing.assert_allclose(contrib.score.sum(axis=0), grad, atol=1e-9)
    # each top cluster on its own is a model of its own: its Laplace log-likelihood alone
    one = data[data["a"] == 4]
    sub = build_multilevel_design(
        parse_formula("yp ~ x + (1 | a/c)"),
        pd.concat([one, data[data["a"] == 5]]),
        get_family("poisson"),
    )
    both = JointLaplaceEngine(sub, get_family("poisson")).contributions(x).loglik
    np.testing.assert_allclose(both, contrib.loglik[[4, 5]], atol=1e-9)


def test_gaussian_laplace_is_the_exact_marginal_likelihood():
    """Crossed gaussian: the Laplace approximation is exact; compare with the dense
    multivariate normal log-density of y."""
    data = _sim(seed=2, n_a=6, n_b=5, per=2)
    design, engine = _engine("yg ~ x + (1 | a) + (1 + x | b)", data, get_family("gaussian"))
    x = np.array([0.2, 0.4, 0.7, 0.5, 0.2, 0.3, np.log(0.8)])
    beta, theta, aux = engine.split(x)
    n = design.n_obs
    cov = np.exp(2 * aux[0]) * np.eye(n)
    for k, f in enumerate(design.factors):
        lam = f.structure.lam(engine.theta_of(theta, k))
        zb = np.zeros((n, f.n_levels * f.q))
        for r in range(f.q):
            zb[np.arange(n), f.codes * f.q + r] = f.Z[:, r]
        big = np.kron(np.eye(f.n_levels), lam)
        zl = zb @ big
        cov += zl @ zl.T
    resid = design.base.y - design.base.X @ beta
    _, logdet = np.linalg.slogdet(cov)
    exact = -0.5 * (n * np.log(2 * np.pi) + logdet + resid @ np.linalg.solve(cov, resid))
    assert engine.loglik(x) == pytest.approx(exact, abs=1e-8)


def test_modes_and_conditional_variances_equal_a_dense_solve():
    data = _sim(seed=4, n_a=5, n_b=4, per=2)
    design, engine = _engine("yb ~ x + (1 | a) + (1 | b)", data, BERNOULLI)
    x = np.array([0.1, 0.5, 0.9, 0.6])
    post = engine.posterior(x)
    # dense: maximise sum l - |u|^2/2 over all 9 effects
    beta, theta = x[:2], x[2:]
    fa, fb = design.factors
    xb = design.base.X @ beta
    y = design.base.y

    def neg(u):
        eta = xb + theta[0] * u[fa.codes] + theta[1] * u[5 + fb.codes]
        return -(np.sum(y * eta - np.logaddexp(0, eta)) - 0.5 * u @ u)

    sol = optimize.minimize(neg, np.zeros(9), method="BFGS", options={"gtol": 1e-10})
    eta = xb + theta[0] * sol.x[fa.codes] + theta[1] * sol.x[5 + fb.codes]
    mu = 1 / (1 + np.exp(-eta))
    A = np.zeros((design.n_obs, 9))
    A[np.arange(design.n_obs), fa.codes] = theta[0]
    A[np.arange(design.n_obs), 5 + fb.codes] = theta[1]
    H = A.T @ (A * (mu * (1 - mu))[:, None]) + np.eye(9)
    hinv = np.linalg.inv(H)
    np.testing.assert_allclose(post["a"].mean[:, 0], sol.x[:5], atol=1e-6)
    np.testing.assert_allclose(post["b"].mean[:, 0], sol.x[5:], atol=1e-6)
    np.testing.assert_allclose(post["a"].cov[:, 0, 0], np.diag(hinv)[:5], rtol=1e-6)
    np.testing.assert_allclose(post["b"].cov[:, 0, 0], np.diag(hinv)[5:], rtol=1e-6)


def test_grouseticks_three_factor_design_is_nested():
    data = load_reference_data("grouseticks")
    design = build_multilevel_design(
        parse_formula("TICKS ~ HEIGHT_s + (1 | LOCATION/BROOD) + (1 | INDEX)"),
        data,
        get_family("poisson"),
    )
    assert design.nested
    assert [f.name for f in design.factors] == ["LOCATION", "LOCATION:BROOD", "INDEX"]
    assert design.display == ("LOCATION", "LOCATION>BROOD", "LOCATION>BROOD>INDEX")


def test_schur_complement_on_threads_equals_one_thread(monkeypatch):
    """The crossed design's Schur complement split over the thread pool (each share in its
    own copy, added at the end) gives the log-likelihood and gradient of one thread."""
    import mixedglm.engines.laplace_joint as lj

    data = _sim(n_a=30, n_b=12, per=3)
    _, engine = _engine("yb ~ x + (1 | a) + (1 | b)", data, BERNOULLI)
    x = np.array([0.2, 0.4, 0.7, 0.5])
    monkeypatch.setattr(lj, "use_threads", lambda cost: False)
    ll1, g1 = engine.gradient(x)
    calls = []

    def threads(cost):
        calls.append(cost.size)
        return True

    monkeypatch.setattr(lj, "use_threads", threads)
    engine.forget()
    ll2, g2 = engine.gradient(x)
    assert calls  # the threaded path ran
    assert abs(ll2 - ll1) < 1e-9 * abs(ll1)
    np.testing.assert_allclose(g2, g1, rtol=1e-8, atol=1e-10)


def test_blockwise_factorisation_equals_dense_linear_algebra():
    """Schur complement, its Cholesky factor and inverse, and the selected inverse (with
    two effects per block level, so that every kernel's loops over ``q1`` run) against
    ``H = A' W A + I`` built densely and inverted by numpy."""
    from mixedglm.engines import laplace_kernels as kern

    data = _sim(seed=5)
    _, engine = _engine("yb ~ x + (1 + x | a) + (1 | b)", data, BERNOULLI)
    assert engine.q1 == 2 and engine.m == 7
    x = np.array([0.1, 0.5, 0.8, 0.2, 0.4, 0.6])
    st, a, _, _ = engine._at(x)
    fac = st["fac"]
    A = np.zeros((a.shape[0], engine.n_u))
    np.add.at(A, (np.arange(a.shape[0])[:, None], engine.pos), a)
    H = A.T @ (A * st["w"][:, None]) + np.eye(engine.n_u)
    hinv = np.linalg.inv(H)
    n1 = engine.g1 * engine.q1
    logdet = np.sum(fac["logdet_d"]) + np.sum(fac["logdet_s"])
    assert logdet == pytest.approx(np.linalg.slogdet(H)[1], rel=1e-12)
    sinv = engine._sinv(fac)
    np.testing.assert_allclose(sinv.reshape(7, 7), hinv[n1:, n1:], rtol=1e-10)
    P, H11 = np.empty(fac["F"].shape[0]), np.empty_like(fac["Dinv"])
    kern.selected_inverse(
        engine.q1, engine.kptr, engine.kpos, fac["Dinv"], fac["F"], sinv, engine.layout,
        P, H11, 0, engine.g1,
    )  # fmt: skip
    for g in range(engine.g1):
        rows = slice(g * 2, g * 2 + 2)
        np.testing.assert_allclose(H11[g], hinv[rows, rows], rtol=1e-10)
        k = engine.kpos[engine.kptr[g] : engine.kptr[g + 1]]
        block = P[engine.kptr[g] * 2 : engine.kptr[g + 1] * 2].reshape(2, k.size)
        np.testing.assert_allclose(-block, hinv[rows, n1 + k], rtol=1e-10, atol=1e-14)


def test_a_convergence_the_exact_hessian_refutes_takes_more_newton_steps(monkeypatch):
    """Newton's steps on a held Hessian (:mod:`mixedglm.optim.held`) that claims
    convergence the exact Hessian refutes: more steps on exact Hessians, to the optimum of
    the usual fit."""
    import mixedglm as mg
    import mixedglm.models.multilevel as ml
    from mixedglm.optim import Evaluation
    from mixedglm.optim.held import HeldHessianSteps, scaled_gradient

    class Overcurved(HeldHessianSteps):
        """Near the optimum a Hessian a million times too curved: a scaled gradient a
        million times too small: convergence is claimed at the first point whose scaled
        gradient is below 1e-3, wherever Newton's scaled gradients happen to fall (with
        1000 times and 1e-5 the test depended on the start's path)."""

        def __call__(self, params, order):
            ev = super().__call__(params, order)
            if order == 2 and scaled_gradient(ev.gradient, ev.hessian) < 1e-3:
                return Evaluation(ev.loglik, ev.gradient, 1e6 * ev.hessian)
            return ev

    data = _sim(seed=2, n_a=30, n_b=12, per=3)
    kw = {"method": "laplace", "nolog": True, "quiet": True}
    usual = mg.glmm("yb ~ x + (1 | a) + (1 | b)", data, **kw)
    monkeypatch.setattr(ml, "HeldHessianSteps", Overcurved)
    runs = []

    def counted(*args, **kwargs):
        runs.append(args[0])
        return ml_newton(*args, **kwargs)

    ml_newton = ml.newton_maximize
    monkeypatch.setattr(ml, "newton_maximize", counted)
    rechecked = mg.glmm("yb ~ x + (1 | a) + (1 | b)", data, **kw)
    assert len(runs) == 3 and isinstance(runs[2], JointLaplaceEngine)  # pooled, held, exact
    assert not runs[2].forward_covariance  # refuted on forward differences: central ones
    iterations = [r.iteration for r in rechecked.opt.history]
    assert iterations == list(range(len(iterations)))
    assert rechecked.opt.iterations == iterations[-1]
    assert rechecked.converged and rechecked.opt.scaled_gradient < 1e-9
    # both converged (scaled gradient < 1e-9): the same optimum to a tiny fraction of an SE
    se = np.sqrt(np.diag(usual.cov_all))
    assert np.all(np.abs(rechecked.params_all - usual.params_all) < 1e-4 * se)
    np.testing.assert_allclose(np.sqrt(np.diag(rechecked.cov_all)), se, rtol=1e-5)


def test_modes_carried_to_a_new_theta_keep_the_effects():
    """The start of PIRLS at new variance parameters: the ``u`` whose effects
    ``b = Lambda u`` are the last modes' (per level and factor; a sign flip included), and
    the log-likelihood found from there equals the one found from zero modes."""
    data = _sim(seed=6)
    design, engine = _engine("yb ~ x + (1 + x | a) + (1 | b)", data, BERNOULLI)
    x0 = np.array([0.1, 0.5, 0.8, 0.2, 0.4, 0.6])
    x1 = x0 * np.array([1.0, 1.0, -1.5, 0.7, 2.0, -0.5])
    st = engine._at(x0)[0]
    theta0, theta1 = engine.split(x0)[1], engine.split(x1)[1]
    guess = engine._same_effects(st["u"], theta0, theta1)
    assert guess is not None and engine._same_effects(st["u"], theta0, theta0) is None
    post = engine.posterior(x0)
    for k, f in enumerate(design.factors):
        sl, idx = engine._theta_slices[k], engine._u_index[k]
        np.testing.assert_array_equal(st["u"][idx], post[f.name].mean)  # each level's u
        b0 = st["u"][idx] @ f.structure.lam(theta0[sl]).T
        b1 = guess[idx] @ f.structure.lam(theta1[sl]).T
        np.testing.assert_allclose(b1, b0, rtol=1e-12, atol=1e-14)
    carried = engine.loglik(x1)  # from the carried modes (the last state's)
    engine.forget()
    assert carried == pytest.approx(engine.loglik(x1), rel=1e-12)


@pytest.mark.parametrize(
    "formula", ["yb ~ x + (1 | a) + (1 + x | b)", "yb ~ x + (1 | a) + (1 + x || b)"]
)
def test_em_step_is_the_em_update_of_each_factors_covariance(formula):
    """The crossed fit's refined start (:mod:`mixedglm.engines.laplace_start`): each
    factor's new ``Sigma`` is ``Lambda M Lambda'``, ``M`` the mean of ``u u' + V`` over its
    levels (the diagonal of it for independent effects); beta unchanged; from SDs twice too
    large the log-likelihood rises."""
    from mixedglm.engines.laplace_start import em_step

    data = _sim(seed=7)
    design, engine = _engine(formula, data, BERNOULLI)
    x = np.concatenate([[0.2, 0.4], np.full(engine.n_theta, 1.5)])
    new = em_step(engine, x)
    np.testing.assert_array_equal(new[:2], x[:2])
    post = engine.posterior(x)
    theta, theta_new = engine.split(x)[1], engine.split(new)[1]
    for k, f in enumerate(design.factors):
        p = post[f.name]
        m = (p.mean.T @ p.mean + p.cov.sum(axis=0)) / p.mean.shape[0]
        lam = f.structure.lam(theta[engine._theta_slices[k]])
        sigma = lam @ m @ lam.T
        got = f.structure.sigma(theta_new[engine._theta_slices[k]])
        if f.structure.effective_kind == "independent":
            np.testing.assert_allclose(np.diag(got), np.diag(sigma), rtol=1e-12)
        else:
            np.testing.assert_allclose(got, sigma, rtol=1e-12, atol=1e-14)
    assert engine.loglik(new) > engine.loglik(x)


@pytest.mark.parametrize("sd", [0.3, 1.2, 2.5])
def test_crossed_start_grid_stops_where_the_loglik_falls(sd):
    """Crossed factors: the start grid's nodes from the largest scaling down, up to the
    first that lowers the log likelihood; the best of those is the best of all four nodes
    (the log likelihood rises then falls along the scaling), and the start is its EM step
    where that is higher (from the first node's loosely found modes where it is the best)."""
    import mixedglm.models.multilevel as ml
    from mixedglm.engines.laplace_start import em_step
    from mixedglm.models.multilevel_start import start_values

    rng = np.random.default_rng(8)
    data = _sim(seed=2, n_a=30, n_b=12, per=3)
    eta = (
        0.2 + 0.5 * data["x"] + rng.normal(0, sd, 30)[data["a"]] + rng.normal(0, sd, 12)[data["b"]]
    )
    data["yb"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    design, engine = _engine("yb ~ x + (1 | a) + (1 | b)", data, BERNOULLI)
    provider = ml.MemoryEngines(design, BERNOULLI)
    beta0 = np.array([0.5, 0.2])
    seen = []
    original = engine.loglik

    def loglik(params):
        seen.append(np.array(params))
        return original(params)

    engine.loglik = loglik
    start = start_values(engine, design, provider.scales, beta0, np.zeros(0), None)
    theta0 = np.concatenate(
        [f.structure.start(s) for f, s in zip(design.factors, provider.scales, strict=True)]
    )
    grid = seen[:-1]  # the last: the EM step's
    scalings = [float(p[2] / theta0[0]) for p in grid]
    assert scalings == [2.0, 1.0, 0.5, 0.25][: len(grid)]
    _, fresh = _engine("yb ~ x + (1 | a) + (1 | b)", data, BERNOULLI)
    every = [fresh.loglik(np.concatenate([beta0, theta0 * f])) for f in (2.0, 1.0, 0.5, 0.25)]
    seen_ll = every[: len(grid)]
    assert len(grid) == 4 or seen_ll[-1] < max(seen_ll[:-1])
    best = int(np.argmax(every))
    assert best < len(grid)
    chosen = np.concatenate([beta0, theta0 * (2.0, 1.0, 0.5, 0.25)[best]])
    _, again = _engine("yb ~ x + (1 | a) + (1 | b)", data, BERNOULLI)
    again.loose = best == 0  # the first node: its modes found loosely
    again.loglik(chosen)
    again.loose = False
    refined = em_step(again, chosen)
    expected = refined if fresh.loglik(refined) > every[best] else chosen
    np.testing.assert_allclose(start, expected, rtol=1e-8)


def test_row_values_remembered_at_the_same_theta():
    """``_row_values``: the last array again at the same theta, recomputed at another."""
    data = _sim(seed=2, n_a=30, n_b=12, per=3)
    _, engine = _engine("yb ~ x + (1 | a) + (1 | b)", data, BERNOULLI)
    first = engine._row_values(np.array([0.8, 0.5]))
    assert engine._row_values(np.array([0.8, 0.5])) is first
    other = engine._row_values(np.array([0.4, 0.5]))
    np.testing.assert_array_equal(other, 0.4 * engine._da[0] + 0.5 * engine._da[1])
    np.testing.assert_array_equal(first, 0.8 * engine._da[0] + 0.5 * engine._da[1])


def test_loglik_above_stops_only_clearly_below_the_floor():
    """``loglik_above``: the log likelihood where it is not clearly below the floor (the
    same as ``loglik``), else a bound below the floor that the log likelihood is under, in
    fewer factorisations; the engine's remembered state is left as it was."""
    data = _sim(seed=2, n_a=30, n_b=12, per=3)
    _, engine = _engine("yb ~ x + (1 | a) + (1 | b)", data, BERNOULLI)
    x = np.array([0.3, 0.5, 0.8, 0.5])
    far = np.array([0.3, 0.5, 8.0, 0.05])
    _, fresh = _engine("yb ~ x + (1 | a) + (1 | b)", data, BERNOULLI)
    ll_far = fresh.loglik(far)
    ll = engine.loglik(x)
    kept = engine.remembered()
    count = [0]
    factorise = engine._factorise

    def counted(*args):
        count[0] += 1
        return factorise(*args)

    engine._factorise = counted
    bound, exact = engine.loglik_above(far, ll_far + 50.0)
    assert not exact and ll_far < bound < ll_far + 50.0
    assert engine.remembered() is kept and engine._floor is None
    stopped = count[0]
    engine.recall(kept)
    value, exact = engine.loglik_above(far, ll_far - 1.0)
    assert exact and value == pytest.approx(ll_far, rel=1e-12)
    assert count[0] - stopped > stopped
    assert engine.loglik(x) == pytest.approx(ll, rel=1e-12)


@pytest.mark.parametrize("formula,family,n_aux", CASES[:3])
def test_predicted_modes_along_a_step_are_second_order_exact(formula, family, n_aux):
    """PIRLS at a new point of Newton's path starts from ``u^ + (du^/dparams) d``
    (``laplace_hessian.predicted_modes``, all parameters moved at once): its error is
    ``O(|d|^2)``, the old modes' ``O(|d|)``; the modes found from there are the same."""
    from mixedglm.engines import laplace_hessian

    data = _sim()
    _, engine = _engine(formula, data, family)
    x = np.concatenate([[0.2, 0.4], np.full(engine.n_theta, 0.5), np.full(n_aux, -0.3)])
    base = engine._at(x)[0]
    u0 = base["u"].copy()
    d = np.random.default_rng(5).normal(size=x.size) * 1e-3
    predicted = laplace_hessian.predicted_modes(engine, base, x, x + d)
    fresh = _engine(formula, data, family)[1]
    u1 = fresh._at(x + d)[0]["u"]
    assert np.max(np.abs(predicted - u1)) < 0.01 * np.max(np.abs(u0 - u1))
    np.testing.assert_allclose(engine._at(x + d)[0]["u"], u1, rtol=1e-9, atol=1e-12)


def _profiled_gradient(engine, x: np.ndarray) -> np.ndarray:
    """``d/d(beta, theta)`` of the penalised log-likelihood at the modes (envelope):
    ``J' l'(eta)``."""
    from mixedglm.engines import laplace_kernels as kern

    st = engine._at(x)[0]
    cols = [engine.X[:, r] for r in range(engine.n_beta)]
    for t in range(engine.n_theta):
        da = np.ascontiguousarray(engine._da[t])
        cols.append(kern.gather_rows(engine.pos, da, st["u"]))
    return np.column_stack(cols).T @ st["l1"]


@pytest.mark.parametrize("formula,family,n_aux", [c for c in CASES if c[2] == 0])
def test_profiled_hessian_is_the_penalised_loglik_curvature(formula, family, n_aux):
    """Newton's Hessian for crossed factors (``laplace_hessian.profiled_hessian``): the
    central differences of the profiled penalised log-likelihood's gradient."""
    from mixedglm.engines import laplace_hessian

    data = _sim()
    _, engine = _engine(formula, data, family)
    x = np.concatenate([[0.2, 0.4], np.full(engine.n_theta, 0.5)])
    hess = laplace_hessian.profiled_hessian(engine, x)
    fd = np.empty_like(hess)
    h = 1e-5
    for r in range(x.size):
        e = np.zeros_like(x)
        e[r] = h
        fd[:, r] = (_profiled_gradient(engine, x + e) - _profiled_gradient(engine, x - e)) / (2 * h)
    np.testing.assert_allclose(hess, 0.5 * (fd + fd.T), rtol=1e-5, atol=1e-6 * np.max(np.abs(fd)))


def test_crossed_fit_with_profiled_newton_hessian_equals_differenced_one(monkeypatch):
    """The crossed fit's Newton steps on the profiled Hessian reach the optimum (and
    covariance) of steps on the differenced Laplace Hessian; with a negative binomial's
    auxiliary parameter (its column differenced) too."""
    import mixedglm as mg
    import mixedglm.models.multilevel as ml

    data = _sim(seed=2, n_a=30, n_b=12, per=3)
    kw = {"method": "laplace", "nolog": True, "quiet": True}
    cases = [
        ("yb ~ x + (1 | a) + (1 | b)", {}),
        ("yn ~ x + (1 | a) + (1 | b)", {"family": "nbinomial"}),
    ]
    fits = {}
    for formula, extra in cases:
        fits[formula] = mg.glmm(formula, data, **kw, **extra)
    monkeypatch.setattr(ml, "ProfiledNewtonSteps", lambda engine: engine)
    for formula, extra in cases:
        usual = fits[formula]
        other = mg.glmm(formula, data, **kw, **extra)
        se = np.sqrt(np.diag(usual.cov_all))
        assert usual.converged and other.converged
        assert np.all(np.abs(np.abs(other.params_all) - np.abs(usual.params_all)) < 1e-4 * se)
        np.testing.assert_allclose(np.sqrt(np.diag(other.cov_all)), se, rtol=1e-5)


def test_logdet_curvature_is_exact_for_one_factor_at_fixed_weights():
    """``laplace_hessian.logdet_curvature``: with one factor ``H`` is diagonal, and the
    term is the second difference in theta of ``-log det H / 2`` at fixed ``W`` (from
    the engine's factorisation); factors with two effects get none."""
    from mixedglm.engines import laplace_hessian

    data = _sim()
    _, engine = _engine("yb ~ x + (1 | a)", data, BERNOULLI)
    x = np.array([0.2, 0.4, 0.7])
    st = engine._at(x)[0]
    w, l1, u = st["w"], st["l1"], st["u"]

    def half_logdet(theta: float) -> float:
        fac = engine._factorise(engine.theta_rows(np.array([theta])), l1, w, u)
        return 0.5 * float(np.sum(fac["logdet_d"]) + np.sum(fac["logdet_s"]))

    h = 1e-4
    second = (half_logdet(0.7 + h) - 2 * half_logdet(0.7) + half_logdet(0.7 - h)) / h**2
    got = laplace_hessian.logdet_curvature(engine, np.array([0.7]), w)
    np.testing.assert_allclose(got, [-second], rtol=1e-6)
    _, slopes = _engine("yb ~ x + (1 + x | a) + (1 | b)", data, BERNOULLI)
    st = slopes._at(np.array([0.2, 0.4, 0.7, 0.1, 0.3, 0.5]))[0]
    got = laplace_hessian.logdet_curvature(slopes, np.array([0.7, 0.1, 0.3, 0.5]), st["w"])
    assert np.all(got[:3] == 0.0) and got[3] != 0.0


def test_newton_on_crossed_factors_uses_the_log_determinants_curvature(monkeypatch):
    """Crossed fits' Newton Hessian adds :func:`laplace_hessian.logdet_curvature` to the
    profiled one: on 400 x 60 crossed levels with SDs 1 and 1, 5 Newton iterations (6
    without it, with the Hessian held from the same scaled gradient), the same optimum."""
    import mixedglm as mg
    from mixedglm.engines import laplace_hessian

    rng = np.random.default_rng(3)
    a = np.repeat(np.arange(400), 15)
    b = rng.integers(0, 60, a.size)
    x = rng.normal(size=a.size)
    eta = 0.2 + 0.5 * x + rng.normal(0, 1.0, 400)[a] + rng.normal(0, 1.0, 60)[b]
    data = pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x, "a": a, "b": b})
    kw = {"quiet": True, "nolog": True}
    res = mg.glmm("y ~ x + (1 | a) + (1 | b)", data, **kw)
    monkeypatch.setattr(
        laplace_hessian, "logdet_curvature", lambda engine, theta, w: np.zeros(theta.size)
    )
    without = mg.glmm("y ~ x + (1 | a) + (1 | b)", data, **kw)
    assert res.iterations <= 5 < without.iterations
    assert res.loglik == pytest.approx(without.loglik, abs=1e-7)
