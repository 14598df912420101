"""The per-observation kernels: derivatives against finite differences, tails, constants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from mixedglm.families import get_family

NB2 = get_family("nbinomial")
NB1 = get_family("nbinomial constant")
GAMMA = get_family("gamma")


def ordinal(link: str):
    return get_family("ordinal", link)


def eta_derivs(fam, y, n, eta, aux):
    """The family's compiled kernel, called from Python."""
    return fam.kernels().eta_derivs(y, n, eta, aux)


def aux_derivs(fam, y, n, eta, aux, *out):
    fam.kernels().aux_derivs(y, n, eta, aux, *out)


CASES = [
    ("bernoulli", "logit", 1.0, 1.0),
    ("bernoulli", "logit", 0.0, 1.0),
    ("bernoulli", "probit", 1.0, 1.0),
    ("bernoulli", "probit", 0.0, 1.0),
    ("bernoulli", "cloglog", 1.0, 1.0),
    ("bernoulli", "cloglog", 0.0, 1.0),
    ("binomial", "logit", 3.0, 7.0),
    ("binomial", "probit", 2.0, 5.0),
    ("binomial", "cloglog", 4.0, 9.0),
    ("poisson", "log", 3.0, 1.0),
    ("gaussian", "identity", 1.3, 1.0),
]
ETAS = [-30.0, -8.0, -3.0, -0.7, 0.0, 0.4, 2.5, 6.0, 20.0]


def _derivs(fam, y, n, eta, aux):
    return eta_derivs(fam, y, n, eta, aux)


@pytest.mark.parametrize(("name", "link", "y", "n"), CASES)
def test_eta_derivatives_match_finite_differences(name, link, y, n):
    fam = get_family(name, link)
    aux = np.array([0.3]) if name == "gaussian" else np.zeros(0)
    etas = [e for e in ETAS if not (name == "poisson" and abs(e) > 8)]
    for eta in etas:
        l0, d1, d2, d3 = _derivs(fam, y, n, eta, aux)
        h = 1e-5 * max(1.0, abs(eta))
        lp = _derivs(fam, y, n, eta + h, aux)
        lm = _derivs(fam, y, n, eta - h, aux)
        scale = 1e-6 * max(1.0, abs(d1), abs(d2), abs(d3))
        assert abs((lp[0] - lm[0]) / (2 * h) - d1) < scale + 1e-7 * max(1, abs(l0)), (eta, "d1")
        assert abs((lp[1] - lm[1]) / (2 * h) - d2) < scale, (eta, "d2")
        assert abs((lp[2] - lm[2]) / (2 * h) - d3) < scale, (eta, "d3")


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_binomial_loglik_equals_scipy_in_both_tails(link):
    fam = get_family("binomial", link)
    for eta in [-37.0, -12.0, -2.0, 0.0, 1.5, 12.0, 37.0]:
        mu = {
            "logit": special.expit(eta),
            "probit": special.ndtr(eta),
            "cloglog": -math.expm1(-math.exp(eta)),
        }[link]
        log_mu = {
            "logit": -np.logaddexp(0, -eta),
            "probit": special.log_ndtr(eta),
            "cloglog": math.log(-math.expm1(-math.exp(eta))) if eta > -700 else eta,
        }[link]
        log_1m = {
            "logit": -np.logaddexp(0, eta),
            "probit": special.log_ndtr(-eta),
            "cloglog": -math.exp(eta),
        }[link]
        for y, n in [(0.0, 1.0), (1.0, 1.0), (2.0, 5.0)]:
            expected = y * log_mu + (n - y) * log_1m
            got = _derivs(fam, y, n, eta, np.zeros(0))[0]
            assert got == pytest.approx(expected, rel=1e-10, abs=1e-12), (eta, y, n, mu)


def test_full_loglik_with_constants_matches_scipy_densities():
    y = np.array([0.0, 3.0, 7.0])
    n = np.array([4.0, 5.0, 9.0])
    eta = np.array([-0.3, 0.2, 1.1])
    fam = get_family("binomial", "logit")
    ours = fam.log_constant(y, n) + np.array(
        [_derivs(fam, a, b, e, np.zeros(0))[0] for a, b, e in zip(y, n, eta, strict=True)]
    )
    assert ours == pytest.approx(stats.binom.logpmf(y, n, special.expit(eta)), rel=1e-12)
    fam = get_family("poisson")
    ours = fam.log_constant(y, n) + np.array(
        [_derivs(fam, a, 1.0, e, np.zeros(0))[0] for a, e in zip(y, eta, strict=True)]
    )
    assert ours == pytest.approx(stats.poisson.logpmf(y, np.exp(eta)), rel=1e-12)
    fam = get_family("gaussian")
    aux = np.array([np.log(1.7)])
    ours = fam.log_constant(y, n) + np.array(
        [_derivs(fam, a, 1.0, e, aux)[0] for a, e in zip(y, eta, strict=True)]
    )
    assert ours == pytest.approx(stats.norm.logpdf(y, eta, 1.7), rel=1e-12)


def test_gaussian_aux_derivatives_match_finite_differences():
    fam = get_family("gaussian")
    y, eta, a, h = 1.3, 0.4, 0.25, 1e-6

    def aux_at(aa: float) -> list[np.ndarray]:
        out = [np.zeros(1), np.zeros(1), np.zeros(1), np.zeros((1, 1))]
        aux_derivs(fam, y, 1.0, eta, np.array([aa]), *out)
        return out

    def eta_at(aa: float) -> np.ndarray:
        return np.array(_derivs(fam, y, 1.0, eta, np.array([aa])))

    l_a, l_ea, l_eea, l_aa = aux_at(a)
    d_a = (eta_at(a + h) - eta_at(a - h)) / (2 * h)
    assert l_a[0] == pytest.approx(d_a[0], rel=1e-7)
    assert l_ea[0] == pytest.approx(d_a[1], rel=1e-7)
    assert l_eea[0] == pytest.approx(d_a[2], rel=1e-7)
    assert l_aa[0, 0] == pytest.approx(
        (aux_at(a + h)[0][0] - aux_at(a - h)[0][0]) / (2 * h), rel=1e-7
    )


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_fisher_weight_is_expected_information(link):
    fam = get_family("binomial", link)
    n, h = 3.0, 1e-6
    for eta in [-4.0, -1.0, 0.0, 0.8, 3.0]:
        w, dw = fam.kernels().fisher_weight(n, eta)
        if link == "logit":
            mu = special.expit(eta)
            dmu, one_minus = mu * (1 - mu), 1 - mu
        elif link == "probit":
            mu, dmu, one_minus = special.ndtr(eta), stats.norm.pdf(eta), special.ndtr(-eta)
        else:
            mu = -math.expm1(-math.exp(eta))
            dmu, one_minus = math.exp(eta - math.exp(eta)), math.exp(-math.exp(eta))
        assert w == pytest.approx(n * dmu**2 / (mu * one_minus), rel=1e-10)
        wp, _ = fam.kernels().fisher_weight(n, eta + h)
        wm, _ = fam.kernels().fisher_weight(n, eta - h)
        assert dw == pytest.approx((wp - wm) / (2 * h), rel=1e-5, abs=1e-8)


# -- negative binomial, gamma, ordinal ---------------------------------------------------

NEW_FAMILIES = [
    (NB2, [0.0, 1.0, 3.0, 12.0, 70.0, 250.0], [-3.0, -0.4, 0.0, 0.9, 2.2]),
    (NB1, [0.0, 1.0, 3.0, 12.0, 70.0, 250.0], [-3.0, -0.4, 0.0, 0.9, 2.2]),
    (GAMMA, [0.05, 0.7, 1.0, 4.0, 90.0], [-3.0, -0.4, 0.0, 0.9, 2.2]),
]
NEW_ETAS = [-4.0, -1.2, 0.0, 0.5, 2.0, 4.5]
CUT_AUX = np.array([-1.0, np.log(0.8), np.log(1.5), np.log(0.3)])  # 4 cut points, 5 categories


def _aux_arrays(fam, y, eta, aux):
    n = aux.shape[0]
    out = [np.zeros(n), np.zeros(n), np.zeros(n), np.zeros((n, n))]
    aux_derivs(fam, y, 1.0, eta, aux, *out)
    return out


def _check_all_derivatives(fam, y, eta, aux, h=1e-5, rtol=2e-6):
    """Every derivative the engines use against central differences of the one below."""

    def ed(e, a):
        return np.array(eta_derivs(fam, y, 1.0, e, a))

    d = ed(eta, aux)
    assert np.all(np.isfinite(d)), (fam, y, eta, aux)
    fd = (ed(eta + h, aux) - ed(eta - h, aux)) / (2 * h)
    scale = max(1.0, *np.abs(d[1:]))
    assert np.allclose(fd[:3], d[1:], rtol=0, atol=rtol * scale), (y, eta, aux, d, fd)
    l_a, l_ea, l_eea, l_aa = _aux_arrays(fam, y, eta, aux)
    assert np.allclose(l_aa, l_aa.T, rtol=1e-12, atol=1e-12)
    for m in range(aux.shape[0]):
        up, down = aux.copy(), aux.copy()
        up[m] += h
        down[m] -= h
        fd_a = (ed(eta, up) - ed(eta, down)) / (2 * h)
        got = np.array([l_a[m], l_ea[m], l_eea[m]])
        scale = max(1.0, *np.abs(got))
        assert np.allclose(fd_a[:3], got, rtol=0, atol=rtol * scale), (m, y, eta, got, fd_a)
        fd_aa = (_aux_arrays(fam, y, eta, up)[0] - _aux_arrays(fam, y, eta, down)[0]) / (2 * h)
        scale = max(1.0, *np.abs(l_aa[m]))
        assert np.allclose(fd_aa, l_aa[m], rtol=0, atol=rtol * scale), (m, y, eta)


@pytest.mark.parametrize(("fam", "ys", "auxes"), NEW_FAMILIES)
def test_dispersion_family_derivatives_match_finite_differences(fam, ys, auxes):
    for y in ys:
        for eta in NEW_ETAS:
            for a in auxes:
                _check_all_derivatives(fam, y, eta, np.array([a]))


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_ordinal_derivatives_match_finite_differences(link):
    for y in range(5):
        for eta in [-7.0, *NEW_ETAS, 7.0]:
            _check_all_derivatives(ordinal(link), float(y), eta, CUT_AUX)
    # two categories (one cut point) and three
    for aux in (np.array([0.3]), np.array([0.3, -0.5])):
        for y in range(aux.size + 1):
            _check_all_derivatives(ordinal(link), float(y), 0.8, aux)


def test_negative_binomial_and_gamma_logliks_equal_scipy():
    eta, a = 0.3, 0.4
    mu = math.exp(eta)
    for y in [0.0, 2.0, 7.0, 100.0]:
        size = math.exp(-a)  # NB2: size 1/alpha
        got = eta_derivs(NB2, y, 1.0, eta, np.array([a]))[0]
        got += NB2.log_constant(np.array([y]), np.ones(1))[0]
        assert got == pytest.approx(stats.nbinom.logpmf(y, size, size / (size + mu)), rel=1e-12)
        size = mu / math.exp(a)  # NB1: size mu/delta
        got = eta_derivs(NB1, y, 1.0, eta, np.array([a]))[0]
        got += NB1.log_constant(np.array([y]), np.ones(1))[0]
        assert got == pytest.approx(stats.nbinom.logpmf(y, size, size / (size + mu)), rel=1e-12)
    for y in [0.05, 1.0, 7.5, 300.0]:
        shape = math.exp(-a)  # gamma: a = log of the scale s = 1/shape
        got = eta_derivs(GAMMA, y, 1.0, eta, np.array([a]))[0]
        got += GAMMA.log_constant(np.array([y]), np.ones(1))[0]
        assert got == pytest.approx(stats.gamma.logpdf(y, shape, scale=mu / shape), rel=1e-12)


def test_negative_binomial_near_the_poisson_limit_is_accurate():
    """A tiny alpha (huge size) must not lose the log-likelihood to cancellation."""
    eta, y = 1.1, 4.0
    poisson = stats.poisson.logpmf(y, math.exp(eta))
    for fam in (NB2, NB1):
        got = eta_derivs(fam, y, 1.0, eta, np.array([-25.0]))[0]
        got += fam.log_constant(np.array([y]), np.ones(1))[0]
        assert got == pytest.approx(poisson, abs=1e-9)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_ordinal_probabilities_match_scipy_and_sum_to_one(link):
    from mixedglm.families.ordinal import category_probabilities, cutpoints

    cdf = {
        "logit": special.expit,
        "probit": special.ndtr,
        "cloglog": lambda x: -np.expm1(-np.exp(x)),
    }[link]
    survival = {
        "logit": lambda x: special.expit(-x),
        "probit": lambda x: special.ndtr(-x),
        "cloglog": lambda x: np.exp(-np.exp(x)),
    }[link]
    cuts = np.r_[-np.inf, cutpoints(CUT_AUX), np.inf]
    for eta in [-3.0, -0.2, 0.0, 1.3, 4.0]:
        total = 0.0
        for y in range(5):
            lo, hi = cuts[y] - eta, cuts[y + 1] - eta
            if lo > 0:  # both in the upper tail: survival functions do not cancel
                expected = survival(lo) - survival(hi)
            else:
                expected = cdf(hi) - cdf(lo)
            got = eta_derivs(ordinal(link), float(y), 1.0, eta, CUT_AUX)[0]
            assert got == pytest.approx(math.log(expected), rel=1e-11)
            total += math.exp(got)
        assert total == pytest.approx(1.0, abs=1e-13)
        kernel = [
            math.exp(eta_derivs(ordinal(link), float(y), 1.0, eta, CUT_AUX)[0]) for y in range(5)
        ]
        probs = category_probabilities(link, np.array([eta]), CUT_AUX)[0]
        assert probs == pytest.approx(kernel, rel=1e-6, abs=1e-15)


def test_ordinal_loglik_in_the_tails():
    """Category probabilities far in the tails, where F(b) - F(a) cancels: computed from
    the survival functions, which do not."""
    aux = np.array([1.0, 0.0])  # cuts 1 and 2
    for eta in (-40.0, -15.0, 15.0, 40.0):
        a, b = 1.0 - eta, 2.0 - eta
        # logit, middle category
        if a > 0:
            expected = math.log(special.expit(-a) - special.expit(-b))
        else:
            expected = math.log(special.expit(b) - special.expit(a))
        got = eta_derivs(ordinal("logit"), 1.0, 1.0, eta, aux)[0]
        assert got == pytest.approx(expected, rel=1e-10)
        # probit, middle category: log(Phi(b) - Phi(a)) via log_ndtr differences
        if a > 0:
            la, lb = special.log_ndtr(-a), special.log_ndtr(-b)
        else:
            la, lb = special.log_ndtr(b), special.log_ndtr(a)
        expected = la + math.log1p(-math.exp(lb - la))
        got = eta_derivs(ordinal("probit"), 1.0, 1.0, eta, aux)[0]
        assert got == pytest.approx(expected, rel=1e-10)
        assert all(
            np.isfinite(eta_derivs(ordinal(lk), float(y), 1.0, eta, aux)).all()
            for lk in ("logit", "probit")
            for y in range(3)
        )


def test_polygamma_functions_match_scipy():
    from mixedglm.families.polygamma import count_differences, digamma, tetragamma, trigamma

    for x in [1e-3, 0.2, 1.0, 3.7, 9.99, 10.0, 55.0, 1e4]:
        assert digamma(x) == pytest.approx(special.digamma(x), rel=1e-13, abs=1e-14)
        assert trigamma(x) == pytest.approx(special.polygamma(1, x), rel=1e-13)
        assert tetragamma(x) == pytest.approx(special.polygamma(2, x), rel=1e-12)
    for y in [0.0, 1.0, 5.0, 63.0, 64.0, 500.0]:
        for r in [0.05, 1.3, 40.0]:
            got = count_differences(y, r)
            assert got[0] == pytest.approx(special.gammaln(y + r) - special.gammaln(r), abs=1e-11)
            for order in (0, 1, 2):
                expected = special.polygamma(order, y + r) - special.polygamma(order, r)
                assert got[order + 1] == pytest.approx(expected, rel=1e-10, abs=1e-13)
