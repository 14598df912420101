"""Negative binomial counts, log link (Stata's ``menbreg``): ``mean`` dispersion (NB2,
Var = mu (1 + alpha mu), aux = log alpha) or ``constant`` dispersion (NB1,
Var = mu (1 + delta), aux = log delta)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import gammaln

from mixedglm.families.base import Family, Row, log_scale_rows
from mixedglm.families.dispatch import KernelSet
from mixedglm.families.numerics import expit, log1pexp
from mixedglm.families.poisson import check_counts
from mixedglm.families.polygamma import count_differences
from mixedglm.jit import kernel


@kernel(inline=True)
def _nb2_scale(eta: float, aux: np.ndarray) -> tuple[float, float, float, float]:
    """NB2's ``r = 1/alpha``, ``x = eta + log alpha``, ``p = expit(x)`` and ``q = 1 - p``."""
    r = math.exp(-aux[0])
    x = eta + aux[0]
    return r, x, expit(x), expit(-x)


@kernel
def nb2_derivs(y: float, n: float, eta: float, aux: np.ndarray):
    """NB2 (size r = 1/alpha) and three eta-derivatives: l = lgamma(y + r) - lgamma(r)
    + y log p - r log(1 + alpha mu) with p = alpha mu / (1 + alpha mu) = expit(eta + a)."""
    r, x, p, q = _nb2_scale(eta, aux)
    g0, _, _, _ = count_differences(y, r)
    l0 = g0 - r * log1pexp(x)
    if y != 0.0:
        l0 -= y * log1pexp(-x)
    w = (r + y) * p * q
    return l0, y - (r + y) * p, -w, -w * (q - p)


@kernel
def nb2_aux_derivs(y, n, eta, aux, l_a, l_ea, l_eea, l_aa) -> None:
    # a = log alpha, r = 1/alpha; dl/dr = D1 + log(1 - p) + 1 - (r + y)/(r + mu)
    r, x, p, q = _nb2_scale(eta, aux)
    _, d1, d2, _ = count_differences(y, r)
    g = d1 - log1pexp(x) + p - y * q / r
    l_a[0] = -r * g
    l_ea[0] = r * p - (r + y) * p * q
    l_eea[0] = r * p * q - (r + y) * p * q * (q - p)
    l_aa[0, 0] = r * g + r * r * d2 + r * p - (math.exp(eta) - y) * q * q


@kernel
def nb1_derivs(y: float, n: float, eta: float, aux: np.ndarray):
    """NB1 (size r = mu / delta): l = lgamma(y + r) - lgamma(r) - r log(1 + delta)
    + y log(delta / (1 + delta))."""
    a = aux[0]
    r = math.exp(eta - a)
    c = log1pexp(a)
    g0, g1, g2, g3 = count_differences(y, r)
    l0 = g0 - r * c
    if y != 0.0:
        l0 -= y * log1pexp(-a)
    t1 = r * (g1 - c)
    t2 = r * r * g2
    return l0, t1, t1 + t2, t1 + 3.0 * t2 + r * r * r * g3


@kernel
def nb1_aux_derivs(y, n, eta, aux, l_a, l_ea, l_eea, l_aa) -> None:
    # a = log delta, r = mu/delta, c = log(1 + delta), qd = delta/(1 + delta)
    a = aux[0]
    r = math.exp(eta - a)
    c = log1pexp(a)
    qd = expit(a)
    _, d1, d2, d3 = count_differences(y, r)
    t1 = r * (d1 - c)
    t2 = r * r * d2
    l_a[0] = -t1 - r * qd + y * (1.0 - qd)
    l_ea[0] = -(t1 + t2) - r * qd
    l_eea[0] = -(t1 + 3.0 * t2 + r * r * r * d3) - r * qd
    l_aa[0, 0] = t1 + t2 + 2.0 * r * qd - (r + y) * qd * (1.0 - qd)


@dataclass(frozen=True)
class NegativeBinomial(Family):
    """``nbinomial``: ``dispersion`` is ``mean`` (NB2) or ``constant`` (NB1)."""

    links: ClassVar[tuple[str, ...]] = ("log",)
    default_link: ClassVar[str] = "log"
    words: ClassVar[str] = "nbinomial"
    stata_command: ClassVar[bool] = True

    @property
    def is_constant(self) -> bool:
        return self.dispersion == "constant"

    def kernels(self) -> KernelSet:
        if self.is_constant:
            return KernelSet(nb1_derivs, nb1_aux_derivs)
        return KernelSet(nb2_derivs, nb2_aux_derivs)

    @property
    def aux_names(self) -> tuple[str, ...]:
        return ("lndelta",) if self.is_constant else ("lnalpha",)

    def aux_start(self, y: np.ndarray, offset: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        mean = max(float(np.mean(y)), 1e-8)
        excess = float(np.var(y)) - mean
        ratio = excess / mean if self.is_constant else excess / mean**2
        return np.array([np.log(min(max(ratio, 0.05), 1e3))])

    def ancillary_rows(self, aux: np.ndarray, cov_aux: np.ndarray, level: float) -> list[Row]:
        word = "delta" if self.is_constant else "alpha"
        return log_scale_rows(f"/ln{word}", word, float(aux[0]), float(cov_aux[0, 0]), level)

    def log_constant(self, y: np.ndarray, trials: np.ndarray) -> np.ndarray:
        return -gammaln(y + 1.0)

    def check_outcome(self, y: np.ndarray, trials: np.ndarray | None, name: str) -> None:
        check_counts(y, name, self.model_words)

    def header_lines(self) -> list[str]:
        return [f"Overdispersion:{self.dispersion or 'mean':>16}"]
