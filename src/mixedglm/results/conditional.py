"""The result of a conditional fixed-effects model (``xtlogit, fe`` / ``clogit``,
``xtpoisson, fe``): estimates, tests, Stata's table, JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from mixedglm.design.build import GroupInfo
from mixedglm.errors import MixedGLMError
from mixedglm.inference import TestResult, wald_test
from mixedglm.inference.robust import VCEInfo
from mixedglm.optim import OptSummary
from mixedglm.optim.newton import format_loglik
from mixedglm.options import resolve_level
from mixedglm.report.formats import comma_int, fixed
from mixedglm.report.stata import _header_line, render_ic, render_table
from mixedglm.report.table import CoefTable, HeaderLine, Row
from mixedglm.results.accessors import CommonAccessors
from mixedglm.results.base import CoefficientResults
from mixedglm.results.display import DisplayMixin
from mixedglm.results.glmm import Summary
from mixedglm.results.plotting import PlotMixin
from mixedglm.results.serialize import conditional_to_dict
from mixedglm.results.tables import coefficient_rows, obs_per_group_lines

__all__ = ["ConditionalResults", "ConditionalSummary"]

TITLES = {
    "logit": "Conditional fixed-effects logistic regression",
    "poisson": "Conditional fixed-effects Poisson regression",
}
EFORM_NAMES = {"logit": "Odds Ratio", "poisson": "IRR"}
_SPLIT_NOTE = " all negative outcomes."


def stata_note_lines(note: str) -> list[str]:
    """A note as Stata prints it: ``clogit`` breaks its dropped-groups note after
    "all positive or" (see the seed); the others fit on one line."""
    if note.endswith("because of all positive or" + _SPLIT_NOTE):
        return [note[: -len(_SPLIT_NOTE)], "     " + _SPLIT_NOTE]
    return [note]


@dataclass(frozen=True, repr=False)
class ConditionalResults(CoefficientResults, CommonAccessors, PlotMixin, DisplayMixin):
    """A fitted conditional fixed-effects logit (``kind="logit"``) or Poisson model.

    ``params_array`` ``(k,)`` holds the estimated coefficients, named by ``names``, with
    covariance ``cov_array`` ``(k, k)`` (inverse observed information). ``all_names`` lists
    every covariate of the formula in order, estimated or ``omitted`` (``(name, reason)``
    pairs). ``group`` describes the groups kept (informative ones); ``loglik_0`` is the
    conditional log-likelihood at ``beta = 0``. ``eform`` is the default display
    (odds ratios / incidence-rate ratios).
    """

    kind: str
    response: str
    group: GroupInfo
    names: tuple[str, ...]
    all_names: tuple[str, ...]
    omitted: tuple[tuple[str, str], ...]
    params_array: np.ndarray
    cov_array: np.ndarray
    loglik: float
    loglik_0: float
    opt: OptSummary
    time_s: float
    notes: tuple[str, ...] = ()
    n_obs_dropped: int = 0
    n_groups_dropped: int = 0
    multiple_positive: bool = False
    offset_name: str | None = None
    exposure_name: str | None = None
    eform: bool = False
    level: float = 95.0
    hessian_ok: bool = True
    formula: str = ""
    value_labels: Mapping = field(default_factory=dict)  # see mixedglm.labels
    vce: VCEInfo | None = None  # robust / cluster-robust covariance

    # -- sizes -----------------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Observations in the informative groups (Stata's ``e(N)``)."""
        return int(self.group.sizes.sum())

    @property
    def n_groups(self) -> int:
        return self.group.n_groups

    @property
    def n_params(self) -> int:
        return int(self.params_array.shape[0])

    # -- coefficients ------------------------------------------------------------------------
    @cached_property
    def params(self) -> pd.Series:
        """Estimated coefficients (omitted covariates are not included)."""
        return pd.Series(self.params_array, index=list(self.names), dtype=float)

    @cached_property
    def cov_params(self) -> pd.DataFrame:
        names = list(self.names)
        return pd.DataFrame(self.cov_array, index=names, columns=names)

    # -- tests and criteria ------------------------------------------------------------------
    @cached_property
    def lr_test(self) -> TestResult:
        """LR test of all coefficients zero: ``2 (loglik - loglik_0)`` on ``k`` df."""
        stat = max(2.0 * (self.loglik - self.loglik_0), 0.0)
        k = self.n_params
        return TestResult(stat, k, float(stats.chi2.sf(stat, k)), "chi2")

    @cached_property
    def wald(self) -> TestResult:
        """Wald test of all coefficients zero."""
        return wald_test(self.params_array, self.cov_array)

    @property
    def chi2(self) -> TestResult:
        """The model test in Stata's header: LR for the logit, Wald for Poisson (as
        ``xtlogit, fe`` and ``xtpoisson, fe`` report them)."""
        return self.lr_test if self.kind == "logit" and self.vce is None else self.wald

    # -- output ------------------------------------------------------------------------------
    def _eform(self, eform: bool | None, or_: bool | None, irr: bool | None) -> bool:
        if or_ is not None and self.kind != "logit":
            raise MixedGLMError("or_= is for the conditional logit; use irr= for Poisson")
        if irr is not None and self.kind != "poisson":
            raise MixedGLMError("irr= is for the Poisson model; use or_= for the logit")
        for choice in (eform, or_, irr):
            if choice is not None:
                return bool(choice)
        return self.eform

    def to_frame(
        self,
        level: float | None = None,
        eform: bool | None = None,
        *,
        or_: bool | None = None,
        irr: bool | None = None,
    ) -> pd.DataFrame:
        """The coefficient table as a DataFrame (one row per estimated coefficient)."""
        return self.estimates(level, self._eform(eform, or_, irr))

    def table(self, level: float | None = None, eform: bool = False) -> CoefTable:
        """The :class:`~mixedglm.report.table.CoefTable` of ``xtlogit, fe`` / ``xtpoisson, fe``."""
        level = resolve_level(level, self.level)
        est = self.estimates(level, eform)
        values = {str(name): tuple(float(v) for v in row) for name, row in est.iterrows()}
        rows = coefficient_rows(list(self.all_names), values, dict(self.omitted), self.value_labels)
        if eform:  # an omitted odds ratio is shown as 1, as Stata does
            omitted_styles = ("omitted", "level_omitted")
            rows = [Row(r.label, r.style, 1.0) if r.style in omitted_styles else r for r in rows]
        if self.offset_name:
            rows.append(Row(self.offset_name, "offset", 1.0))
        if self.exposure_name:
            rows.append(Row(f"ln({self.exposure_name})", "exposure", 1.0))
        test = self.chi2
        test_name = "LR" if self.kind == "logit" and self.vce is None else "Wald"
        ll_word = "Log pseudolikelihood" if self.vce is not None else "Log likelihood "
        header = (
            HeaderLine("", "Number of obs", comma_int(self.nobs)),
            HeaderLine(
                f"Group variable: {self.group.name}", "Number of groups", comma_int(self.n_groups)
            ),
            *obs_per_group_lines(self.group),
            HeaderLine("", f"{test_name} chi2({test.df})", fixed(test.stat, 2)),
            HeaderLine(
                f"{ll_word} = {format_loglik(self.loglik)}", "Prob > chi2", fixed(test.p, 4)
            ),
        )
        return CoefTable(
            title=TITLES[self.kind],
            header=header,
            depvar=self.response,
            blocks=(tuple(rows),),
            level=level,
            notes_before=self.notes,
            coef_name=EFORM_NAMES[self.kind] if eform else "Coef.",
            se_title="Robust" if self.vce is not None else "",
            se_note=self.vce.note if self.vce is not None else "",
        )

    def summary(
        self,
        level: float | None = None,
        eform: bool | None = None,
        *,
        or_: bool | None = None,
        irr: bool | None = None,
        notes: bool = True,
    ) -> ConditionalSummary:
        """Stata's output: the notes, the header and the coefficient table.

        ``or_=True`` (logit) / ``irr=True`` (Poisson) show ``exp(b)``; the default is the
        choice made when fitting. ``notes=False`` leaves out the notes (already printed
        before the iteration log).
        """
        table = self.table(resolve_level(level, self.level), self._eform(eform, or_, irr))
        return ConditionalSummary(table, show_notes=notes)

    def estat_ic(self) -> str:
        """Stata's ``estat ic``: AIC and BIC with N = number of observations."""
        return render_ic(self.nobs, self.loglik_0, self.loglik, self.n_params, self.aic, self.bic)

    def to_dict(
        self,
        level: float | None = None,
        eform: bool | None = None,
        *,
        or_: bool | None = None,
        irr: bool | None = None,
    ) -> dict:
        """The JSON document (the GLMM schema of the README, without random effects); with
        ``eform`` the ``coef`` records hold ``exp(b)`` (see :meth:`estimates`)."""
        eform_name = EFORM_NAMES[self.kind] if self._eform(eform, or_, irr) else None
        doc = conditional_to_dict(self, resolve_level(level, self.level), eform_name)
        doc["vce"] = self.vce.to_dict() if self.vce is not None else {"type": "oim"}
        if self.vce is not None:
            doc["chi2"]["type"] = "Wald"
        return doc


class ConditionalSummary(Summary):
    """What :meth:`ConditionalResults.summary` returns; prints as Stata's text.

    The layout is the seed's ``xtlogit, fe`` output: the notes, then the title and header
    without blank lines, then the table.
    """

    def __init__(self, table: CoefTable, show_notes: bool = True) -> None:
        super().__init__(table)
        self.show_notes = show_notes

    def __str__(self) -> str:
        table = self.table
        out: list[str] = []
        if self.show_notes:
            for note in table.notes_before:
                out += stata_note_lines(note)
        first = table.header[0]
        out.append(_header_line(HeaderLine(table.title, first.key, first.value)))
        out += [_header_line(line) for line in table.header[1:]]
        out.append(render_table(table))
        return "\n".join(out)
