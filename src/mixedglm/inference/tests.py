"""Wald and likelihood-ratio tests, z statistics and normal confidence intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class TestResult:
    """A test statistic with its degrees of freedom and p-value.

    ``kind`` is ``chi2`` or ``chibar2`` (a boundary test: a mixture of chi2 distributions).
    """

    stat: float
    df: int
    p: float
    kind: str = "chi2"

    def to_dict(self) -> dict:
        return {"stat": self.stat, "df": self.df, "p": self.p, "kind": self.kind}


def z_pvalues(z: np.ndarray) -> np.ndarray:
    """Two-sided p-values of z statistics."""
    return 2.0 * stats.norm.sf(np.abs(z))


def normal_ci(
    estimate: np.ndarray, se: np.ndarray, level: float = 95.0
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric normal-theory interval at ``level`` percent."""
    crit = stats.norm.ppf(0.5 + level / 200.0)
    return estimate - crit * se, estimate + crit * se


def wald_test(estimate: np.ndarray, cov: np.ndarray) -> TestResult:
    """Joint Wald test that all of ``estimate`` are zero."""
    k = estimate.shape[0]
    if k == 0:
        return TestResult(np.nan, 0, np.nan)
    try:
        stat = float(estimate @ np.linalg.solve(cov, estimate))
    except np.linalg.LinAlgError:
        stat = float(estimate @ np.linalg.pinv(cov) @ estimate)
    return TestResult(stat, k, float(stats.chi2.sf(stat, k)))


def lr_test_variance(loglik: float, loglik_restricted: float, n_components: int) -> TestResult:
    """LR test of the random-effects variance components against the model without them.

    One variance: Stata's ``chibar2(01)``, p = half the chi2(1) tail (the variance sits on
    the boundary under the null), and 1 for a statistic of 0 (the mixture's point mass).
    Several components: ``chi2(k)`` with the plain chi2 tail, which is conservative, as
    Stata reports it.
    """
    stat = 2.0 * (loglik - loglik_restricted)
    # a variance estimated at zero reproduces the restricted fit up to rounding
    stat = 0.0 if stat < 1e-8 * max(1.0, abs(loglik)) else stat
    if n_components == 1:
        p = 0.5 * float(stats.chi2.sf(stat, 1)) if stat > 0 else 1.0
        return TestResult(stat, 1, p, "chibar2")
    return TestResult(stat, n_components, float(stats.chi2.sf(stat, n_components)), "chi2")
