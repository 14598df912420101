"""The result of a GLMM fit: estimates, standard errors, tests, tables, JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from mixedglm.design.build import ModelDesign
from mixedglm.design.weights import WeightInfo
from mixedglm.engines.aghq import AGHQEngine
from mixedglm.engines.base import Engine
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.engines.rules import IntegrationRule
from mixedglm.errors import MixedGLMError
from mixedglm.families import Family
from mixedglm.inference import TestResult, lr_test_variance, wald_test
from mixedglm.inference.margins import margins as margins_of_fit
from mixedglm.inference.robust import VCEInfo
from mixedglm.inference.varcomp import (
    VarCompRow,
    component_labels,
    component_rows,
    exp_or_inf,
    log_scale_ci,
    rows_frame,
)
from mixedglm.inference.wald import WaldTest, wald_hypotheses
from mixedglm.options import resolve_level
from mixedglm.report.grid import Grid, coef_grid
from mixedglm.report.render import Formats
from mixedglm.report.stata import render_ic, render_stata, render_table
from mixedglm.report.table import CoefTable
from mixedglm.results.accessors import GLMMAccessors
from mixedglm.results.base import CoefficientResults, MixedFit
from mixedglm.results.display import DisplayMixin
from mixedglm.results.plotting import PlotMixin
from mixedglm.results.predict import predict
from mixedglm.results.serialize import glmm_to_dict
from mixedglm.results.tables import glmm_table, varcomp_table

if TYPE_CHECKING:
    from mixedglm.results.accessors import EffectsFrame, Predictions

METHOD_NAMES = {"mvaghermite": "mvaghermite", "mcaghermite": "mcaghermite", "laplace": "Laplace"}


@dataclass(frozen=True, repr=False)
class GLMMResults(MixedFit, CoefficientResults, GLMMAccessors, PlotMixin, DisplayMixin):
    """A fitted generalized linear mixed model (one grouping factor).

    ``params_all`` is ``[beta, theta, aux]`` on the estimation scale with covariance
    ``cov_all``; ``theta`` parameterises ``Lambda`` (see
    :mod:`mixedglm.engines.covariance`). The fields of the fit itself are
    :class:`~mixedglm.results.base.MixedFit`'s.
    """

    design: ModelDesign
    family: Family
    structure: CovarianceStructure
    method: str
    nagq: int
    posterior_mean: np.ndarray = field(repr=False)
    posterior_cov: np.ndarray = field(repr=False)
    hessian_ok: bool = True
    boundary: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    curvature: str = "observed"
    level: float = 95.0
    vce: VCEInfo | None = None  # robust / cluster-robust covariance (None: observed information)
    data: pd.DataFrame | None = field(default=None, repr=False)  # estimation rows (margins)
    weights: WeightInfo | None = None  # frequency weights (level 1 or clusters)
    engine: Engine | None = field(default=None, repr=False, compare=False)
    notes_printed: tuple[str, ...] = ()  # the notes already printed during the fit

    # -- sizes ---------------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Observations; with weights their sum, as Stata counts them."""
        if self.weights is not None and self.weights.nobs is not None:
            return round(self.weights.nobs)
        return self.design.n_obs

    @property
    def n_beta(self) -> int:
        return len(self.design.x_names)

    @property
    def n_theta(self) -> int:
        return self.structure.n_theta

    @property
    def n_params(self) -> int:
        return int(self.params_all.shape[0])

    # -- fixed effects -------------------------------------------------------------------
    @cached_property
    def params(self) -> pd.Series:
        """Fixed-effect estimates, named as in the table (``_cons`` for the constant)."""
        return pd.Series(self.params_all[: self.n_beta], index=list(self.design.x_names))

    @cached_property
    def cov_params(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects."""
        names = list(self.design.x_names)
        p = self.n_beta
        return pd.DataFrame(self.cov_all[:p, :p], index=names, columns=names)

    # -- random part -----------------------------------------------------------------------
    @cached_property
    def _modes(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior modes of ``u`` and the inverse curvature there (Laplace), per cluster."""
        engine = self.engine or AGHQEngine(
            self.design.cluster_arrays(), self.family, self.structure, IntegrationRule("laplace", 1)
        )
        (modes,) = engine.posterior(self.params_all, "modes").values()
        return modes.mean, modes.cov

    @property
    def theta(self) -> np.ndarray:
        return self.params_all[self.n_beta : self.n_beta + self.n_theta]

    @property
    def aux(self) -> np.ndarray:
        return self.params_all[self.n_beta + self.n_theta :]

    @property
    def sigma(self) -> np.ndarray:
        """Covariance matrix of the random effects (formula's column order)."""
        return self.structure.sigma(self.theta)

    def _theta_cov(self) -> np.ndarray:
        p, t = self.n_beta, self.n_theta
        return self.cov_all[p : p + t, p : p + t]

    def _components(self, level: float | None, scale: str) -> list[VarCompRow]:
        """``component_rows`` of the random effects, then for gaussian models the residual's
        ``var(e)`` or ``sd(e)`` (``exp(2a)`` or ``exp(a)`` of the log-SD parameter ``a``)."""
        level = resolve_level(level, self.level)
        group = self.design.group.name if self.design.group else ""
        rows = component_rows(self.structure, self.theta, self._theta_cov(), group, level, scale)
        if self.family.name == "gaussian":
            crit = stats.norm.ppf(0.5 + level / 200.0)
            k = self.n_beta + self.n_theta
            power = 2 if scale == "var" else 1
            value = math.exp(power * self.aux[0])
            var_a = self.cov_all[k, k]
            se = power * value * math.sqrt(var_a) if var_a >= 0 else math.nan
            lo, hi = log_scale_ci(value, se, crit)
            rows.append(VarCompRow("Residual", f"{scale}(e)", value, se, lo, hi, "resvar"))
        return rows

    def varcomp(self, level: float | None = None) -> list[VarCompRow]:
        """Variance components as Stata reports them: ``var()`` with a CI computed on the
        log scale, ``cov()`` with a symmetric CI; for gaussian models the residual variance.
        """
        return self._components(level, "var")

    def ancillary(self, level: float | None = None) -> list[tuple[str, float, float, float, float]]:
        """The family's ancillary parameters (dispersion, cut points) as Stata reports them:
        ``(label, estimate, se, ci_low, ci_high)``."""
        k = self.n_beta + self.n_theta
        return self.family.ancillary_rows(
            self.aux, self.cov_all[k:, k:], resolve_level(level, self.level)
        )

    def sd(self, level: float | None = None) -> pd.DataFrame:
        """Stata's ``estat sd``: standard deviations and correlations of the random effects
        with delta-method SEs and intervals (log scale for SDs, atanh for correlations)."""
        rows = self._components(level, "sd")
        return rows_frame(rows)

    def estat_sd(self, level: float | None = None) -> str:
        """``estat sd`` as Stata prints it."""
        level = resolve_level(level, self.level)
        frame = self.sd(level)
        return render_table(varcomp_table(self, frame, level))

    def icc(self, level: float | None = None) -> pd.DataFrame:
        """Stata's ``estat icc`` for random-intercept models: the residual intra-class
        correlation on the latent scale, with a delta-method SE and an interval symmetric
        on the logit scale."""
        if self.structure.q != 1 or self.structure.columns != ("_cons",):
            raise MixedGLMError("icc() is for random-intercept models (Stata's estat icc too)")
        level = resolve_level(level, self.level)
        crit = stats.norm.ppf(0.5 + level / 200.0)
        theta = float(self.theta[0])
        var_u = theta**2
        idx = [self.n_beta]
        if self.family.name == "gaussian":
            k = self.n_beta + self.n_theta
            var_e = math.exp(2 * self.aux[0])
            total = var_u + var_e
            grad = np.array([2 * theta * var_e / total**2, -2 * var_u * var_e / total**2])
            idx.append(k)
        elif self.family.latent_variance is not None:
            c = self.family.latent_variance
            total = var_u + c
            grad = np.array([2 * theta * c / total**2])
        else:
            raise MixedGLMError(
                f"icc() is not defined for the {self.family.name} family (no latent residual)"
            )
        icc = var_u / total
        se = math.sqrt(max(float(grad @ self.cov_all[np.ix_(idx, idx)] @ grad), 0.0))
        lo, hi = _logit_ci(icc, se, crit)
        name = self.design.group.name if self.design.group else ""
        return pd.DataFrame(
            {"icc": [icc], "se": [se], "ci_low": [lo], "ci_high": [hi]},
            index=pd.Index([name], name="level"),
        )

    # -- likelihood-based ---------------------------------------------------------------------
    @cached_property
    def lr_test(self) -> TestResult:
        """LR test against the model without random effects (Stata's footer)."""
        return lr_test_variance(
            self.loglik, self.loglik_pooled, len(component_labels(self.structure))
        )

    @cached_property
    def wald(self) -> TestResult:
        """Wald test that all fixed effects but the constant are zero."""
        idx = [i for i, n in enumerate(self.design.x_names) if n != "_cons"]
        b = self.params.to_numpy()[idx]
        return wald_test(b, self.cov_params.to_numpy()[np.ix_(idx, idx)])

    # -- xt-style ancillary parameters --------------------------------------------------------
    def xt_params(self, level: float | None = None) -> dict[str, tuple[float, float, float, float]]:
        """``/lnsig2u``, ``sigma_u`` and ``rho`` (and ``sigma_e`` for gaussian) with SE and CI,
        as ``xtlogit, re`` reports them (a random-intercept model only)."""
        if self.structure.q != 1:
            raise ValueError("the xt layout is for random-intercept models only")
        level = resolve_level(level, self.level)
        crit = stats.norm.ppf(0.5 + level / 200.0)
        sd = abs(float(self.theta[0]))
        var_theta = float(self._theta_cov()[0, 0])
        se_sd = math.sqrt(var_theta) if var_theta >= 0 else math.nan
        out: dict[str, tuple[float, float, float, float]] = {}
        ln = 2 * math.log(sd) if sd > 0 else -math.inf
        se_ln = 2 * se_sd / sd if sd > 0 else math.nan
        out["/lnsig2u"] = (ln, se_ln, ln - crit * se_ln, ln + crit * se_ln)
        out["sigma_u"] = (
            sd,
            se_sd,
            _exp_ci(out["/lnsig2u"][2] / 2),
            _exp_ci(out["/lnsig2u"][3] / 2),
        )
        if self.family.name == "gaussian":
            k = self.n_beta + self.n_theta
            a = float(self.aux[0])
            se_a = math.sqrt(self.cov_all[k, k]) if self.cov_all[k, k] >= 0 else math.nan
            out["sigma_e"] = (
                math.exp(a),
                math.exp(a) * se_a,
                _exp_ci(a - crit * se_a),
                _exp_ci(a + crit * se_a),
            )
            theta = float(self.theta[0])
            var_e = math.exp(2 * a)
            total = theta**2 + var_e
            rho = theta**2 / total
            idx = [self.n_beta, k]
            grad = np.array([2 * theta * var_e / total**2, -2 * theta**2 * var_e / total**2])
            se_rho = math.sqrt(max(grad @ self.cov_all[np.ix_(idx, idx)] @ grad, 0.0))
            out["rho"] = (rho, se_rho, *_rho_ci_gauss(rho, se_rho, crit))
        else:
            c = self.family.latent_variance
            if c is not None:
                rho = sd**2 / (sd**2 + c)
                se_rho = rho * (1 - rho) * se_ln if sd > 0 else math.nan
                lo = _exp_ci(out["/lnsig2u"][2])
                hi = _exp_ci(out["/lnsig2u"][3])
                out["rho"] = (rho, se_rho, lo / (lo + c), hi / (hi + c))
        return out

    # -- output ---------------------------------------------------------------------------------
    def summary(
        self,
        style: str = "me",
        level: float | None = None,
        ic: bool = True,
        eform: bool | str = False,
    ) -> Summary:
        """The estimation table: ``style="me"`` (melogit's layout, the default) or ``"xt"``
        (xtlogit's, with /lnsig2u, sigma_u and rho); with ``ic`` followed by ``estat ic``.
        ``eform``: ``True`` (odds ratios for logit links, incidence-rate ratios for Poisson
        and nbinomial, else ``exp(b)``), or ``"or"``, ``"irr"``, ``"eform"`` (Stata's
        options): the fixed effects as ``exp(b)``; variance components unchanged."""
        from mixedglm.results.eform import resolve_eform

        kind = resolve_eform(eform, self.family)
        extras = (self.estat_ic(),) if ic else ()
        table = glmm_table(self, style=style, level=resolve_level(level, self.level), eform=kind)
        return Summary(table, extras)

    def test(self, *hypotheses: str | list[str]) -> WaldTest:
        """Wald test of linear hypotheses on the fixed effects (Stata's ``test``):
        ``res.test("x1 = x2", "x3 = 0")`` jointly, or ``res.test(["x1", "x2"])`` for all
        listed coefficients zero. Uses the reported (robust, if asked for) covariance."""
        return wald_hypotheses(self.params, self.cov_params, hypotheses, self.design.response)

    margins = margins_of_fit  # Stata's margins: mixedglm.inference.margins.margins

    def estat_ic(self) -> str:
        """Stata's ``estat ic``: AIC and BIC with N = number of observations."""
        return render_ic(self.nobs, None, self.loglik, self.n_params, self.aic, self.bic)

    def to_frame(self, level: float | None = None, eform: bool | str = False) -> pd.DataFrame:
        """Fixed effects, ancillary parameters (part ``aux``: ``/lnalpha``, ``/cut1``...)
        and variance components in one DataFrame; ``eform`` as :meth:`summary` (the fixed
        effects only)."""
        from mixedglm.results.eform import exponentiate, resolve_eform

        level = resolve_level(level, self.level)
        if resolve_eform(eform, self.family):
            frame = self.to_frame(level)
            return exponentiate(frame, frame.index[frame["part"] == "fixed"])
        coef = self.estimates(level)
        coef.insert(0, "part", "fixed")
        parts = [("aux", *row) for row in self.ancillary(level)] + [
            (r.group, r.name, r.estimate, r.se, r.ci_low, r.ci_high) for r in self.varcomp(level)
        ]
        rows = [
            {"part": part, "estimate": est, "se": se, "z": np.nan, "p": np.nan,
             "ci_low": lo, "ci_high": hi, "term": term}
            for part, term, est, se, lo, hi in parts
        ]  # fmt: skip
        rand = pd.DataFrame(rows).set_index("term") if rows else pd.DataFrame()
        return pd.concat([coef, rand])

    def to_dict(self, level: float | None = None) -> dict:
        """The JSON document of the README (plain Python types): the one source of the
        JSON output and of :func:`mixedglm.compare`."""
        return glmm_to_dict(self, resolve_level(level, self.level))

    def predict(
        self,
        data: pd.DataFrame | None = None,
        kind: str = "mu",
        conditional: bool = True,
        u0: bool = False,
    ) -> Predictions:
        """Predictions, as Stata's ``predict`` after ``melogit``.

        ``kind``: ``xb`` (fixed part with the offset), ``eta`` (linear predictor), ``mu``
        (mean; for binomial the probability of success; for nbinomial and gamma
        ``exp(eta)``) or, for ordinal models, ``pr``: a DataFrame of the probability of each
        category, one column per category (Stata's ``predict p1-pK, pr``; for ordinal
        models ``xb`` and ``eta`` have no constant). ``conditional=True`` uses the
        predicted random effects (posterior means; a cluster not in the fit gets zero, as
        does every row with ``u0=True``; new data without the grouping column, or with a
        missing cluster id, are an error unless ``u0=True``; a factor level not seen in the
        fit is an error; cluster ids are matched by value, so ``"5"`` finds cluster 5);
        ``conditional=False`` integrates the random effects out (``eta`` is then ``xb``).
        ``data=None`` predicts for the estimation sample, in the data's row order.
        """
        return predict(self, data, kind, conditional, u0)

    def random_effects(
        self, kind: str = "means", se: bool = True, expand: bool = False
    ) -> EffectsFrame:
        """Predicted random effects per cluster (Stata's ``predict, reffects``/``reses``).

        ``kind="means"``: posterior means and SDs by the fit's quadrature (Stata's default);
        ``kind="modes"``: posterior modes with the SDs from the curvature there (lme4's
        ``ranef``). Columns in Stata's order (slopes first, ``_cons`` last), then
        ``se(name)`` columns when ``se``; indexed by the cluster labels, or with
        ``expand=True`` one row per observation of the estimation sample (data order).
        """
        lam = self.structure.lam(self.theta)
        if kind in ("means", "mean") and self.nagq > 1:
            centre, cov_u = self.posterior_mean, self.posterior_cov
        elif kind in ("means", "mean", "modes", "mode"):
            centre, cov_u = self._modes
        else:
            raise ValueError(f"kind must be 'means' or 'modes', not '{kind}'")
        b = centre @ lam.T
        cov_b = np.einsum("ab,gbc,dc->gad", lam, cov_u, lam)
        order = self.structure.display_order()
        names = [self.structure.columns[a] for a in order]
        frame = pd.DataFrame(b[:, order], columns=names)
        if se:
            sds = np.sqrt(np.maximum(np.einsum("gaa->ga", cov_b), 0.0))[:, order]
            for j, name in enumerate(names):
                frame[f"se({name})"] = sds[:, j]
        assert self.design.group is not None
        frame.index = pd.Index(self.design.group.labels, name=self.design.group.name)
        if expand:
            assert self.design.source_positions is not None
            data_order = np.argsort(self.design.source_positions, kind="stable")
            rows = frame.iloc[self.design.group_codes[data_order]]
            rows.index = self.design.row_index[data_order]
            return rows
        return frame


def _exp_ci(x: float) -> float:
    """An interval end on the exp scale: NaN where it over- or underflows (no interval)."""
    if not math.isfinite(x) or not -708.0 < x < 708.0:
        return math.nan
    return math.exp(x)


def _logit_ci(value: float, se: float, crit: float) -> tuple[float, float]:
    """Interval symmetric on the logit scale (intra-class correlations)."""
    if not 0 < value < 1 or not math.isfinite(se):
        return math.nan, math.nan
    half = crit * se / (value * (1 - value))
    centre = math.log(value / (1 - value))
    return 1 / (1 + exp_or_inf(-(centre - half))), 1 / (1 + exp_or_inf(-(centre + half)))


def _rho_ci_gauss(rho: float, se: float, crit: float) -> tuple[float, float]:
    """Interval for an intra-class correlation through the logit scale."""
    if not 0 < rho < 1 or not math.isfinite(se):
        return math.nan, math.nan
    lg = math.log(rho / (1 - rho))
    half = crit * se / (rho * (1 - rho))
    return 1 / (1 + exp_or_inf(-(lg - half))), 1 / (1 + exp_or_inf(-(lg + half)))


class Summary(Formats):
    """What ``summary()`` returns: prints as Stata's text; ``as_markdown()``,
    ``as_latex()`` and ``as_html()`` render the same table."""

    def __init__(self, table: CoefTable, extras: tuple[str, ...] = ()) -> None:
        self.table = table
        self.extras = extras

    def __str__(self) -> str:
        return "\n\n".join([render_stata(self.table), *self.extras])

    def __repr__(self) -> str:
        return str(self)

    def grid(self) -> Grid:
        return coef_grid(self.table)
