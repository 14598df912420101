"""The result of a fit with several grouping factors: estimates, variance components per
factor, random effects per factor, predictions, Stata's multilevel output and JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from mixedglm.design.multilevel import FactorDesign, MultilevelDesign
from mixedglm.engines.base import Posterior
from mixedglm.engines.rules import IntegrationRule
from mixedglm.errors import MixedGLMError
from mixedglm.families import Family
from mixedglm.inference import TestResult, lr_test_variance, wald_test
from mixedglm.inference.lrtest import sample_signature
from mixedglm.inference.margins import MarginsModel
from mixedglm.inference.margins import margins as margins_of_fit
from mixedglm.inference.robust import VCEInfo
from mixedglm.inference.varcomp import VarCompRow, component_rows, log_scale_ci, rows_frame
from mixedglm.options import resolve_level
from mixedglm.report.stata import render_ic, render_table
from mixedglm.results.accessors import MultilevelAccessors
from mixedglm.results.base import CoefficientResults, MixedFit
from mixedglm.results.display import DisplayMixin
from mixedglm.results.glmm import Summary


@dataclass(frozen=True, repr=False)  # repr: the table (DisplayMixin)
class MultilevelResults(MixedFit, CoefficientResults, MultilevelAccessors, DisplayMixin):
    """A fitted model with several grouping factors (nested or crossed).

    ``params_all`` is ``[beta, theta_1 .. theta_K, aux]`` (factors in the formula's order,
    ``theta_slices`` locating each) with covariance ``cov_all``; ``posterior`` holds each
    factor's conditional modes and covariances on the spherical scale.
    """

    design: MultilevelDesign
    family: Family
    rule: IntegrationRule
    posterior: dict[str, Posterior] = field(repr=False)
    theta_slices: tuple[slice, ...] = ()
    hessian_ok: bool = True
    boundary: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    level: float = 95.0
    data: pd.DataFrame | None = field(default=None, repr=False)  # estimation rows (margins)
    vce: VCEInfo | None = None  # robust / cluster-robust covariance (None: observed information)
    estimator: str = "ML"  # or "REML" (Gaussian models, lmer's default)

    # -- sizes ---------------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        return self.design.n_obs

    @property
    def n_beta(self) -> int:
        return len(self.design.base.x_names)

    @property
    def n_theta(self) -> int:
        return sum(f.structure.n_theta for f in self.design.factors)

    @property
    def n_params(self) -> int:
        return int(self.params_all.shape[0])

    @property
    def method(self) -> str:
        return "REML" if self.estimator == "REML" else self.rule.method

    @property
    def nagq(self) -> int:
        return self.rule.nagq

    # -- fixed effects -------------------------------------------------------------------
    @cached_property
    def params(self) -> pd.Series:
        """Fixed-effect estimates (``_cons`` for the constant)."""
        return pd.Series(self.params_all[: self.n_beta], index=list(self.design.base.x_names))

    @cached_property
    def cov_params(self) -> pd.DataFrame:
        names = list(self.design.base.x_names)
        p = self.n_beta
        return pd.DataFrame(self.cov_all[:p, :p], index=names, columns=names)

    @property
    def aux(self) -> np.ndarray:
        return self.params_all[self.n_beta + self.n_theta :]

    # -- random part ---------------------------------------------------------------------
    def _theta_index(self, k: int) -> np.ndarray:
        sl = self.theta_slices[k]
        return np.arange(sl.start, sl.stop) + self.n_beta

    def theta(self, factor: int | str) -> np.ndarray:
        """One factor's ``theta`` (by position or name)."""
        k = self._factor_index(factor)
        return self.params_all[self._theta_index(k)]

    def _factor_index(self, factor: int | str) -> int:
        if isinstance(factor, int):
            return factor
        f = self.design.factor(factor)
        return self.design.factors.index(f)

    def sigma(self, factor: int | str) -> np.ndarray:
        """Covariance matrix of a factor's random effects."""
        k = self._factor_index(factor)
        return self.design.factors[k].structure.sigma(self.theta(k))

    def _level_order(self) -> list[int]:
        """Factors in Stata's order: from the top level down when nested, else as given."""
        return list(self.design.order) if self.design.nested else list(range(len(self.factors)))

    @property
    def factors(self) -> tuple[FactorDesign, ...]:
        return self.design.factors

    def _rows(self, kind: str, level: float) -> list[VarCompRow]:
        out: list[VarCompRow] = []
        for k in self._level_order():
            f = self.factors[k]
            idx = self._theta_index(k)
            cov_t = self.cov_all[np.ix_(idx, idx)]
            name = self.design.display[k]
            out += component_rows(f.structure, self.theta(k), cov_t, name, level, kind)
        if self.family.name == "gaussian":
            crit = stats.norm.ppf(0.5 + level / 200.0)
            j = self.n_beta + self.n_theta
            var_a = self.cov_all[j, j]
            sd_e = math.exp(self.aux[0])
            if kind == "var":
                value, se = sd_e**2, 2 * sd_e**2 * math.sqrt(var_a) if var_a >= 0 else math.nan
                label = "var(e)"
            else:
                value, se = sd_e, sd_e * math.sqrt(var_a) if var_a >= 0 else math.nan
                label = "sd(e)"
            lo, hi = log_scale_ci(value, se, crit)
            out.append(VarCompRow("Residual", label, value, se, lo, hi, "resvar"))
        return out

    def varcomp(self, level: float | None = None) -> list[VarCompRow]:
        """``var()``/``cov()`` rows, one block per factor (Stata's names: ``comm``,
        ``comm>mom``), top level first for nested models."""
        return self._rows("var", resolve_level(level, self.level))

    def sd(self, level: float | None = None) -> pd.DataFrame:
        """Stata's ``estat sd``: SDs and correlations per factor with delta-method SEs."""
        return rows_frame(self._rows("sd", resolve_level(level, self.level)))

    def ancillary(self, level: float | None = None) -> list[tuple[str, float, float, float, float]]:
        """The family's ancillary parameters (dispersion, cut points)."""
        k = self.n_beta + self.n_theta
        level = resolve_level(level, self.level)
        return self.family.ancillary_rows(self.aux, self.cov_all[k:, k:], level)

    def icc(self, level: float | None = None) -> pd.DataFrame:
        """Stata's ``estat icc`` for nested random-intercept models: for each level, the
        correlation on the latent scale of two observations sharing that level's cluster
        (and therefore every cluster above it), with delta-method SEs and intervals
        symmetric on the logit scale. Crossed models: one row per factor (observations
        sharing that factor's level only)."""
        level = resolve_level(level, self.level)
        for f in self.factors:
            if f.structure.columns != ("_cons",):
                raise MixedGLMError(
                    "icc() is for random-intercept models (Stata's estat icc too); "
                    f"'{f.name}' has random slopes"
                )
        if self.family.name == "gaussian":
            resid = math.exp(2 * self.aux[0])
        elif self.family.latent_variance is not None:
            resid = float(self.family.latent_variance)
        else:
            raise MixedGLMError(
                f"icc() is not defined for the {self.family.name} family (no latent residual)"
            )
        crit = stats.norm.ppf(0.5 + level / 200.0)
        order = self._level_order()
        thetas = np.array([float(self.theta(k)[0]) for k in range(len(self.factors))])
        idx = [int(self._theta_index(k)[0]) for k in range(len(self.factors))]
        if self.family.name == "gaussian":
            idx.append(self.n_beta + self.n_theta)
        cov = self.cov_all[np.ix_(idx, idx)]
        total = float(np.sum(thetas**2) + resid)
        names, values, ses, lows, highs = [], [], [], [], []
        for depth, k in enumerate(order):
            members = order[: depth + 1] if self.design.nested else [k]
            num = float(sum(thetas[j] ** 2 for j in members))
            value = num / total
            grad = np.zeros(len(idx))
            for j in range(len(self.factors)):
                dnum = 2 * thetas[j] if j in members else 0.0
                grad[j] = dnum / total - num * 2 * thetas[j] / total**2
            if self.family.name == "gaussian":
                grad[-1] = -num * 2 * resid / total**2
            se = math.sqrt(max(float(grad @ cov @ grad), 0.0))
            lo, hi = _logit_ci(value, se, crit)
            names.append(self.design.display[k])
            values.append(value)
            ses.append(se)
            lows.append(lo)
            highs.append(hi)
        return pd.DataFrame(
            {"icc": values, "se": ses, "ci_low": lows, "ci_high": highs},
            index=pd.Index(names, name="level"),
        )

    # -- likelihood-based ---------------------------------------------------------------------
    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + math.log(self.nobs) * self.n_params

    @cached_property
    def lr_test(self) -> TestResult:
        """LR test against the model without random effects (conservative with several
        variance components, as Stata notes)."""
        return lr_test_variance(self.loglik, self.loglik_pooled, self.n_theta)

    @cached_property
    def wald(self) -> TestResult:
        keep = [j for j, n in enumerate(self.params.index) if n != "_cons"]
        cov = self.cov_params.to_numpy()[np.ix_(keep, keep)]
        return wald_test(self.params.to_numpy()[keep], cov)

    # -- random effects and predictions --------------------------------------------------
    def random_effects(self, se: bool = True) -> dict[str, pd.DataFrame]:
        """Each factor's predicted random effects with their SDs, one DataFrame per factor
        keyed by its name: after Laplace the conditional modes and conditional SDs (lme4's
        ``ranef(condVar = TRUE)``), after adaptive quadrature the posterior means and SDs
        given all the data of the top-level cluster (Stata's ``predict, reffects``)."""
        out: dict[str, pd.DataFrame] = {}
        for k, f in enumerate(self.factors):
            post = self.posterior[f.name]
            lam = f.structure.lam(self.theta(k))
            b = post.mean @ lam.T
            order = f.structure.display_order()
            names = [f.structure.columns[a] for a in order]
            frame = pd.DataFrame(b[:, order], columns=names)
            if se:
                cov_b = np.einsum("ab,gbc,dc->gad", lam, post.cov, lam)
                sds = np.sqrt(np.maximum(np.einsum("gaa->ga", cov_b), 0.0))[:, order]
                for j, name in enumerate(names):
                    frame[f"se({name})"] = sds[:, j]
            frame.index = pd.Index(f.labels, name=f.name)
            out[f.name] = frame
        return out

    def random_effects_long(self) -> pd.DataFrame:
        """All factors' random effects in one long frame: ``factor``, ``level``, then one
        column per random-effect term and its ``se()`` (missing where a factor lacks it)."""
        return long_frame(self.random_effects())

    def predict(
        self,
        data: pd.DataFrame | None = None,
        kind: str = "mu",
        factors: list[str] | tuple[str, ...] | None = None,
        fixedonly: bool = False,
    ) -> pd.Series:
        """Predictions conditional on the predicted random effects of ``factors`` (all by
        default; Stata's level choice), or on none with ``fixedonly=True``. New levels get
        zero. ``kind``: ``xb``, ``eta`` or ``mu``."""
        from mixedglm.results.multilevel_predict import predict_multilevel

        return predict_multilevel(self, data, kind, factors, fixedonly)

    margins = margins_of_fit  # Stata's margins: mixedglm.inference.margins.margins

    def margins_model(self) -> MarginsModel:
        """The fit's model for :func:`~mixedglm.inference.margins.margins`: every factor's
        random-effect columns, ``Lambda`` block diagonal over the factors."""
        from mixedglm.results.multilevel_predict import margins_model

        return margins_model(self)

    # -- output ----------------------------------------------------------------------------
    def table(self, level: float | None = None, eform: bool | str = False):
        """The :class:`~mixedglm.report.table.CoefTable` of Stata's multilevel output;
        ``eform`` as :meth:`GLMMResults.summary` (odds ratios, rate ratios, exp(b))."""
        from mixedglm.results.eform import resolve_eform
        from mixedglm.results.multilevel_tables import multilevel_table

        kind = resolve_eform(eform, self.family)
        return multilevel_table(self, resolve_level(level, self.level), kind)

    def summary(
        self, level: float | None = None, ic: bool = True, eform: bool | str = False
    ) -> Summary:
        """Stata's output: group summary table, fixed effects (exponentiated with
        ``eform``: Stata's ``melogit, or``), a variance block per level (and ``estat ic``
        with ``ic``)."""
        extras = (self.estat_ic(),) if ic else ()
        return Summary(self.table(level, eform), extras)

    def estat_ic(self) -> str:
        """Stata's ``estat ic``: AIC and BIC with N = number of observations."""
        return render_ic(self.nobs, None, self.loglik, self.n_params, self.aic, self.bic)

    def estat_sd(self, level: float | None = None) -> str:
        """``estat sd`` as Stata prints it: SDs per level."""
        from mixedglm.results.multilevel_tables import sd_table

        return render_table(sd_table(self, resolve_level(level, self.level)))

    def to_frame(self, level: float | None = None) -> pd.DataFrame:
        """Fixed effects and variance components in one DataFrame."""
        level = resolve_level(level, self.level)
        coef = self.estimates(level)
        coef.insert(0, "part", "fixed")
        rows = [
            {
                "part": r.group,
                "estimate": r.estimate,
                "se": r.se,
                "z": np.nan,
                "p": np.nan,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "term": r.name,
            }
            for r in self.varcomp(level)
        ]
        rand = pd.DataFrame(rows).set_index("term") if rows else pd.DataFrame()
        return pd.concat([coef, rand])

    def sample_signature(self) -> str | None:
        """The estimation sample's signature (its rows' labels and outcome) that ``lrtest``
        compares."""
        base = self.design.base
        return sample_signature(base.row_index, base.y)

    def to_dict(self, level: float | None = None) -> dict:
        """The JSON document: as a GLMM's, with ``groups`` keyed by factor."""
        from mixedglm.results.multilevel_tables import multilevel_to_dict

        return multilevel_to_dict(self, resolve_level(level, self.level))


def long_frame(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-factor random effects (:meth:`MultilevelResults.random_effects`) in one long
    frame (:meth:`MultilevelResults.random_effects_long`)."""
    out = []
    for name, frame in frames.items():
        long = frame.reset_index(names="level")
        long.insert(0, "factor", name)
        long["level"] = long["level"].astype(str)
        out.append(long)
    return pd.concat(out, ignore_index=True)


def _logit_ci(value: float, se: float, crit: float) -> tuple[float, float]:
    if not 0 < value < 1 or not math.isfinite(se):
        return math.nan, math.nan
    half = crit * se / (value * (1 - value))
    logit = math.log(value / (1 - value))
    return 1 / (1 + math.exp(-(logit - half))), 1 / (1 + math.exp(-(logit + half)))
