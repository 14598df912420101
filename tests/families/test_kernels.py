"""The per-observation kernels: derivatives against finite differences, tails, constants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from mixedglm.families import get_family
from mixedglm.families import kernels as k

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
    return k.eta_derivs(fam.code, fam.link_code, y, n, eta, aux)


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
        k.aux_derivs(fam.code, fam.link_code, y, 1.0, eta, np.array([aa]), *out)
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
        w, dw = k.fisher_weight(fam.code, fam.link_code, n, eta)
        if link == "logit":
            mu = special.expit(eta)
            dmu, one_minus = mu * (1 - mu), 1 - mu
        elif link == "probit":
            mu, dmu, one_minus = special.ndtr(eta), stats.norm.pdf(eta), special.ndtr(-eta)
        else:
            mu = -math.expm1(-math.exp(eta))
            dmu, one_minus = math.exp(eta - math.exp(eta)), math.exp(-math.exp(eta))
        assert w == pytest.approx(n * dmu**2 / (mu * one_minus), rel=1e-10)
        wp, _ = k.fisher_weight(fam.code, fam.link_code, n, eta + h)
        wm, _ = k.fisher_weight(fam.code, fam.link_code, n, eta - h)
        assert dw == pytest.approx((wp - wm) / (2 * h), rel=1e-5, abs=1e-8)
