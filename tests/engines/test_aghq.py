"""The AGHQ engine: derivatives against finite differences, integrals against brute force,
Laplace against its formula, consistency across nagq and dimensions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from mixedglm.engines.aghq import AGHQObjective, ClusterArrays
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.families import Family


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


def objective(family, link, q, nagq, method, curvature="observed", kind=None):
    arrays = simulate(family, q)
    cols = ("_cons", "x")[:q]
    structure = CovarianceStructure(kind or ("unstructured" if q > 1 else "independent"), cols)
    return AGHQObjective(
        arrays, Family(family, link), structure, nagq=nagq, method=method, curvature=curvature
    )


def params_for(obj: AGHQObjective) -> np.ndarray:
    theta = {1: [0.7], 3: [0.7, 0.2, 0.4], 2: [0.7, 0.4]}[obj.n_theta]
    aux = [np.log(0.8)] * obj.n_aux
    return np.r_[0.4, -0.3, -0.2, theta, aux]


def fd_gradient(obj: AGHQObjective, x: np.ndarray, step: float = 1e-5) -> np.ndarray:
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
]


@pytest.mark.parametrize(("family", "link", "q", "nagq", "method", "curvature"), EXACT_CASES)
def test_mode_curvature_gradient_is_exact(family, link, q, nagq, method, curvature):
    """The analytic gradient includes the movement of the mode and curvature."""
    obj = objective(family, link, q, nagq, method, curvature)
    x = params_for(obj)
    _, grad = obj.gradient(x)
    assert np.allclose(grad, fd_gradient(obj, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("family", "link", "q"),
    [
        ("bernoulli", "logit", 1),
        ("poisson", "log", 1),
        ("bernoulli", "probit", 2),
        ("gaussian", "identity", 1),
    ],
)
def test_meanvar_fixed_grid_derivatives_match_the_objective(family, link, q):
    """With the mean-variance grid the fixed-grid (Louis) derivatives are those of the
    objective up to quadrature error: small at 7 points on clusters of 2-11 observations,
    and vanishing as the number of points grows (the grid's location and scale do not enter
    the exact integral, so their derivatives are quadrature estimates of zero)."""
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
    # measured: gradient <= 9.5e-5 and Hessian <= 5.2e-4 (Poisson) at 7 points, relative
    # to max |H|; below 1e-9 and 1.2e-8 at 20 points; gaussian exact at any nagq
    assert errors[7][0] < 2e-4 and errors[7][1] < 1e-3
    assert errors[20][0] < 1e-8 and errors[20][1] < 1e-7


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
    ll, _, _ = obj.cluster_terms(x, 0)
    for i in range(obj.arrays.n_clusters):
        brute = _cluster_integral_1d(obj.arrays, family, x[:3], x[3], i)
        assert ll[i] == pytest.approx(brute, rel=1e-9, abs=1e-9)


def test_two_dimensional_quadrature_equals_brute_force_integral():
    obj = objective("bernoulli", "logit", 2, 20, "mvaghermite")
    x = params_for(obj)
    lam = obj.structure.lam(x[3:6])
    cov = lam @ lam.T
    ll, _, _ = obj.cluster_terms(x, 0)
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
    ll, _, _ = obj.cluster_terms(x, 0)
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
        one = AGHQObjective(
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
