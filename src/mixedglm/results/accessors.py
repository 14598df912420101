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
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import pandas as pd
from scipy import special

from mixedglm.errors import MixedGLMError

if TYPE_CHECKING:
    import dask.dataframe as dd

    from mixedglm.design.build import ModelDesign
    from mixedglm.design.multilevel import MultilevelDesign
    from mixedglm.engines.covariance import CovarianceStructure
    from mixedglm.families import Family

    # what GLMMResults' random_effects() and predict() give: pandas objects after a fit in
    # memory, lazy Dask collections after a fit on Dask (DaskGLMMResults, a GLMMResults)
    EffectsFrame: TypeAlias = pd.DataFrame | dd.DataFrame
    Predictions: TypeAlias = pd.Series | pd.DataFrame | dd.Series | dd.DataFrame


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


def observed_outcome(
    design: ModelDesign, family: Family
) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Outcome (a proportion for binomial with trials), prior weights and row labels of the
    estimation sample, in the data's row order."""
    if family.is_ordinal:
        raise MixedGLMError(
            "fitted values and residuals are not defined for ordinal models: "
            "predict(kind='pr') gives the probability of each category"
        )
    positions = design.source_positions
    assert positions is not None
    order = np.argsort(positions, kind="stable")
    y = design.y[order].astype(float)
    w = np.ones_like(y)
    if design.binomial_trials:
        n = design.trials[order].astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(n > 0, y / np.where(n > 0, n, 1.0), 0.0)
        w = n
    return y, w, design.row_index[order]


class ResidualAccessors(CommonAccessors):
    """``fittedvalues`` and the residuals, for any result that gives its estimation
    design (:meth:`_outcome_design`), ``family``, ``aux`` and ``predict(kind="mu")``."""

    family: Family

    if TYPE_CHECKING:

        @property
        def aux(self) -> np.ndarray: ...

        def _outcome_design(self) -> ModelDesign: ...

        def _fitted_mu(self) -> pd.Series: ...

    def _observed(self) -> tuple[np.ndarray, np.ndarray, pd.Index]:
        return observed_outcome(self._outcome_design(), self.family)

    @property
    def fittedvalues(self) -> pd.Series:
        """The conditional mean at the predicted random effects, one value per observation
        of the estimation sample in the data's row order."""
        self._observed()  # refuses ordinal models with a clear message
        return self._fitted_mu().rename("fitted")

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


def varcorr_rows(
    group: str, sigma: np.ndarray, structure: CovarianceStructure
) -> list[tuple[str, str, object, float, float]]:
    """lme4's VarCorr rows of one grouping factor: variances, then covariances."""
    names = list(structure.columns)
    sd = np.sqrt(np.maximum(np.diag(sigma), 0.0))
    rows: list[tuple[str, str, object, float, float]] = [
        (group, name, None, float(sigma[a, a]), float(sd[a])) for a, name in enumerate(names)
    ]
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            if structure.effective_kind in ("independent", "identity"):
                continue
            denom = sd[a] * sd[b]
            corr = float(sigma[a, b] / denom) if denom > 0 else math.nan
            rows.append((group, names[a], names[b], float(sigma[a, b]), corr))
    return rows


def varcorr_frame(rows: list, family: Family, aux: np.ndarray) -> pd.DataFrame:
    """The rows as lme4's ``as.data.frame(VarCorr(fit))``, with the residual for gaussian
    models last."""
    if family.name == "gaussian":
        s = math.exp(float(aux[0]))
        rows = [*rows, ("Residual", "", None, s * s, s)]
    frame = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
    frame["var2"] = frame["var2"].astype(object)
    return frame


class GLMMAccessors(ResidualAccessors):
    """Mixin for :class:`~mixedglm.results.glmm.GLMMResults`."""

    design: ModelDesign
    structure: CovarianceStructure

    if TYPE_CHECKING:  # provided by GLMMResults

        @property
        def sigma(self) -> np.ndarray: ...

        def predict(
            self, data: pd.DataFrame | None = None, kind: str = "mu", conditional: bool = True
        ) -> Predictions: ...

        def random_effects(
            self, kind: str = "means", se: bool = True, expand: bool = False
        ) -> EffectsFrame: ...

    def _outcome_design(self) -> ModelDesign:
        return self.design

    def _fitted_mu(self) -> pd.Series:
        mu = self.predict(kind="mu", conditional=True)
        assert isinstance(mu, pd.Series)
        return mu

    # -- lme4's names ------------------------------------------------------------------------------
    def ranef(self) -> EffectsFrame:
        """The conditional modes of the random effects (lme4's ``ranef()``): one row per
        cluster, one column per random effect in the formula's order (``_cons`` for the
        intercept). Stata's posterior means are :meth:`random_effects`."""
        modes = self.random_effects(kind="modes", se=False)
        return modes[list(self.structure.columns)]

    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(fit))``: columns ``grp``, ``var1``, ``var2``,
        ``vcov`` (variance or covariance) and ``sdcor`` (SD or correlation); variances
        first, then the covariances, then the residual for gaussian models."""
        group = self.design.group.name if self.design.group is not None else ""
        sigma = np.asarray(self.sigma, dtype=np.float64)
        return varcorr_frame(varcorr_rows(group, sigma, self.structure), self.family, self.aux)


class MultilevelAccessors(ResidualAccessors):
    """Mixin for :class:`~mixedglm.results.multilevel.MultilevelResults`: fitted values at
    the conditional modes of every factor (lme4's ``fitted()``), residuals, ``ranef()`` and
    ``varcorr()`` over all grouping factors."""

    design: MultilevelDesign

    if TYPE_CHECKING:  # provided by MultilevelResults

        def sigma(self, factor: int | str) -> np.ndarray: ...

        def predict(self, data: pd.DataFrame | None = None, kind: str = "mu") -> pd.Series: ...

        def random_effects(self, se: bool = True) -> dict[str, pd.DataFrame]: ...

    def _outcome_design(self) -> ModelDesign:
        return self.design.base

    def _fitted_mu(self) -> pd.Series:
        return self.predict(kind="mu")

    def ranef(self) -> dict[str, pd.DataFrame]:
        """lme4's ``ranef()``: the conditional modes, one DataFrame per grouping factor."""
        return self.random_effects(se=False)

    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(fit))`` over every grouping factor."""
        rows = []
        for k, f in enumerate(self.design.factors):
            sigma = np.asarray(self.sigma(k), dtype=np.float64)
            rows += varcorr_rows(f.name, sigma, f.structure)
        return varcorr_frame(rows, self.family, self.aux)


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

    def ranef(self) -> EffectsFrame:
        return self.glmm.ranef()

    def varcorr(self) -> pd.DataFrame:
        return self.glmm.varcorr()

    @property
    def df_model(self) -> int:
        return self.glmm.df_model
