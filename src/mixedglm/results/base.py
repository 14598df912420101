"""What every result class shares: z statistics, p-values, intervals and the estimates
table of its coefficients, and the information criteria; and the fields of a mixed model's
maximum-likelihood fit (:class:`MixedFit`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mixedglm.inference import normal_ci, z_pvalues
from mixedglm.inference.wald import WaldTest, wald_hypotheses
from mixedglm.optim import OptSummary
from mixedglm.options import resolve_level


@dataclass(frozen=True, repr=False)
class MixedFit:
    """The fields every mixed model's results start with: ``params_all`` (all parameters on
    the estimation scale) with covariance ``cov_all``, the log-likelihoods of the model and
    of the pooled model without random effects, the optimiser's summary, the estimation
    time in seconds and the notes."""

    params_all: np.ndarray
    cov_all: np.ndarray
    loglik: float
    loglik_pooled: float
    opt: OptSummary
    time_s: float
    notes: tuple[str, ...]


class CoefficientResults:
    """Mixin for result classes that define ``params`` (a Series), ``cov_params`` (a
    DataFrame), ``level``, ``loglik``, ``nobs``, ``n_params`` and ``opt`` (an
    :class:`~mixedglm.optim.OptSummary`)."""

    if TYPE_CHECKING:  # provided by the result classes

        @property
        def params(self) -> pd.Series: ...

        @property
        def cov_params(self) -> pd.DataFrame: ...

    level: float
    loglik: float

    @property
    def converged(self) -> bool:
        return self.opt.converged  # type: ignore[attr-defined]

    @property
    def iterations(self) -> int:
        return self.opt.iterations  # type: ignore[attr-defined]

    @cached_property
    def bse(self) -> pd.Series:
        """Standard errors of the coefficients (NaN where the covariance is not positive:
        a Hessian that is not negative definite, noted in the results)."""
        diag = np.diag(self.cov_params.to_numpy())
        se = np.sqrt(np.where(diag >= 0, diag, np.nan))
        return pd.Series(se, index=self.params.index)

    @cached_property
    def zvalues(self) -> pd.Series:
        return self.params / self.bse

    @property
    def tvalues(self) -> pd.Series:
        """Alias of :attr:`zvalues` (statsmodels' name)."""
        return self.zvalues

    @cached_property
    def pvalues(self) -> pd.Series:
        return pd.Series(z_pvalues(self.zvalues.to_numpy()), index=self.params.index)

    def conf_int(self, level: float | None = None) -> pd.DataFrame:
        """Normal-theory confidence intervals of the coefficients."""
        lo, hi = normal_ci(
            self.params.to_numpy(), self.bse.to_numpy(), resolve_level(level, self.level)
        )
        return pd.DataFrame({"lower": lo, "upper": hi}, index=self.params.index)

    def estimates(self, level: float | None = None, eform: bool = False) -> pd.DataFrame:
        """Estimate, se, z, p and interval per coefficient: the numbers of the table and of
        the JSON. With ``eform`` the estimates are ``exp(b)`` with delta-method SEs
        ``exp(b) se`` and the intervals' bounds exponentiated (z and p unchanged), as
        Stata's ``or`` and ``irr``."""
        ci = self.conf_int(level)
        frame = pd.DataFrame(
            {
                "estimate": self.params,
                "se": self.bse,
                "z": self.zvalues,
                "p": self.pvalues,
                "ci_low": ci["lower"],
                "ci_high": ci["upper"],
            }
        )
        if eform:
            expb = np.exp(frame["estimate"])
            frame["se"] = expb * frame["se"]
            frame["estimate"] = expb
            frame["ci_low"] = np.exp(frame["ci_low"])
            frame["ci_high"] = np.exp(frame["ci_high"])
        frame.index.name = "term"
        return frame

    @property
    def aic(self) -> float:
        """Akaike's criterion, ``-2 ll + 2 k``."""
        return -2.0 * self.loglik + 2.0 * self.n_params  # type: ignore[attr-defined]

    @property
    def bic(self) -> float:
        """BIC with N = the number of observations (Stata's ``estat ic``)."""
        return -2.0 * self.loglik + math.log(self.nobs) * self.n_params  # type: ignore[attr-defined]

    def test(self, *hypotheses: str | list[str]) -> WaldTest:
        """Wald test of linear hypotheses on the coefficients (Stata's ``test``):
        ``res.test("x1 = x2", "x3 = 0")`` jointly, ``res.test(["x1", "x2"])`` for all listed
        coefficients zero; with the reported (robust, if asked for) covariance."""
        return wald_hypotheses(self.params, self.cov_params, hypotheses)
