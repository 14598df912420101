"""Scalar log-likelihood kernels of the families, compiled with numba.

Each family gives, for one observation, the log-likelihood ``l(eta)`` (without the
normalising constant, which is added once per observation by :func:`log_constant`) and its
first three derivatives in the linear predictor ``eta``; families with auxiliary
parameters (the gaussian's residual log-SD, the negative binomial's log-dispersion, the
gamma's log-scale, the ordinal cut points) also give the derivatives in them. The engines
call these inside their loops.

Codes are plain integers so that one compiled kernel serves every family.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from mixedglm.families.polygamma import count_differences, digamma, trigamma

# family codes
BINOMIAL = 0
POISSON = 1
GAUSSIAN = 2
NBINOM2 = 3  # negative binomial, mean dispersion: Var = mu (1 + alpha mu); aux = log alpha
NBINOM1 = 4  # negative binomial, constant dispersion: Var = mu (1 + delta); aux = log delta
GAMMA = 5  # gamma, log link: Var = s mu^2; aux = log s (s = 1/shape)
ORDINAL = 6  # cumulative link; aux = first cut point, then logs of the gaps between cuts

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


# -- negative binomial and gamma ------------------------------------------------------------


@numba.njit(cache=True)
def _nb2_derivs(y: float, eta: float, a: float) -> tuple[float, float, float, float]:
    """NB2 (mean dispersion, a = log alpha, size r = 1/alpha) and three eta-derivatives.

    l = lgamma(y + r) - lgamma(r) + y log p - r log(1 + alpha mu) with
    p = alpha mu / (1 + alpha mu) = expit(eta + a).
    """
    r = math.exp(-a)
    x = eta + a
    p = _expit(x)
    q = _expit(-x)
    g0, _, _, _ = count_differences(y, r)
    l0 = g0 - r * _log1pexp(x)
    if y != 0.0:
        l0 -= y * _log1pexp(-x)
    w = (r + y) * p * q
    return l0, y - (r + y) * p, -w, -w * (q - p)


@numba.njit(cache=True)
def _nb1_derivs(y: float, eta: float, a: float) -> tuple[float, float, float, float]:
    """NB1 (constant dispersion, a = log delta, size r = mu / delta) and three
    eta-derivatives: l = lgamma(y + r) - lgamma(r) - r log(1 + delta)
    + y log(delta / (1 + delta))."""
    r = math.exp(eta - a)
    c = _log1pexp(a)
    g0, g1, g2, g3 = count_differences(y, r)
    l0 = g0 - r * c
    if y != 0.0:
        l0 -= y * _log1pexp(-a)
    t1 = r * (g1 - c)
    t2 = r * r * g2
    return l0, t1, t1 + t2, t1 + 3.0 * t2 + r * r * r * g3


@numba.njit(cache=True)
def _gamma_derivs(y: float, eta: float, a: float) -> tuple[float, float, float, float]:
    """Gamma with log link (a = log s, shape k = 1/s) and three eta-derivatives:
    l = k (log k + log y - eta - y/mu) - lgamma(k); -log y is in :func:`log_constant`."""
    k = math.exp(-a)
    z = y * math.exp(-eta)
    l0 = k * (-a + math.log(y) - eta - z) - math.lgamma(k)
    return l0, k * (z - 1.0), -k * z, k * z


# -- ordinal (cumulative link) --------------------------------------------------------------


@numba.njit(cache=True)
def _log1mexp(x: float) -> float:
    """log(1 - exp(x)) for x < 0, accurate near 0 and in the tail."""
    if x > -0.6931471805599453:
        return math.log(-math.expm1(x))
    return math.log1p(-math.exp(x))


@numba.njit(cache=True)
def _ordinal_cuts(y: float, aux: np.ndarray) -> tuple[float, float]:
    """The cut points below and above category ``y`` (codes 0..J): -inf and +inf at the ends.

    ``aux`` = (c_1, log(c_2 - c_1), ..., log(c_J - c_{J-1})): ordered for any real values.
    """
    k = int(y)
    n_cuts = aux.shape[0]
    c = aux[0]
    if k == 0:
        return -np.inf, c
    for m in range(1, k):
        c += math.exp(aux[m])
    if k < n_cuts:
        return c, c + math.exp(aux[k])
    return c, np.inf


@numba.njit(cache=True)
def _ordinal_ratios(
    link: int, lo: float, hi: float, eta: float
) -> tuple[float, float, float, float, float, float, float]:
    """log P with P = F(hi - eta) - F(lo - eta), the ratios A = f(a)/P and B = f(b)/P
    (a = lo - eta, b = hi - eta; zero at an infinite end), and f'/f, f''/f at a and b."""
    a = lo - eta
    b = hi - eta
    has_lo = lo > -np.inf
    has_hi = hi < np.inf
    ra = 0.0
    rb = 0.0
    if link == LOGIT:
        if not has_lo:
            log_p = -_log1pexp(-b)
            rb = _expit(-b)
        elif not has_hi:
            log_p = -_log1pexp(a)
            ra = _expit(a)
        else:
            # sigma(b) - sigma(a) = sigma(b) sigma(-a) (1 - e^(a - b))
            log_d = _log1mexp(a - b)
            log_p = -_log1pexp(-b) - _log1pexp(a) + log_d
            ra = math.exp(-_log1pexp(-a) + _log1pexp(-b) - log_d)
            rb = math.exp(-_log1pexp(b) + _log1pexp(a) - log_d)
        sa = _expit(a) if has_lo else 0.0
        sb = _expit(b) if has_hi else 0.0
        s1a = 1.0 - 2.0 * sa
        s2a = 1.0 - 6.0 * sa * (1.0 - sa)
        s1b = 1.0 - 2.0 * sb
        s2b = 1.0 - 6.0 * sb * (1.0 - sb)
        return log_p, ra, rb, s1a, s2a, s1b, s2b
    if link == PROBIT:
        if not has_lo:
            log_p, rb = _log_ndtr_and_mills(b)
        elif not has_hi:
            log_p, ra = _log_ndtr_and_mills(-a)
        else:
            if b <= 0.0:
                la, _ = _log_ndtr_and_mills(a)
                lb, _ = _log_ndtr_and_mills(b)
                log_p = lb + _log1mexp(la - lb)
            elif a >= 0.0:
                la, _ = _log_ndtr_and_mills(-a)
                lb, _ = _log_ndtr_and_mills(-b)
                log_p = la + _log1mexp(lb - la)
            else:
                # a < 0 < b: 1 - Phi(a) - Phi(-b), both terms below one half
                log_p = math.log1p(-0.5 * (math.erfc(-a / _SQRT_2) + math.erfc(b / _SQRT_2)))
            ra = math.exp(-0.5 * a * a - _LOG_SQRT_2PI - log_p)
            rb = math.exp(-0.5 * b * b - _LOG_SQRT_2PI - log_p)
        s1a = -a if has_lo else 0.0
        s1b = -b if has_hi else 0.0
        return log_p, ra, rb, s1a, s1a * s1a - 1.0, s1b, s1b * s1b - 1.0
    # complementary log-log: F(x) = 1 - exp(-e^x), f = e^x exp(-e^x)
    ea = math.exp(a) if has_lo else 0.0
    if not has_hi:
        log_p = -ea
        ra = ea
        eb = 0.0
    else:
        eb = math.exp(b)
        gap = ea * math.expm1(b - a) if has_lo else eb  # e^b - e^a without cancellation
        den = -math.expm1(-gap)
        log_p = -ea + math.log(den)
        ra = ea / den
        rb = eb * math.exp(-gap) / den
    s1a = 1.0 - ea
    s1b = 1.0 - eb
    return log_p, ra, rb, s1a, s1a * s1a - ea, s1b, s1b * s1b - eb


@numba.njit(cache=True)
def _ordinal_partials(
    link: int, lo: float, hi: float, eta: float
) -> tuple[float, float, float, float, float, float, float, float, float, float]:
    """log P and its partial derivatives in the two cut points (A = lower, B = upper):
    L_A, L_B, L_AA, L_AB, L_BB, L_AAA, L_AAB, L_ABB, L_BBB."""
    log_p, ra, rb, s1a, s2a, s1b, s2b = _ordinal_ratios(link, lo, hi, eta)
    la = -ra
    lb = rb
    laa = -ra * s1a - ra * ra
    lbb = rb * s1b - rb * rb
    lab = ra * rb
    laaa = -ra * s2a - 3.0 * ra * ra * s1a - 2.0 * ra * ra * ra
    lbbb = rb * s2b - 3.0 * rb * rb * s1b + 2.0 * rb * rb * rb
    laab = ra * s1a * rb + 2.0 * ra * ra * rb
    labb = ra * rb * s1b - 2.0 * ra * rb * rb
    return log_p, la, lb, laa, lab, lbb, laaa, laab, labb, lbbb


@numba.njit(cache=True)
def _ordinal_derivs(
    link: int, y: float, eta: float, aux: np.ndarray
) -> tuple[float, float, float, float]:
    lo, hi = _ordinal_cuts(y, aux)
    log_p, la, lb, laa, lab, lbb, laaa, laab, labb, lbbb = _ordinal_partials(link, lo, hi, eta)
    return (
        log_p,
        -(la + lb),
        laa + 2.0 * lab + lbb,
        -(laaa + 3.0 * laab + 3.0 * labb + lbbb),
    )


@numba.njit(cache=True)
def _ordinal_aux_derivs(
    link: int,
    y: float,
    eta: float,
    aux: np.ndarray,
    l_a: np.ndarray,
    l_ea: np.ndarray,
    l_eea: np.ndarray,
    l_aa: np.ndarray,
) -> None:
    """Chain rule from the two cut points around ``y`` to ``aux``: dc_j/daux_0 = 1 and
    dc_j/daux_m = exp(aux_m) for 1 <= m <= j (also the only second derivative)."""
    n_cuts = aux.shape[0]
    k = int(y)
    lo, hi = _ordinal_cuts(y, aux)
    _, la, lb, laa, lab, lbb, laaa, laab, labb, lbbb = _ordinal_partials(link, lo, hi, eta)
    # the Jacobians of the lower and upper cut, held in l_ea and l_eea until the end
    for m in range(n_cuts):
        e_m = 1.0 if m == 0 else math.exp(aux[m])
        l_ea[m] = e_m if (k >= 1 and m <= k - 1) else 0.0
        l_eea[m] = e_m if (k < n_cuts and m <= k) else 0.0
    for m in range(n_cuts):
        ja_m = l_ea[m]
        jb_m = l_eea[m]
        for n in range(n_cuts):
            ja_n = l_ea[n]
            jb_n = l_eea[n]
            l_aa[m, n] = ja_m * ja_n * laa + (ja_m * jb_n + jb_m * ja_n) * lab + jb_m * jb_n * lbb
        if m >= 1:
            l_aa[m, m] += la * ja_m + lb * jb_m
    le_a = -(laa + lab)
    le_b = -(lab + lbb)
    lee_a = laaa + 2.0 * laab + labb
    lee_b = laab + 2.0 * labb + lbbb
    for m in range(n_cuts):
        ja_m = l_ea[m]
        jb_m = l_eea[m]
        l_a[m] = la * ja_m + lb * jb_m
        l_ea[m] = le_a * ja_m + le_b * jb_m
        l_eea[m] = lee_a * ja_m + lee_b * jb_m


@numba.njit(cache=True, inline="always")
def logit_loglik_mean(y: float, n: float, eta: float) -> tuple[float, float]:
    """Binomial-logit kernel ``y eta - n log(1 + e^eta)`` and the mean ``expit(eta)``.

    One exponential, z = exp(-|eta|), gives both; log(1 + z) rather than log1p(z) (a quarter
    faster in the quadrature's hot loop) errs by less than 1.2e-16 in absolute terms, which
    is all a sum of log-likelihood terms needs.
    """
    z = math.exp(-abs(eta))
    if eta >= 0.0:
        return y * eta - n * (eta + math.log(1.0 + z)), 1.0 / (1.0 + z)
    return y * eta - n * math.log(1.0 + z), z / (1.0 + z)


@numba.njit(cache=True)
def eta_derivs(
    family: int, link: int, y: float, n: float, eta: float, aux: np.ndarray
) -> tuple[float, float, float, float]:
    """Log-likelihood (kernel only) and its derivatives 1-3 in eta for one observation.

    ``n`` is the number of binomial trials (1 for bernoulli), unused otherwise; ``aux``
    holds the family's auxiliary parameters (gaussian: log of the residual SD; negative
    binomial: log alpha or log delta; gamma: log of the scale; ordinal: the cut points as
    in :func:`_ordinal_cuts`, ``y`` then being the category's code 0..J).
    """
    if family == BINOMIAL:
        if link == LOGIT:
            l0, mu = logit_loglik_mean(y, n, eta)
            v = mu * (1.0 - mu)
            return l0, y - n * mu, -n * v, -n * v * (1.0 - 2.0 * mu)
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
    if family == NBINOM2:
        return _nb2_derivs(y, eta, aux[0])
    if family == NBINOM1:
        return _nb1_derivs(y, eta, aux[0])
    if family == GAMMA:
        return _gamma_derivs(y, eta, aux[0])
    if family == ORDINAL:
        return _ordinal_derivs(link, y, eta, aux)
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
    elif family == NBINOM2:
        # a = log alpha, r = 1/alpha; dl/dr = D1 + log(1 - p) + 1 - (r + y)/(r + mu)
        a = aux[0]
        r = math.exp(-a)
        x = eta + a
        p = _expit(x)
        q = _expit(-x)
        _, d1, d2, _ = count_differences(y, r)
        g = d1 - _log1pexp(x) + p - y * q / r
        l_a[0] = -r * g
        l_ea[0] = r * p - (r + y) * p * q
        l_eea[0] = r * p * q - (r + y) * p * q * (q - p)
        l_aa[0, 0] = r * g + r * r * d2 + r * p - (math.exp(eta) - y) * q * q
    elif family == NBINOM1:
        # a = log delta, r = mu/delta, c = log(1 + delta), qd = delta/(1 + delta)
        a = aux[0]
        r = math.exp(eta - a)
        c = _log1pexp(a)
        qd = _expit(a)
        _, d1, d2, d3 = count_differences(y, r)
        t1 = r * (d1 - c)
        t2 = r * r * d2
        l_a[0] = -t1 - r * qd + y * (1.0 - qd)
        l_ea[0] = -(t1 + t2) - r * qd
        l_eea[0] = -(t1 + 3.0 * t2 + r * r * r * d3) - r * qd
        l_aa[0, 0] = t1 + t2 + 2.0 * r * qd - (r + y) * qd * (1.0 - qd)
    elif family == GAMMA:
        # a = log s, shape k = 1/s; dl/dk = log k + log y - eta - y/mu + 1 - psi(k)
        a = aux[0]
        k = math.exp(-a)
        z = y * math.exp(-eta)
        g = -a + math.log(y) - eta - z + 1.0 - digamma(k)
        l_a[0] = -k * g
        l_ea[0] = -k * (z - 1.0)
        l_eea[0] = k * z
        l_aa[0, 0] = k * g + k - k * k * trigamma(k)
    elif family == ORDINAL:
        _ordinal_aux_derivs(link, y, eta, aux, l_a, l_ea, l_eea, l_aa)


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
    # gaussian: canonical, the engines use the observed derivatives instead; the families
    # with a dispersion or cut points are fitted with the observed curvature only
    return 0.0, 0.0


def n_aux_params(family: int, n_categories: int = 0) -> int:
    """How many auxiliary parameters the family carries (ordinal: one per cut point)."""
    if family == ORDINAL:
        return max(n_categories - 1, 0)
    return 1 if family in (GAUSSIAN, NBINOM2, NBINOM1, GAMMA) else 0


def log_constant(family: int, y: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The per-observation normalising constant of the log-likelihood (data only).

    Binomial: log C(n, y); Poisson and negative binomial: -log y!; gamma: -log y (the rest
    of its density depends on the shape and is in the kernel); ordinal: none;
    gaussian: -log sqrt(2 pi).
    """
    from scipy.special import gammaln

    if family == BINOMIAL:
        return gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)
    if family in (POISSON, NBINOM2, NBINOM1):
        return -gammaln(y + 1.0)
    if family == GAMMA:
        return -np.log(y)
    if family == ORDINAL:
        return np.zeros(y.shape)
    return np.full(y.shape, -_LOG_SQRT_2PI)
