"""The result of a hybrid (within/between) or correlated-random-effects model: the GLMM fit
on the decomposed covariates, the tests of the random-effects assumption, the compact table
of ``xthybrid`` and the JSON document."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from mixedglm.design.hybrid import HybridDecomposition, VariableTerms
from mixedglm.report.compact import (
    DEFAULT_STATS,
    CompactTable,
)
from mixedglm.report.compare import column_from_dict
from mixedglm.results.accessors import DelegatedAccessors
from mixedglm.results.display import DisplayMixin
from mixedglm.results.glmm import GLMMResults
from mixedglm.results.serialize import clean

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class REAssumptionTest:
    """A Wald test of the random-effects assumption for one variable (or all of them).

    Hybrid form: the between effect equals the within effect (``B__x = W__x``), and any
    powers of the cluster mean are zero; CRE form: ``D__x = 0`` (and its powers zero).
    ``hypothesis`` is written as Stata's ``test`` would echo it.
    """

    variable: str
    hypothesis: str
    chi2: float
    df: int
    p: float


def _contrasts(term: VariableTerms, cre: bool) -> list[tuple[dict[str, float], str]]:
    """Rows ``{column: weight}`` of the restriction matrix for one variable, with their text."""
    if cre:
        rows = [({term.between: 1.0}, f"_b[{term.between}] = 0")]
    else:
        rows = [
            (
                {term.between: 1.0, term.within: -1.0},
                f"_b[{term.between}] = _b[{term.within}]",
            )
        ]
    rows += [({power: 1.0}, f"_b[{power}] = 0") for power in term.powers]
    return rows


def wald_restrictions(
    params: pd.Series, cov: pd.DataFrame, rows: Sequence[dict[str, float]]
) -> tuple[float, int, float]:
    """Wald chi2 of ``R b = 0`` with ``R``'s rows given as ``{column: weight}``."""
    names = list(params.index)
    R = np.zeros((len(rows), len(names)))
    for k, row in enumerate(rows):
        for name, weight in row.items():
            R[k, names.index(name)] = weight
    rb = R @ params.to_numpy()
    middle = R @ cov.to_numpy() @ R.T
    try:
        chi2 = float(rb @ np.linalg.solve(middle, rb))
    except np.linalg.LinAlgError:
        chi2 = float(rb @ np.linalg.pinv(middle) @ rb)
    df = len(rows)
    return chi2, df, float(stats.chi2.sf(chi2, df))


def _from_glmm(*names: str) -> tuple[property, ...]:
    """Read-only attributes of the hybrid result that are its mixed model's ``names``."""

    def view(name: str) -> property:
        return property(
            lambda self: getattr(self.glmm, name),
            doc=f"The mixed model's ``{name}`` (:class:`GLMMResults`).",
        )

    return tuple(view(name) for name in names)


@dataclass(frozen=True, repr=False)
class HybridResults(DelegatedAccessors, DisplayMixin):
    """A fitted hybrid / CRE model: ``glmm`` is the mixed model on the columns of
    ``decomposition``; ``family_name`` and ``link`` are as the user asked for them (for the
    title: ``binomial`` is fitted as ``bernoulli`` when there are no trials)."""

    glmm: GLMMResults
    decomposition: HybridDecomposition
    family_name: str
    link: str
    random_slopes: tuple[str, ...] = ()
    command: str | None = None

    # -- delegated to the mixed model (read-only views of ``glmm``) --------------------------
    params, bse, zvalues, pvalues, cov_params = _from_glmm(
        "params", "bse", "zvalues", "pvalues", "cov_params"
    )
    loglik, aic, bic, nobs, n_params = _from_glmm("loglik", "aic", "bic", "nobs", "n_params")
    wald, converged = _from_glmm("wald", "converged")

    def conf_int(self, level: float | None = None) -> pd.DataFrame:
        return self.glmm.conf_int(level)

    def varcomp(self, level: float | None = None) -> list:
        return self.glmm.varcomp(level)

    @property
    def n_groups(self) -> int:
        group = self.glmm.design.group
        return group.n_groups if group is not None else 0

    @property
    def model_name(self) -> str:
        return "Correlated random effects model" if self.decomposition.cre else "Hybrid model"

    @property
    def title(self) -> str:
        """``Hybrid model. Family: binomial. Link: logit.`` as ``xthybrid`` prints it."""
        return f"{self.model_name}. Family: {self.family_name}. Link: {self.link}."

    # -- tests of the random-effects assumption -------------------------------------------------
    @cached_property
    def _tests(self) -> tuple[REAssumptionTest, ...]:
        params, cov = self.params, self.cov_params
        out: list[REAssumptionTest] = []
        all_rows: list[dict[str, float]] = []
        for term in self.decomposition.terms:
            rows = _contrasts(term, self.decomposition.cre)
            text = ", ".join(h for _, h in rows)
            if not all(name in params.index for r, _ in rows for name in r):
                out.append(REAssumptionTest(term.name, text, math.nan, len(rows), math.nan))
                continue
            chi2, df, p = wald_restrictions(params, cov, [r for r, _ in rows])
            out.append(REAssumptionTest(term.name, text, chi2, df, p))
            all_rows += [r for r, _ in rows]
        if all_rows:
            chi2, df, p = wald_restrictions(params, cov, all_rows)
            what = "D__ = 0" if self.decomposition.cre else "B__ = W__"
            out.append(REAssumptionTest("joint", f"all {what}", chi2, df, p))
        return tuple(out)

    def tests(self) -> pd.DataFrame:
        """Wald tests of the random-effects assumption, per decomposed variable and jointly
        (row ``joint``: the Hausman-type test that the random effects are uncorrelated with
        the covariates)."""
        rows = self._tests
        return pd.DataFrame(
            {
                "hypothesis": [t.hypothesis for t in rows],
                "chi2": [t.chi2 for t in rows],
                "df": [t.df for t in rows],
                "p": [t.p for t in rows],
            },
            index=pd.Index([t.variable for t in rows], name="variable"),
        )

    def test_text(self) -> str:
        """The tests as ``xthybrid, test`` prints them, then the joint test."""
        lines = ["Tests of the random effects assumption:"]
        joint = None
        for t in self._tests:
            if t.variable == "joint":
                joint = t
                continue
            p = "." if not math.isfinite(t.p) else f"{t.p:.4f}"
            lines.append(f"  {t.hypothesis}; p-value: {p}")
        if joint is not None:
            lines.append(
                f"Joint test ({joint.hypothesis}): chi2({joint.df}) = {joint.chi2:.2f}; "
                f"p-value: {joint.p:.4f}"
            )
        return "\n".join(lines)

    # -- output ---------------------------------------------------------------------------------
    def compact_table(self, **options: Any) -> CompactTable:
        """The table model of :meth:`table` without the tests (``options``: its ``star``,
        ``se``, ``t``, ``p`` and ``stats``), built from :meth:`to_dict` as every compact
        table is."""
        stats = tuple(options.pop("stats", DEFAULT_STATS))
        levels = f"Level 1: {self.nobs} units. Level 2: {self.n_groups} units."
        column = column_from_dict(self.to_dict(), "model")
        return CompactTable((column,), stats, title=self.title, footer=(levels,), **options)

    def table(
        self,
        star: bool = False,
        se: bool = False,
        t: bool = False,
        p: bool = False,
        stats: Sequence[str] = DEFAULT_STATS,
        full: bool = False,
        test: bool = False,
    ) -> str:
        """``xthybrid``'s output: the title and compact table (``star``, ``se``, ``t``, ``p``
        and ``stats`` as its options), or with ``full`` the mixed model's full table; with
        ``test`` followed by the tests of the random-effects assumption."""
        if full:
            text = f"{self.title}\n{self.glmm.summary(ic=False)}"
        else:
            text = str(self.compact_table(star=star, se=se, t=t, p=p, stats=stats))
        if test and self._tests:
            text += "\n\n" + self.test_text()
        return text

    def summary(self, style: str = "me", level: float | None = None):
        """The mixed model's full estimation table (``melogit``'s layout)."""
        return self.glmm.summary(style=style, level=level)

    def _text(self) -> str:
        return self.table()

    def _html(self) -> str:
        from mixedglm.report.compact_html import render_compact_html

        return render_compact_html(self.compact_table())

    def plot(self, level: float | None = None) -> Figure:
        """Within and between effects side by side per variable, with confidence intervals
        (see :func:`mixedglm.plot.plot_hybrid`)."""
        from mixedglm.plot import plot_hybrid

        return plot_hybrid(self, level=level)

    def plot_coefficients(
        self, eform: bool = False, level: float | None = None, drop: Sequence[str] = ("_cons",)
    ) -> Figure:
        """All coefficients with confidence intervals (:func:`mixedglm.plot.plot_coefficients`)."""
        return self.glmm.plot_coefficients(eform=eform, level=level, drop=drop)

    def plot_random_effects(
        self, kind: str = "means", level: float = 95.0, sort: bool = True
    ) -> Figure:
        """Caterpillar plot of the predicted random effects of the mixed model."""
        return self.glmm.plot_random_effects(kind=kind, level=level, sort=sort)

    def to_frame(self, level: float | None = None) -> pd.DataFrame:
        return self.glmm.to_frame(level)

    def to_dict(self, level: float | None = None) -> dict:
        """The GLMM's JSON document with ``model`` = ``hybrid``/``cre``, the decomposition and
        the tests added."""
        doc = self.glmm.to_dict(level)
        dec = self.decomposition
        doc["model"] = "cre" if dec.cre else "hybrid"
        doc["depvar"] = dec.response
        doc["family_requested"] = self.family_name
        doc["hybrid"] = {
            "command": self.command,
            "cluster": dec.cluster,
            "cre": dec.cre,
            "residual": list(dec.residual),
            "within": list(dec.within),
            "between": list(dec.between),
            "nonlinear": list(dec.powers),
            "nonlinearities": dec.nonlinearities,
            "random_slopes": list(self.random_slopes),
            "percentage": dec.percentage,
            "within_percent": dict(dec.within_percent),
            "skipped": [
                {"variable": s.name, "within_percent": s.within_percent} for s in dec.skipped
            ],
        }
        doc["tests"] = [
            {
                "variable": t.variable,
                "hypothesis": t.hypothesis,
                "chi2": clean(t.chi2),
                "df": t.df,
                "p": clean(t.p),
            }
            for t in self._tests
        ]
        return doc
