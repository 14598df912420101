"""Scalar log-likelihood kernels of the families, compiled with numba.

Each family gives, for one observation, the log-likelihood ``l(eta)`` (without the
normalising constant, which is added once per observation by :func:`log_constant`) and its
first three derivatives in the linear predictor ``eta``; families with an auxiliary
parameter (the residual log-SD of the gaussian, later dispersion and cut points) also give
the derivatives in that parameter. The engines call these inside their loops.

Codes are plain integers so that one compiled kernel serves every family.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# family codes
BINOMIAL = 0
POISSON = 1
GAUSSIAN = 2

# link codes
LOGIT = 0
PROBIT = 1
CLOGLOG = 2
LOG = 3
IDENTITY = 4

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@numba.njit(cache=True)
def _log1pexp(x: float) -> float:
    """log(1 + exp(x)) without overflow."""
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@numba.njit(cache=True)
def _expit(x: float) -> float:
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@numba.njit(cache=True)
def _log_ndtr_and_mills(x: float) -> tuple[float, float]:
    """log Phi(x) and the inverse Mills ratio phi(x) / Phi(x), accurate in both tails."""
    if x > -5.0:
        cdf = 0.5 * math.erfc(-x / _SQRT_2)
        pdf = math.exp(-0.5 * x * x - _LOG_SQRT_2PI)
        return math.log(cdf), pdf / cdf
    # Lower tail: Phi(x) = phi(x) * M(-x) with Mills' ratio M(t) = 1 / (t + 1/(t + 2/(t + ...)))
    t = -x
    frac = t
    for k in range(60, 0, -1):
        frac = t + k / frac
    mills = 1.0 / frac
    log_pdf = -0.5 * x * x - _LOG_SQRT_2PI
    return log_pdf + math.log(mills), 1.0 / mills


@numba.njit(cache=True)
def _log_ndtr_derivs(x: float) -> tuple[float, float, float, float]:
    """log Phi(x) and its first three derivatives."""
    f0, lam = _log_ndtr_and_mills(x)
    f2 = -lam * (x + lam)
    f3 = -(f2 * (x + lam) + lam * (1.0 + f2))
    return f0, lam, f2, f3


@numba.njit(cache=True)
def _log1m_exp_neg_exp_derivs(eta: float) -> tuple[float, float, float, float]:
    """a(eta) = log(1 - exp(-exp(eta))) (the cloglog log-probability) and three derivatives."""
    t = math.exp(eta)
    f0 = math.log(-math.expm1(-t)) if t < 745.0 else 0.0
    # A(t) = t / expm1(t) = d a / d eta; derivatives in t, then chain rule with dt/deta = t.
    if t < 1e-2:
        a = 1.0 - t / 2.0 + t * t / 12.0 - t**4 / 720.0
        a1 = -0.5 + t / 6.0 - t**3 / 180.0
        a2 = 1.0 / 6.0 - t * t / 60.0
    elif t < 700.0:
        q = math.exp(-t)
        s = -math.expm1(-t)  # 1 - q
        a = t * q / s
        a1 = q * (1.0 - q - t) / (s * s)
        a2 = q * (t - 2.0 * s) / (s * s) - 2.0 * q * q * (1.0 - q - t) / (s * s * s)
    else:
        a = 0.0
        a1 = 0.0
        a2 = 0.0
    f1 = a
    f2 = t * a1
    f3 = t * a1 + t * t * a2
    return f0, f1, f2, f3


@numba.njit(cache=True)
def eta_derivs(
    family: int, link: int, y: float, n: float, eta: float, aux: np.ndarray
) -> tuple[float, float, float, float]:
    """Log-likelihood (kernel only) and its derivatives 1-3 in eta for one observation.

    ``n`` is the number of binomial trials (1 for bernoulli), unused otherwise; ``aux``
    holds the family's auxiliary parameters (gaussian: log of the residual SD).
    """
    if family == BINOMIAL:
        if link == LOGIT:
            # one exponential: z = exp(-|eta|) gives log(1 + e^eta) and the mean
            z = math.exp(-abs(eta))
            if eta >= 0.0:
                mu = 1.0 / (1.0 + z)
                log1pexp = eta + math.log1p(z)
            else:
                mu = z / (1.0 + z)
                log1pexp = math.log1p(z)
            v = mu * (1.0 - mu)
            return y * eta - n * log1pexp, y - n * mu, -n * v, -n * v * (1.0 - 2.0 * mu)
        if link == PROBIT:
            p0, p1, p2, p3 = _log_ndtr_derivs(eta)
            q0, q1, q2, q3 = _log_ndtr_derivs(-eta)
            m = n - y
            return (
                (y * p0 if y != 0.0 else 0.0) + (m * q0 if m != 0.0 else 0.0),
                y * p1 - m * q1,
                y * p2 + m * q2,
                y * p3 - m * q3,
            )
        # complementary log-log: P(y=1) = 1 - exp(-exp(eta)), log P(y=0) = -exp(eta)
        c0, c1, c2, c3 = _log1m_exp_neg_exp_derivs(eta)
        t = math.exp(eta)
        m = n - y
        return (
            (y * c0 if y != 0.0 else 0.0) - m * t,
            y * c1 - m * t,
            y * c2 - m * t,
            y * c3 - m * t,
        )
    if family == POISSON:
        mu = math.exp(eta)
        return y * eta - mu, y - mu, -mu, -mu
    # gaussian, identity link; aux[0] = log sigma_e
    inv_var = math.exp(-2.0 * aux[0])
    r = y - eta
    return -aux[0] - 0.5 * r * r * inv_var, r * inv_var, -inv_var, 0.0


@numba.njit(cache=True)
def aux_derivs(
    family: int,
    link: int,
    y: float,
    n: float,
    eta: float,
    aux: np.ndarray,
    l_a: np.ndarray,
    l_ea: np.ndarray,
    l_eea: np.ndarray,
    l_aa: np.ndarray,
) -> None:
    """Derivatives of the kernel in the auxiliary parameters, written into the arrays.

    ``l_a[a]`` = dl/da, ``l_ea[a]`` = d2l/(deta da), ``l_eea[a]`` = d3l/(deta2 da),
    ``l_aa[a, b]`` = d2l/(da db).
    """
    if family == GAUSSIAN:
        inv_var = math.exp(-2.0 * aux[0])
        r = y - eta
        l_a[0] = -1.0 + r * r * inv_var
        l_ea[0] = -2.0 * r * inv_var
        l_eea[0] = 2.0 * inv_var
        l_aa[0, 0] = -2.0 * r * r * inv_var


@numba.njit(cache=True)
def fisher_weight(family: int, link: int, n: float, eta: float) -> tuple[float, float]:
    """Expected information weight W(eta) = n mu'(eta)^2 / V(mu) and dW/deta.

    Used only where the caller asks for the Fisher-scoring curvature (lme4's PIRLS weights);
    for canonical links it equals minus the observed second derivative.
    """
    if family == BINOMIAL:
        if link == LOGIT:
            mu = _expit(eta)
            v = mu * (1.0 - mu)
            return n * v, n * v * (1.0 - 2.0 * mu)
        if link == PROBIT:
            # W = n phi^2 / (Phi (1 - Phi)) = n * lam(eta) * lam(-eta), lam = phi/Phi
            _, l1, l2, _ = _log_ndtr_derivs(eta)
            _, m1, m2, _ = _log_ndtr_derivs(-eta)
            w = n * l1 * m1
            # d/deta [lam(eta) lam(-eta)] = lam'(eta) lam(-eta) - lam(eta) lam'(-eta)
            return w, n * (l2 * m1 - l1 * m2)
        # cloglog: mu = 1 - exp(-t), mu' = t exp(-t); W = n t^2 exp(-t) / (1 - exp(-t))
        t = math.exp(eta)
        if t > 700.0:
            return 0.0, 0.0
        _, a, a_eta, _ = _log1m_exp_neg_exp_derivs(eta)
        # W = n * t * A(eta) with A = t exp(-t)/(1-exp(-t)); dW/deta = n (t A + t A')
        return n * t * a, n * (t * a + t * a_eta)
    if family == POISSON:
        mu = math.exp(eta)
        return mu, mu
    # gaussian: canonical, the engines use the observed derivatives instead
    return 0.0, 0.0


def n_aux_params(family: int) -> int:
    """How many auxiliary parameters the family carries."""
    return 1 if family == GAUSSIAN else 0


def log_constant(family: int, y: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The per-observation normalising constant of the log-likelihood (data only).

    Binomial: log C(n, y); Poisson: -log y!; gaussian: -log sqrt(2 pi).
    """
    from scipy.special import gammaln

    if family == BINOMIAL:
        return gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)
    if family == POISSON:
        return -gammaln(y + 1.0)
    return np.full(y.shape, -_LOG_SQRT_2PI)
