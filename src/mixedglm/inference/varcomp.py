"""Variance components on the scales Stata reports, with delta-method standard errors.

:func:`component_rows`: ``var()`` and ``cov()`` (the estimation table), or ``sd()`` and
``corr()`` (``estat sd``). Intervals: variances and SDs symmetric on the log scale,
covariances symmetric, correlations symmetric on Fisher's z (atanh) scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mixedglm.engines.covariance import CovarianceStructure


@dataclass(frozen=True)
class VarCompRow:
    """One reported component: ``kind`` is var, cov, sd, corr or resvar."""

    group: str
    name: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    kind: str

    @property
    def z(self) -> float | None:
        """z statistic for covariances and correlations (variances sit on a boundary)."""
        if self.kind in ("cov", "corr") and self.se > 0:
            return self.estimate / self.se
        return None

    @property
    def p(self) -> float | None:
        z = self.z
        return None if z is None else float(2 * stats.norm.sf(abs(z)))


def _crit(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 200.0))


def exp_or_inf(x: float) -> float:
    """``exp(x)`` that gives ``inf`` instead of raising ``OverflowError`` (intervals of
    components near a boundary have enormous log-scale half-widths)."""
    return math.exp(x) if x < 709.0 else math.inf


def log_scale_ci(value: float, se: float, crit: float) -> tuple[float, float]:
    """Interval symmetric in log(value) (Stata's for variances and SDs).

    None (NaN, NaN) at or near the boundary, where the interval would reach below the
    smallest or above the largest double: a variance of 1e-10 with an SE of 1e-3 has no
    interval that means anything.
    """
    if not value > 0 or not math.isfinite(se) or not math.isfinite(value):
        return math.nan, math.nan
    half = crit * se / value
    centre = math.log(value)
    if not math.isfinite(half) or centre - half < -708.0 or centre + half > 708.0:
        return math.nan, math.nan
    return math.exp(centre - half), math.exp(centre + half)


def atanh_ci(value: float, se: float, crit: float) -> tuple[float, float]:
    """Interval symmetric in atanh(value) (correlations)."""
    if not -1 < value < 1 or not math.isfinite(se):
        return math.nan, math.nan
    half = crit * se / (1 - value**2)
    if not math.isfinite(half):
        return math.nan, math.nan
    return math.tanh(math.atanh(value) - half), math.tanh(math.atanh(value) + half)


def component_labels(
    structure: CovarianceStructure, prefix: str = "var"
) -> list[tuple[str, str, int, int]]:
    """``(label, kind, a, b)`` of the distinct components, in Stata's order and names."""
    cols = structure.columns
    order = structure.display_order()
    kind = structure.effective_kind
    var_kind, cov_kind = ("var", "cov") if prefix == "var" else ("sd", "corr")
    if kind in ("identity", "exchangeable"):
        joined = " ".join(cols[a] for a in order)
        out = [(f"{var_kind}({joined})", var_kind, order[0], order[0])]
        if kind == "exchangeable":
            out.append((f"{cov_kind}({joined})", cov_kind, order[0], order[1]))
        return out
    out = [(f"{var_kind}({cols[a]})", var_kind, a, a) for a in order]
    if kind == "unstructured":
        for ia, a in enumerate(order):
            for b in order[ia + 1 :]:
                out.append((f"{cov_kind}({cols[a]},{cols[b]})", cov_kind, a, b))
    return out


def _sigma_and_jacobian(
    structure: CovarianceStructure, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``Sigma`` ``(q, q)`` and ``dSigma/dtheta`` ``(n_theta, q, q)``."""
    lam = structure.lam(theta)
    basis = structure.basis()
    d_sigma = np.einsum("lab,cb->lac", basis, lam)
    return lam @ lam.T, d_sigma + np.transpose(d_sigma, (0, 2, 1))


def _value_and_gradient(
    kind: str, sigma: np.ndarray, jac: np.ndarray, a: int, b: int
) -> tuple[float, np.ndarray]:
    """A component's value and its gradient in ``theta`` (``jac`` is ``dSigma/dtheta``)."""
    if kind in ("var", "cov"):
        return float(sigma[a, b]), jac[:, a, b]
    sd_a, sd_b = math.sqrt(max(sigma[a, a], 0.0)), math.sqrt(max(sigma[b, b], 0.0))
    if kind == "sd":
        if sd_a > 0:
            return sd_a, jac[:, a, a] / (2 * sd_a)
        return sd_a, np.full(jac.shape[0], np.nan)
    if sd_a * sd_b == 0:  # a zero variance: the correlation is not defined
        return math.nan, np.full(jac.shape[0], np.nan)
    value = float(sigma[a, b] / (sd_a * sd_b))
    grad = jac[:, a, b] / (sd_a * sd_b) - 0.5 * value * (
        jac[:, a, a] / sigma[a, a] + jac[:, b, b] / sigma[b, b]
    )
    return value, grad


def _interval(kind: str, value: float, se: float, crit: float) -> tuple[float, float]:
    """Variances and SDs: symmetric on the log scale; correlations: on atanh; covariances:
    symmetric."""
    if kind in ("var", "sd"):
        return log_scale_ci(value, se, crit)
    if kind == "corr":
        return atanh_ci(value, se, crit)
    return value - crit * se, value + crit * se


def component_rows(
    structure: CovarianceStructure,
    theta: np.ndarray,
    cov_theta: np.ndarray,
    group: str,
    level: float,
    scale: str = "var",
) -> list[VarCompRow]:
    """The random effects' components with delta-method SEs and intervals: ``scale="var"``
    gives ``var()`` and ``cov()`` (the estimation table), ``scale="sd"`` gives ``sd()`` and
    ``corr()`` (``estat sd``)."""
    crit = _crit(level)
    sigma, jac = _sigma_and_jacobian(structure, theta)
    rows = []
    for label, kind, a, b in component_labels(structure, scale):
        value, grad = _value_and_gradient(kind, sigma, jac, a, b)
        var = float(grad @ cov_theta @ grad) if np.all(np.isfinite(grad)) else math.nan
        se = math.sqrt(var) if var >= 0 else math.nan
        rows.append(VarCompRow(group, label, value, se, *_interval(kind, value, se, crit), kind))
    return rows


def rows_frame(rows: list[VarCompRow]) -> pd.DataFrame:
    """The rows as the DataFrame of ``sd()`` and ``varcomp`` tables: one row per component
    indexed by its Stata name."""
    return pd.DataFrame(
        {
            "group": [r.group for r in rows],
            "estimate": [r.estimate for r in rows],
            "se": [r.se for r in rows],
            "z": [r.z for r in rows],
            "p": [r.p for r in rows],
            "ci_low": [r.ci_low for r in rows],
            "ci_high": [r.ci_high for r in rows],
            "kind": [r.kind for r in rows],
        },
        index=pd.Index([r.name for r in rows], name="term"),
    )
