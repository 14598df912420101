"""The AGHQ engine: derivatives against finite differences, integrals against brute force,
Laplace against its formula, consistency across nagq and dimensions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from mixedglm.engines.aghq import AGHQEngine, ClusterArrays
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.engines.rules import IntegrationRule, make_rule
from mixedglm.errors import MixedGLMError
from mixedglm.families import Family, get_family


def simulate(family: str, q: int, n_clusters: int = 12, seed: int = 1) -> ClusterArrays:
    """Small clustered data with an intercept and one slope (q = 2 uses it randomly)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 12, n_clusters)
    n = int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    x = rng.normal(size=n)
    X = np.column_stack([x, rng.binomial(1, 0.4, n), np.ones(n)])
    Z = np.column_stack([np.ones(n), x])[:, :q]
    b = rng.normal(size=(n_clusters, q)) * np.array([0.8, 0.5])[:q]
    eta = X @ np.array([0.5, -0.4, -0.3]) + np.sum(Z * np.repeat(b, sizes, axis=0), axis=1)
    trials = np.ones(n)
    if family == "bernoulli":
        y = rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float)
    elif family == "nbinomial":  # NB2 with alpha = 0.8: gamma-Poisson mixture
        y = rng.poisson(np.exp(eta) * rng.gamma(1 / 0.8, 0.8, n)).astype(float)
    elif family == "gamma":  # shape 3
        y = rng.gamma(3.0, np.exp(eta) / 3.0)
    elif family == "ordinal":  # 4 categories, latent logistic
        y = np.searchsorted([-1.0, 0.2, 1.5], eta + rng.logistic(size=n)).astype(float)
    elif family == "binomial":
        trials = rng.integers(1, 6, n).astype(float)
        y = rng.binomial(trials.astype(int), 1 / (1 + np.exp(-eta))).astype(float)
    elif family == "poisson":
        y = rng.poisson(np.exp(eta)).astype(float)
    else:
        y = eta + rng.normal(scale=0.7, size=n)
    return ClusterArrays(
        y, trials, np.zeros(n), np.ascontiguousarray(X), np.ascontiguousarray(Z), starts
    )


def make_family(family: str, link: str) -> Family:
    """``nbinomial constant`` is NB1; ordinal families get the simulation's 4 categories."""
    name, _, dispersion = family.partition(" ")
    fam = get_family(name, link, dispersion or None)
    return fam.with_categories((0, 1, 2, 3)) if name == "ordinal" else fam


def objective(family, link, q, nagq, method, curvature="observed", kind=None):
    arrays = simulate(family.split()[0], q)
    cols = ("_cons", "x")[:q]
    structure = CovarianceStructure(kind or ("unstructured" if q > 1 else "independent"), cols)
    rule = IntegrationRule("laplace" if nagq == 1 else method, nagq, curvature)
    return AGHQEngine(arrays, make_family(family, link), structure, rule)


def params_for(obj: AGHQEngine) -> np.ndarray:
    theta = {1: [0.7], 3: [0.7, 0.2, 0.4], 2: [0.7, 0.4]}[obj.n_theta]
    aux = [np.log(0.8)] * obj.n_aux
    return np.r_[0.4, -0.3, -0.2, theta, aux]


def fd_gradient(obj: AGHQEngine, x: np.ndarray, step: float = 1e-5) -> np.ndarray:
    out = np.empty_like(x)
    for r in range(x.size):
        up, down = x.copy(), x.copy()
        up[r] += step
        down[r] -= step
        out[r] = (obj.loglik(up) - obj.loglik(down)) / (2 * step)
    return out


EXACT_CASES = [
    ("bernoulli", "logit", 1, 1, "laplace", "observed"),
    ("bernoulli", "logit", 1, 5, "mcaghermite", "observed"),
    ("bernoulli", "probit", 1, 1, "laplace", "observed"),
    ("bernoulli", "probit", 1, 1, "laplace", "fisher"),
    ("bernoulli", "cloglog", 1, 4, "mcaghermite", "fisher"),
    ("binomial", "logit", 1, 3, "mcaghermite", "observed"),
    ("poisson", "log", 1, 1, "laplace", "observed"),
    ("gaussian", "identity", 1, 1, "laplace", "observed"),
    ("bernoulli", "logit", 2, 1, "laplace", "observed"),
    ("bernoulli", "logit", 2, 4, "mcaghermite", "observed"),
    ("poisson", "log", 2, 3, "mcaghermite", "observed"),
    ("gaussian", "identity", 2, 1, "laplace", "observed"),
    ("nbinomial", "log", 1, 1, "laplace", "observed"),
    ("nbinomial", "log", 2, 3, "mcaghermite", "observed"),
    ("nbinomial constant", "log", 1, 1, "laplace", "observed"),
    ("nbinomial constant", "log", 2, 1, "laplace", "observed"),
    ("gamma", "log", 1, 5, "mcaghermite", "observed"),
    ("gamma", "log", 2, 1, "laplace", "observed"),
    ("ordinal", "logit", 1, 1, "laplace", "observed"),
    ("ordinal", "probit", 1, 4, "mcaghermite", "observed"),
    ("ordinal", "cloglog", 1, 1, "laplace", "observed"),
    ("ordinal", "logit", 2, 3, "mcaghermite", "observed"),
]


@pytest.mark.parametrize(("family", "link", "q", "nagq", "method", "curvature"), EXACT_CASES)
def test_mode_curvature_gradient_is_exact(family, link, q, nagq, method, curvature):
    """The analytic gradient includes the movement of the mode and curvature."""
    obj = objective(family, link, q, nagq, method, curvature)
    x = params_for(obj)
    _, grad = obj.gradient(x)
    assert np.allclose(grad, fd_gradient(obj, x), rtol=1e-6, atol=1e-6)


MEANVAR_CASES = [
    ("bernoulli", "logit", 1, 3),
    ("bernoulli", "logit", 1, 7),
    ("poisson", "log", 1, 3),
    ("poisson", "log", 1, 12),
    ("bernoulli", "probit", 2, 3),
    ("binomial", "logit", 2, 7),
    ("gaussian", "identity", 1, 5),
]


@pytest.mark.parametrize(("family", "link", "q", "nagq"), MEANVAR_CASES)
def test_meanvar_gradient_is_exact(family, link, q, nagq):
    """The gradient includes the movement of the mean-variance grid (implicit
    differentiation of its fixed point), so it is exact for any number of points."""
    obj = objective(family, link, q, nagq, "mvaghermite")
    x = params_for(obj)
    _, grad = obj.gradient(x)
    assert np.allclose(grad, fd_gradient(obj, x), rtol=1e-6, atol=1e-6)
    assert np.all(obj.last_status == 0)


@pytest.mark.parametrize(
    ("family", "link", "q"),
    [
        ("bernoulli", "logit", 1),
        ("poisson", "log", 1),
        ("bernoulli", "probit", 2),
        ("gaussian", "identity", 1),
    ],
)
def test_meanvar_louis_hessian_matches_the_objective_up_to_quadrature_error(family, link, q):
    """The Hessian of a mean-variance fit is Louis' fixed-grid one: it differs from the
    objective's by the quadrature error, small at 7 points on clusters of 2-11
    observations and vanishing as the number of points grows."""
    errors = {}
    for nagq in (7, 20):
        obj = objective(family, link, q, nagq, "mvaghermite")
        x = params_for(obj)
        ev = obj(x, 2)
        scale = np.max(np.abs(ev.hessian))
        errors[nagq] = np.max(np.abs(ev.hessian - obj.fd_hessian(x))) / scale
    # measured: at most 5.2e-4 (Poisson) at 7 points, below 1.2e-8 at 20
    assert errors[7] < 1e-3
    assert errors[20] < 1e-7


def test_two_point_meanvar_is_refused_not_switched():
    """Two points do not determine the mean-variance grid's scale: the rule object refuses
    the request instead of silently using another rule."""
    with pytest.raises(MixedGLMError, match="at least 3 points"):
        make_rule("mvaghermite", 2)
    assert make_rule("mcaghermite", 2) == IntegrationRule("mcaghermite", 2)


def test_fixed_grid_hessian_matches_its_gradient_with_exact_mode_grid():
    """The Louis Hessian is the derivative of the fixed-grid score (checked where the grid
    barely moves: many points, so that the grid's motion does not matter)."""
    obj = objective("bernoulli", "logit", 2, 12, "mcaghermite")
    x = params_for(obj)
    louis = obj.fixed_grid_hessian(x).hessian
    assert np.allclose(louis, obj.fd_hessian(x), rtol=1e-4, atol=1e-4)


def _cluster_integral_1d(arrays, family, beta, sd, i) -> float:
    s, e = arrays.starts[i], arrays.starts[i + 1]
    xb = arrays.X[s:e] @ beta

    def density(b):
        eta = xb + b
        if family == "bernoulli":
            p = 1 / (1 + np.exp(-eta))
            like = np.prod(np.where(arrays.y[s:e] == 1, p, 1 - p))
        else:
            like = np.prod(stats.poisson.pmf(arrays.y[s:e], np.exp(eta)))
        return like * stats.norm.pdf(b, scale=sd)

    value, _ = integrate.quad(density, -12 * sd, 12 * sd, epsabs=0, epsrel=1e-12, limit=200)
    return np.log(value)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("method", ["mvaghermite", "mcaghermite"])
def test_scalar_quadrature_equals_brute_force_integral(family, method):
    link = "logit" if family == "bernoulli" else "log"
    obj = objective(family, link, 1, 30, method)
    x = params_for(obj)
    ll = obj.contributions(x).loglik
    for i in range(obj.arrays.n_clusters):
        brute = _cluster_integral_1d(obj.arrays, family, x[:3], x[3], i)
        assert ll[i] == pytest.approx(brute, rel=1e-9, abs=1e-9)


@pytest.mark.slow
def test_two_dimensional_quadrature_equals_brute_force_integral():
    obj = objective("bernoulli", "logit", 2, 20, "mvaghermite")
    x = params_for(obj)
    lam = obj.structure.lam(x[3:6])
    cov = lam @ lam.T
    ll = obj.contributions(x).loglik
    a = obj.arrays
    for i in range(4):
        s, e = a.starts[i], a.starts[i + 1]
        xb = a.X[s:e] @ x[:3]

        def density(b0, b1, s=s, e=e, xb=xb):
            eta = xb + b0 * a.Z[s:e, 0] + b1 * a.Z[s:e, 1]
            p = 1 / (1 + np.exp(-eta))
            like = np.prod(np.where(a.y[s:e] == 1, p, 1 - p))
            return like * stats.multivariate_normal.pdf([b0, b1], cov=cov)

        lim = [
            [-8 * np.sqrt(cov[0, 0]), 8 * np.sqrt(cov[0, 0])],
            [-8 * np.sqrt(cov[1, 1]), 8 * np.sqrt(cov[1, 1])],
        ]
        value, _ = integrate.nquad(density, lim, opts={"epsabs": 0, "epsrel": 1e-10})
        assert ll[i] == pytest.approx(np.log(value), rel=1e-7)


def test_laplace_equals_its_formula():
    """nagq = 1: log L_i = h(mode) - log det(-h''(mode)) / 2 (u spherical)."""
    obj = objective("bernoulli", "logit", 1, 1, "laplace")
    x = params_for(obj)
    ll = obj.contributions(x).loglik
    a = obj.arrays
    for i in range(a.n_clusters):
        s, e = a.starts[i], a.starts[i + 1]
        xb, y, sd = a.X[s:e] @ x[:3], a.y[s:e], x[3]

        def h(u, xb=xb, y=y, sd=sd):
            eta = xb + sd * u
            return np.sum(y * eta - np.logaddexp(0, eta)) - 0.5 * u**2

        mode = optimize.minimize_scalar(lambda u, h=h: -h(u), bracket=(-1, 1), tol=1e-12).x
        p = 1 / (1 + np.exp(-(xb + sd * mode)))
        curvature = 1 + sd**2 * np.sum(p * (1 - p))
        assert ll[i] == pytest.approx(h(mode) - 0.5 * np.log(curvature), rel=1e-10)


def test_q2_with_a_zero_variance_equals_the_scalar_model():
    """Independent (1 | g) + (0 + x | g) with var(x) = 0 is the random-intercept model."""
    for method, nagq in (("mvaghermite", 7), ("mcaghermite", 5), ("laplace", 1)):
        two = objective("bernoulli", "logit", 2, nagq, method, kind="independent")
        one = AGHQEngine(
            ClusterArrays(
                two.arrays.y,
                two.arrays.trials,
                two.arrays.offset,
                two.arrays.X,
                np.ascontiguousarray(two.arrays.Z[:, :1]),
                two.arrays.starts,
            ),
            two.family,
            CovarianceStructure("independent", ("_cons",)),
            nagq=nagq,
            method=method,
        )
        beta = np.array([0.4, -0.3, -0.2])
        assert two.loglik(np.r_[beta, 0.7, 0.0]) == pytest.approx(
            one.loglik(np.r_[beta, 0.7]), rel=1e-12
        )


def test_loglik_settles_as_nagq_grows():
    values = {}
    for nagq in (7, 12, 20):
        obj = objective("bernoulli", "logit", 2, nagq, "mvaghermite")
        values[nagq] = obj.loglik(params_for(obj))
    assert abs(values[12] - values[20]) < 1e-6
    assert abs(values[7] - values[20]) < 1e-4


def test_warm_state_does_not_change_values():
    obj = objective("poisson", "log", 2, 5, "mvaghermite")
    x = params_for(obj)
    first = obj.loglik(x)
    obj.loglik(x + 0.3)
    assert obj.loglik(x) == pytest.approx(first, rel=1e-12)


# -- negative binomial, gamma, ordinal ---------------------------------------------------


def _scipy_loglik(family: str, link: str, y: np.ndarray, eta: np.ndarray, aux: np.ndarray):
    """Per-observation log densities from scipy (independent of the kernels)."""
    from scipy import special

    if family == "nbinomial":  # NB2, aux = log alpha
        size = np.exp(-aux[0])
        return stats.nbinom.logpmf(y, size, size / (size + np.exp(eta)))
    if family == "nbinomial constant":  # NB1, aux = log delta
        size = np.exp(eta - aux[0])
        return stats.nbinom.logpmf(y, size, 1 / (1 + np.exp(aux[0])))
    if family == "gamma":  # aux = log scale, shape = exp(-aux)
        shape = np.exp(-aux[0])
        return stats.gamma.logpdf(y, shape, scale=np.exp(eta) / shape)
    cuts = np.r_[-np.inf, aux[0] + np.r_[0.0, np.cumsum(np.exp(aux[1:]))], np.inf]
    cdf = {
        "logit": special.expit,
        "probit": special.ndtr,
        "cloglog": lambda x: -np.expm1(-np.exp(x)),
    }[link]
    yi = y.astype(int)
    with np.errstate(divide="ignore"):  # far in the tails of the integral: log(0)
        return np.log(cdf(cuts[yi + 1] - eta) - cdf(cuts[yi] - eta))


@pytest.mark.parametrize(
    ("family", "link"),
    [
        ("nbinomial", "log"),
        ("nbinomial constant", "log"),
        ("gamma", "log"),
        ("ordinal", "logit"),
        ("ordinal", "probit"),
        ("ordinal", "cloglog"),
    ],
)
@pytest.mark.parametrize("method", ["mvaghermite", "mcaghermite"])
def test_new_families_quadrature_equals_brute_force_integral(family, link, method):
    """Full log-likelihoods (all constants) against integrate.quad of scipy's densities."""
    obj = objective(family, link, 1, 30, method)
    x = params_for(obj)
    aux = x[4:]
    ll = obj.contributions(x).loglik
    a = obj.arrays
    for i in range(a.n_clusters):
        s, e = a.starts[i], a.starts[i + 1]
        xb = a.X[s:e] @ x[:3]

        def density(b, xb=xb, s=s, e=e):
            like = np.sum(_scipy_loglik(family, link, a.y[s:e], xb + b, aux))
            return np.exp(like) * stats.norm.pdf(b, scale=x[3])

        value, _ = integrate.quad(density, -10 * x[3], 10 * x[3], epsabs=0, epsrel=1e-12, limit=200)
        assert ll[i] == pytest.approx(np.log(value), rel=1e-8, abs=1e-8), (family, i)


@pytest.mark.parametrize(
    ("family", "link"),
    [("nbinomial", "log"), ("nbinomial constant", "log"), ("gamma", "log"), ("ordinal", "logit")],
)
def test_new_families_laplace_equals_its_formula_and_nagq1(family, link):
    """Laplace: h(mode) - log(-h''(mode)) / 2, with h from scipy's densities; and a
    mode-curvature grid with one point is the same number."""
    obj = objective(family, link, 1, 1, "laplace")
    one_point = objective(family, link, 1, 1, "mcaghermite")
    x = params_for(obj)
    ll = obj.contributions(x).loglik
    assert one_point.loglik(x) == pytest.approx(float(np.sum(ll)), rel=1e-14)
    a = obj.arrays
    for i in range(a.n_clusters):
        s, e = a.starts[i], a.starts[i + 1]
        xb, sd = a.X[s:e] @ x[:3], x[3]

        def h(u, xb=xb, s=s, e=e, sd=sd):
            return np.sum(_scipy_loglik(family, link, a.y[s:e], xb + sd * u, x[4:])) - 0.5 * u**2

        mode = optimize.minimize_scalar(lambda u, h=h: -h(u), bracket=(-1, 1), tol=1e-12).x
        step = 1e-4  # second differences: about 1e-7 relative error in the curvature
        curvature = -(h(mode + step) - 2 * h(mode) + h(mode - step)) / step**2
        assert ll[i] == pytest.approx(h(mode) - 0.5 * np.log(curvature), rel=1e-7, abs=1e-6)


@pytest.mark.parametrize(
    ("family", "link", "q"),
    [("nbinomial", "log", 1), ("gamma", "log", 2), ("ordinal", "logit", 1)],
)
def test_new_families_meanvar_fixed_grid_derivatives_match_the_objective(family, link, q):
    """As for the foundation's families: fixed-grid derivatives are those of the
    mean-variance objective up to quadrature error, which vanishes as nagq grows."""
    errors = {}
    for nagq in (7, 20):
        obj = objective(family, link, q, nagq, "mvaghermite")
        x = params_for(obj)
        ev = obj(x, 2)
        scale = np.max(np.abs(ev.hessian))
        errors[nagq] = (
            np.max(np.abs(ev.gradient - fd_gradient(obj, x))) / scale,
            np.max(np.abs(ev.hessian - obj.fd_hessian(x))) / scale,
        )
    assert errors[7][0] < 2e-4 and errors[7][1] < 1e-3, errors
    assert errors[20][0] < 1e-7 and errors[20][1] < 1e-6, errors


def test_read_only_inputs_reuse_the_compiled_kernel():
    # pandas' copy-on-write hands out read-only views; numba would compile every kernel
    # anew for them (13 s a family): the engine's arrays are made writeable copies instead
    from mixedglm.engines.aghq.chunk import chunk

    engine = objective("bernoulli", "logit", 1, 7, "mvaghermite")
    x = np.array([0.5, -0.4, -0.3, 0.8])
    want = engine.loglik(x)
    n_signatures = len(chunk.signatures)
    a = engine.arrays
    frozen = [v.copy() for v in (a.y, a.trials, a.offset, a.X, a.Z, a.starts)]
    for v in frozen:
        v.flags.writeable = False
    again = AGHQEngine(ClusterArrays(*frozen), engine.family, engine.structure, engine.rule)
    assert again.arrays.y.flags.writeable and not frozen[0].flags.writeable
    assert again.loglik(x) == want
    assert len(chunk.signatures) == n_signatures
