"""What statsmodels and lme4 users reach for on a fitted GLMM: fitted values, residuals,
``fixef``, ``ranef``, ``VarCorr``, ``df_model``.

Conventions (those of lme4's ``fitted()``/``residuals()`` and statsmodels' GLM):

* ``fittedvalues`` is the conditional mean ``g^-1(x'b + z'u)`` at the predicted random
  effects (posterior means, Stata's ``predict, mu``), in the data's row order; for a binomial
  model with trials the probability of success.
* the residuals compare the observed outcome (for binomial with trials the proportion
  ``y / n``) with it: response ``y - mu``; Pearson ``(y - mu) sqrt(w / V(mu))`` with the
  variance function ``V`` (bernoulli/binomial ``mu (1 - mu)``, Poisson ``mu``, gaussian 1,
  gamma ``mu^2``, NB2 ``mu + alpha mu^2``, NB1 ``mu (1 + delta)``) and prior weight ``w``
  (the trials); deviance ``sign(y - mu) sqrt(w d(y, mu))`` with the unit deviance ``d`` of
  the family (NB2 at the estimated alpha; NB1 has no deviance).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import special

from mixedglm.errors import MixedGLMError

if TYPE_CHECKING:
    from mixedglm.design.build import ModelDesign
    from mixedglm.engines.covariance import CovarianceStructure
    from mixedglm.families import Family


def _xlogy_ratio(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``y log(y / mu)`` with ``0 log 0 = 0``."""
    return special.xlogy(y, y) - special.xlogy(y, mu)


def unit_deviance(family, y: np.ndarray, mu: np.ndarray, aux: np.ndarray) -> np.ndarray:
    """The family's unit deviance ``d(y, mu)`` (without prior weights)."""
    name = family.name
    if name in ("bernoulli", "binomial"):
        return 2.0 * (_xlogy_ratio(y, mu) + _xlogy_ratio(1.0 - y, 1.0 - mu))
    if name == "poisson":
        return 2.0 * (_xlogy_ratio(y, mu) - (y - mu))
    if name == "gaussian":
        return (y - mu) ** 2
    if name == "gamma":
        return 2.0 * (-np.log(y / mu) + (y - mu) / mu)
    if name == "nbinomial" and family.dispersion != "constant":
        alpha = math.exp(float(aux[0]))
        r = 1.0 / alpha
        return 2.0 * (_xlogy_ratio(y, mu) - (y + r) * np.log((y + r) / (mu + r)))
    raise MixedGLMError(f"deviance residuals are not defined for the {_words(family)} family")


def variance_function(family, mu: np.ndarray, aux: np.ndarray) -> np.ndarray:
    """``V(mu)``: the variance of one observation divided by the dispersion (1, except
    gaussian's sigma^2 and gamma's scale, left out as statsmodels does)."""
    name = family.name
    if name in ("bernoulli", "binomial"):
        return mu * (1.0 - mu)
    if name == "poisson":
        return mu
    if name == "gaussian":
        return np.ones_like(mu)
    if name == "gamma":
        return mu**2
    if name == "nbinomial":
        value = math.exp(float(aux[0]))
        return mu * (1.0 + value) if family.dispersion == "constant" else mu + value * mu**2
    raise MixedGLMError(f"Pearson residuals are not defined for the {_words(family)} family")


def _words(family) -> str:
    if family.name == "nbinomial" and family.dispersion == "constant":
        return "constant-dispersion negative binomial (NB1)"
    return family.name


class CommonAccessors:
    """``fixef()`` and ``df_model`` for any result with ``params``."""

    if TYPE_CHECKING:  # provided by the result classes

        @property
        def params(self) -> pd.Series: ...

    def fixef(self) -> pd.Series:
        """The fixed-effect estimates (lme4's ``fixef()``; the same as ``params``)."""
        return self.params.copy()

    @property
    def df_model(self) -> int:
        """Estimated coefficients besides the constant (statsmodels' ``df_model``; for a
        GLMM the degrees of freedom of the Wald test in the header)."""
        return len([n for n in self.params.index if n != "_cons"])


class GLMMAccessors(CommonAccessors):
    """Mixin for :class:`~mixedglm.results.glmm.GLMMResults`."""

    design: ModelDesign
    family: Family
    structure: CovarianceStructure

    if TYPE_CHECKING:  # provided by GLMMResults

        @property
        def aux(self) -> np.ndarray: ...

        @property
        def sigma(self) -> np.ndarray: ...

        def predict(
            self, data: pd.DataFrame | None = None, kind: str = "mu", conditional: bool = True
        ) -> pd.Series | pd.DataFrame: ...

        def random_effects(
            self, kind: str = "means", se: bool = True, expand: bool = False
        ) -> pd.DataFrame: ...

    # -- data in the data's row order ----------------------------------------------------------
    def _data_order(self) -> np.ndarray:
        positions = self.design.source_positions
        assert positions is not None
        return np.argsort(positions, kind="stable")

    def _observed(self) -> tuple[np.ndarray, np.ndarray, pd.Index]:
        """Outcome (a proportion for binomial with trials) and prior weights, data order."""
        design = self.design
        if self.family.is_ordinal:
            raise MixedGLMError(
                "fitted values and residuals are not defined for ordinal models: "
                "predict(kind='pr') gives the probability of each category"
            )
        order = self._data_order()
        y = design.y[order].astype(float)
        w = np.ones_like(y)
        if design.binomial_trials:
            n = design.trials[order].astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                y = np.where(n > 0, y / np.where(n > 0, n, 1.0), 0.0)
            w = n
        return y, w, design.row_index[order]

    @property
    def fittedvalues(self) -> pd.Series:
        """The conditional mean at the predicted random effects (posterior means), one value
        per observation of the estimation sample in the data's row order."""
        self._observed()  # refuses ordinal models with a clear message
        mu = self.predict(kind="mu", conditional=True)
        assert isinstance(mu, pd.Series)
        return mu.rename("fitted")

    @property
    def resid_response(self) -> pd.Series:
        """``y - mu`` (for binomial with trials ``y / n - mu``)."""
        y, _, index = self._observed()
        return pd.Series(y - self.fittedvalues.to_numpy(), index=index, name="resid_response")

    @property
    def resid_pearson(self) -> pd.Series:
        """``(y - mu) sqrt(w / V(mu))``: see the module docstring for ``V`` and ``w``."""
        y, w, index = self._observed()
        mu = self.fittedvalues.to_numpy()
        var = variance_function(self.family, mu, self.aux)
        return pd.Series((y - mu) * np.sqrt(w / var), index=index, name="resid_pearson")

    @property
    def resid_deviance(self) -> pd.Series:
        """``sign(y - mu) sqrt(w d(y, mu))`` with the family's unit deviance ``d``."""
        y, w, index = self._observed()
        mu = self.fittedvalues.to_numpy()
        d = unit_deviance(self.family, y, mu, self.aux)
        values = np.sign(y - mu) * np.sqrt(np.maximum(w * d, 0.0))
        return pd.Series(values, index=index, name="resid_deviance")

    # -- lme4's names ------------------------------------------------------------------------------
    def ranef(self) -> pd.DataFrame:
        """The conditional modes of the random effects (lme4's ``ranef()``): one row per
        cluster, one column per random effect in the formula's order (``_cons`` for the
        intercept). Stata's posterior means are :meth:`random_effects`."""
        modes = self.random_effects(kind="modes", se=False)
        return modes[list(self.structure.columns)]

    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(fit))``: columns ``grp``, ``var1``, ``var2``,
        ``vcov`` (variance or covariance) and ``sdcor`` (SD or correlation); variances
        first, then the covariances, then the residual for gaussian models."""
        design = self.design
        group = design.group.name if design.group is not None else ""
        sigma = np.asarray(self.sigma, dtype=np.float64)
        names = list(self.structure.columns)
        sd = np.sqrt(np.maximum(np.diag(sigma), 0.0))
        rows: list[tuple[str, str, object, float, float]] = [
            (group, name, None, float(sigma[a, a]), float(sd[a])) for a, name in enumerate(names)
        ]
        for a in range(len(names)):
            for b in range(a + 1, len(names)):
                if self.structure.effective_kind in ("independent", "identity"):
                    continue
                denom = sd[a] * sd[b]
                corr = float(sigma[a, b] / denom) if denom > 0 else math.nan
                rows.append((group, names[a], names[b], float(sigma[a, b]), corr))
        if self.family.name == "gaussian":
            s = math.exp(float(self.aux[0]))
            rows.append(("Residual", "", None, s * s, s))
        frame = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
        frame["var2"] = frame["var2"].astype(object)
        return frame


class DelegatedAccessors:
    """The accessors of a model that wraps a GLMM fit in ``self.glmm`` (hybrid models)."""

    glmm: GLMMAccessors

    @property
    def fittedvalues(self) -> pd.Series:
        """See :attr:`GLMMAccessors.fittedvalues`."""
        return self.glmm.fittedvalues

    @property
    def resid_response(self) -> pd.Series:
        return self.glmm.resid_response

    @property
    def resid_pearson(self) -> pd.Series:
        return self.glmm.resid_pearson

    @property
    def resid_deviance(self) -> pd.Series:
        return self.glmm.resid_deviance

    def fixef(self) -> pd.Series:
        return self.glmm.fixef()

    def ranef(self) -> pd.DataFrame:
        return self.glmm.ranef()

    def varcorr(self) -> pd.DataFrame:
        return self.glmm.varcorr()

    @property
    def df_model(self) -> int:
        return self.glmm.df_model
