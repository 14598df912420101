"""Ordinal outcomes: coding the categories, the cut-point parameterisation, probabilities.

A cumulative-link model with categories 1..K (coded 0..K-1) and cut points
``c_1 < ... < c_{K-1}`` has ``P(y <= k | eta) = F(c_k - eta)``, Stata's ``meologit`` /
``meoprobit`` convention (``ordinal::clmm``'s too), with no constant in ``eta``.

The cut points are estimated as ``aux = (c_1, log(c_2 - c_1), ..., log(c_{K-1} - c_{K-2}))``:
every real vector is a valid, ordered set of cut points, so Newton steps and the grid search
of the start values never leave the parameter space (with raw cut points a step that crosses
two of them makes a category's probability negative and the log-likelihood -inf, which the
per-cluster mode finding of the quadrature cannot recover from). The cut points and their
standard errors are reported on Stata's scale by the delta method, which at the maximum is
exactly the inverse information of the raw cut points (the parameterisation is one-to-one
and smooth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import special

from mixedglm.errors import DataError, MixedGLMError
from mixedglm.families.base import Family, Row, plain_row
from mixedglm.families.dispatch import KernelSet
from mixedglm.families.numerics import (
    LOG_SQRT_2PI,
    SQRT_2,
    expit,
    log1mexp,
    log1pexp,
    log_ndtr_and_mills,
)
from mixedglm.jit import kernel

_LOGIT, _PROBIT, _CLOGLOG = 0, 1, 2
_LINK_CODES = {"logit": _LOGIT, "probit": _PROBIT, "cloglog": _CLOGLOG}
_ORDINAL_WORDS = {"logit": "ologit", "probit": "oprobit", "cloglog": "ocloglog"}
_LATENT_VARIANCE = {"logit": math.pi**2 / 3.0, "probit": 1.0, "cloglog": math.pi**2 / 6.0}


def ordinal_outcome(column: pd.Series, name: str) -> tuple[np.ndarray, tuple, list[str]]:
    """Code an ordinal outcome 0..K-1.

    A categorical column keeps its categories' order (Stata value labels, pandas ordered
    categories) and every category must be observed; a numeric column's categories are its
    distinct values in increasing order. Returns the codes (floats), the categories and
    notes.
    """
    notes: list[str] = []
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = list(column.cat.categories)
        codes = column.cat.codes.to_numpy()
        counts = np.bincount(codes, minlength=len(categories))
        empty = [str(categories[j]) for j in np.flatnonzero(counts == 0)]
        if empty:
            raise DataError(
                f"ordinal outcome '{name}' has categor{'ies' if len(empty) > 1 else 'y'} "
                f"{', '.join(repr(e) for e in empty)} that no observation in the estimation "
                "sample chose: its cut point cannot be estimated; drop the unused categories "
                "(e.g. .cat.remove_unused_categories()) or merge them with a neighbour"
            )
        y = codes.astype(float)
    else:
        if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            raise DataError(
                f"ordinal outcome '{name}' is text: make it an ordered categorical "
                "(pd.Categorical(..., ordered=True)) or numeric so that its order is known"
            )
        values = column.to_numpy(dtype=float)
        categories_f, codes = np.unique(values, return_inverse=True)
        categories = [_plain(v) for v in categories_f]
        y = codes.astype(float)
        if np.all(categories_f == np.round(categories_f)) and categories_f.size > 1:
            full = np.arange(categories_f[0], categories_f[-1] + 1)
            missing = [f"{v:g}" for v in full if v not in set(categories_f)]
            if missing and len(missing) <= 10:
                notes.append(
                    f"note: {name} takes no value {', '.join(missing)}: the categories are the "
                    f"{categories_f.size} values observed"
                )
    if len(categories) < 2:
        only = f" ({categories[0]!r})" if categories else ""
        raise DataError(
            f"ordinal outcome '{name}' has a single category{only} in the estimation sample: "
            "an ordinal model needs at least two"
        )
    return np.ascontiguousarray(y), tuple(categories), notes


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def cutpoints(aux: np.ndarray) -> np.ndarray:
    """Cut points ``c_1 < ... < c_J`` from the estimation parameters."""
    aux = np.asarray(aux, dtype=float)
    return aux[0] + np.concatenate([[0.0], np.cumsum(np.exp(aux[1:]))])


def cutpoint_jacobian(aux: np.ndarray) -> np.ndarray:
    """``d c_j / d aux_m`` (J x J): 1 for m = 0, exp(aux_m) for 1 <= m <= j."""
    aux = np.asarray(aux, dtype=float)
    n = aux.shape[0]
    jac = np.tril(np.tile(np.exp(aux), (n, 1)))
    jac[:, 0] = 1.0
    return jac


def aux_from_cutpoints(cuts: np.ndarray) -> np.ndarray:
    """The inverse of :func:`cutpoints` (cut points must increase)."""
    cuts = np.asarray(cuts, dtype=float)
    return np.concatenate([cuts[:1], np.log(np.diff(cuts))])


def _cdf(link: str, x: np.ndarray) -> np.ndarray:
    if link == "logit":
        return special.expit(x)
    if link == "probit":
        return special.ndtr(x)
    return -np.expm1(-np.exp(x))


def _quantile(link: str, p: np.ndarray) -> np.ndarray:
    if link == "logit":
        return special.logit(p)
    if link == "probit":
        return special.ndtri(p)
    return np.log(-np.log1p(-p))


def cut_start(link: str, y: np.ndarray, n_categories: int) -> np.ndarray:
    """Start values: the cut points that reproduce the sample's cumulative proportions
    with ``eta = 0``."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_categories).astype(float)
    cum = np.cumsum(counts)[:-1] / counts.sum()
    cuts = _quantile(link, np.clip(cum, 1e-6, 1 - 1e-6))
    cuts = np.maximum.accumulate(cuts + 1e-3 * np.arange(cuts.size))
    return aux_from_cutpoints(cuts)


def category_probabilities(link: str, eta: np.ndarray, aux: np.ndarray) -> np.ndarray:
    """``P(y = k | eta)`` for every category: ``(len(eta), K)`` (rows sum to one)."""
    cuts = cutpoints(aux)
    eta = np.asarray(eta, dtype=float)
    cum = _cdf(link, cuts[None, :] - eta.reshape(-1, 1))
    ones = np.ones((cum.shape[0], 1))
    return np.diff(np.hstack([np.zeros_like(ones), cum, ones]), axis=1).reshape(
        *eta.shape, cuts.size + 1
    )


# -- compiled kernels ----------------------------------------------------------------------


@kernel
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


@kernel
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
    if link == _LOGIT:
        if not has_lo:
            log_p = -log1pexp(-b)
            rb = expit(-b)
        elif not has_hi:
            log_p = -log1pexp(a)
            ra = expit(a)
        else:
            # sigma(b) - sigma(a) = sigma(b) sigma(-a) (1 - e^(a - b))
            log_d = log1mexp(a - b)
            log_p = -log1pexp(-b) - log1pexp(a) + log_d
            ra = math.exp(-log1pexp(-a) + log1pexp(-b) - log_d)
            rb = math.exp(-log1pexp(b) + log1pexp(a) - log_d)
        sa = expit(a) if has_lo else 0.0
        sb = expit(b) if has_hi else 0.0
        s1a = 1.0 - 2.0 * sa
        s2a = 1.0 - 6.0 * sa * (1.0 - sa)
        s1b = 1.0 - 2.0 * sb
        s2b = 1.0 - 6.0 * sb * (1.0 - sb)
        return log_p, ra, rb, s1a, s2a, s1b, s2b
    if link == _PROBIT:
        if not has_lo:
            log_p, rb = log_ndtr_and_mills(b)
        elif not has_hi:
            log_p, ra = log_ndtr_and_mills(-a)
        else:
            if b <= 0.0:
                la, _ = log_ndtr_and_mills(a)
                lb, _ = log_ndtr_and_mills(b)
                log_p = lb + log1mexp(la - lb)
            elif a >= 0.0:
                la, _ = log_ndtr_and_mills(-a)
                lb, _ = log_ndtr_and_mills(-b)
                log_p = la + log1mexp(lb - la)
            else:
                # a < 0 < b: 1 - Phi(a) - Phi(-b), both terms below one half
                log_p = math.log1p(-0.5 * (math.erfc(-a / SQRT_2) + math.erfc(b / SQRT_2)))
            ra = math.exp(-0.5 * a * a - LOG_SQRT_2PI - log_p)
            rb = math.exp(-0.5 * b * b - LOG_SQRT_2PI - log_p)
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


@kernel
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


@kernel
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


@kernel
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


@kernel
def ologit_derivs(y: float, n: float, eta: float, aux: np.ndarray):
    return _ordinal_derivs(_LOGIT, y, eta, aux)


@kernel
def ologit_aux_derivs(y, n, eta, aux, l_a, l_ea, l_eea, l_aa) -> None:
    _ordinal_aux_derivs(_LOGIT, y, eta, aux, l_a, l_ea, l_eea, l_aa)


@kernel
def oprobit_derivs(y: float, n: float, eta: float, aux: np.ndarray):
    return _ordinal_derivs(_PROBIT, y, eta, aux)


@kernel
def oprobit_aux_derivs(y, n, eta, aux, l_a, l_ea, l_eea, l_aa) -> None:
    _ordinal_aux_derivs(_PROBIT, y, eta, aux, l_a, l_ea, l_eea, l_aa)


@kernel
def ocloglog_derivs(y: float, n: float, eta: float, aux: np.ndarray):
    return _ordinal_derivs(_CLOGLOG, y, eta, aux)


@kernel
def ocloglog_aux_derivs(y, n, eta, aux, l_a, l_ea, l_eea, l_aa) -> None:
    _ordinal_aux_derivs(_CLOGLOG, y, eta, aux, l_a, l_ea, l_eea, l_aa)


_KERNELS = {
    "logit": KernelSet(ologit_derivs, ologit_aux_derivs),
    "probit": KernelSet(oprobit_derivs, oprobit_aux_derivs),
    "cloglog": KernelSet(ocloglog_derivs, ocloglog_aux_derivs),
}


@dataclass(frozen=True)
class Ordinal(Family):
    """Cumulative-link model; ``categories`` set from the data (:meth:`with_categories`)."""

    links: ClassVar[tuple[str, ...]] = ("logit", "probit", "cloglog")
    default_link: ClassVar[str] = "logit"

    def kernels(self) -> KernelSet:
        return _KERNELS[self.link]

    @property
    def is_ordinal(self) -> bool:
        return True

    @property
    def aux_names(self) -> tuple[str, ...]:
        if not self.categories:
            raise MixedGLMError(
                "an ordinal family needs its categories (Family.with_categories) before fitting"
            )
        return ("cut1", *(f"lngap{j}" for j in range(2, len(self.categories))))

    def aux_start(self, y: np.ndarray, offset: np.ndarray) -> np.ndarray:
        start = cut_start(self.link, y, len(self.categories))
        start[0] += float(np.mean(offset)) if len(offset) else 0.0
        return start

    def ancillary_rows(self, aux: np.ndarray, cov_aux: np.ndarray, level: float) -> list[Row]:
        jac = cutpoint_jacobian(aux)
        cov = jac @ np.asarray(cov_aux, dtype=float) @ jac.T
        return [
            plain_row(f"/cut{j + 1}", float(c), float(cov[j, j]), level)
            for j, c in enumerate(cutpoints(aux))
        ]

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        raise MixedGLMError(
            "an ordinal model has no mean outcome: predict(kind='pr') gives the "
            "probability of each category"
        )

    @property
    def latent_variance(self) -> float | None:
        return _LATENT_VARIANCE[self.link]

    @property
    def model_words(self) -> str:
        return _ORDINAL_WORDS[self.link]

    @property
    def uses_glm_title(self) -> bool:
        return self.link == "cloglog"

    @property
    def has_xt_layout(self) -> bool:
        return self.link != "cloglog"

    @property
    def xt_title(self) -> str:
        words = {"logit": "logistic", "probit": "probit"}[self.link]
        return f"Random-effects ordered {words} regression"
