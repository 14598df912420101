"""The compact table of ``xthybrid`` (Stata's ``estimates table, style(columns)``) for one or
several models side by side, and :func:`compare`.

Layout, as the seed's ``xthybrid`` output shows it: a box drawn with ``+``, ``-`` and ``|``;
a label column right-aligned in 21 characters (wider when a label is longer: Stata would
abbreviate it); one 15-character column per model holding the estimate as ``%9.4f`` right-
aligned in 11 characters followed by its stars (``*`` p<.05, ``**`` p<.01, ``***`` p<.001) and
a space. Equations follow each other between rules: the model's outcome (its name left-
aligned) with the fixed effects, then one equation per variance component (``var(_cons[id])``,
right-aligned) holding ``_cons``, then the ``Statistics`` block. Numbers too wide for ten
characters in ``%.4f`` are shown with four significant digits in exponential notation
(``-2.088e+05``), as in the seed; counts (``N``, ``N_g``, ``df_m``, ``rank``) as integers.

Any result object can be tabulated: :func:`compact_column` reads ``params``, ``bse``,
``pvalues``, ``loglik`` and ``nobs``, plus, when present, variance components
(``varcomp()``), a ``wald`` or ``chi2`` test, ``aic``/``bic`` and the number of clusters; an
object may instead provide ``compact_column(title)`` itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
from scipy import stats as sps

from mixedglm.errors import MixedGLMError

__all__ = [
    "DEFAULT_STATS",
    "STAR_LEGEND",
    "STAT_NAMES",
    "Cell",
    "CompactColumn",
    "CompactTable",
    "Equation",
    "compact_column",
    "compact_number",
    "compare",
    "render_compact",
]

STAR_LEGEND = "legend: * p<.05; ** p<.01; *** p<.001"
DEFAULT_STATS = ("ll", "chi2", "p", "aic", "bic")
#: Statistics ``stats=`` may name (Stata's ``e()`` names) and what they are.
STAT_NAMES = {
    "N": "number of observations",
    "N_g": "number of clusters",
    "ll": "log likelihood",
    "ll_0": "log likelihood of the model without random effects",
    "chi2": "model test (Wald chi2 of all coefficients but the constant)",
    "df_m": "degrees of freedom of the model test",
    "p": "p-value of the model test",
    "aic": "Akaike's information criterion",
    "bic": "Bayesian information criterion (N = observations)",
    "rank": "number of estimated parameters",
}
_INTEGER_STATS = ("N", "N_g", "df_m", "rank")
LABEL_WIDTH = 21
COLUMN_WIDTH = 15


@dataclass(frozen=True)
class Cell:
    """One estimate with its standard error and p-value (NaN where unknown);
    ``omitted`` marks a coefficient dropped for collinearity."""

    estimate: float
    se: float = math.nan
    p: float = math.nan
    omitted: bool = False

    @property
    def t(self) -> float:
        return self.estimate / self.se if self.se > 0 else math.nan


@dataclass(frozen=True)
class Equation:
    """A block of rows under a heading: the outcome's name for the fixed effects (``main``),
    or a variance component's name (``var(_cons[id])``) over its ``_cons`` row."""

    name: str
    rows: tuple[tuple[str, Cell], ...]
    main: bool = False


@dataclass(frozen=True)
class CompactColumn:
    """One model of a compact table."""

    title: str
    equations: tuple[Equation, ...]
    stats: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CompactTable:
    """A compact table ready to print (``str()``) or to turn into a DataFrame."""

    columns: tuple[CompactColumn, ...]
    stats: tuple[str, ...] = DEFAULT_STATS
    star: bool = False
    se: bool = False
    t: bool = False
    p: bool = False
    title: str | None = None
    footer: tuple[str, ...] = ()

    def __str__(self) -> str:
        return render_compact(self)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        """The table as HTML (Jupyter)."""
        # imported here: compact_html builds on this module
        from mixedglm.report.compact_html import render_compact_html

        return render_compact_html(self)

    def to_frame(self) -> pd.DataFrame:
        """Estimates (and SE, t, p as requested) by equation and term, one column per model."""
        index: list[tuple[str, str, str]] = []
        values: dict[str, list[float]] = {c.title: [] for c in self.columns}
        kinds = ["b"] + [k for k in ("se", "t", "p") if getattr(self, k)]
        main_key = _main_key(self.columns)
        maps = [_column_map(c, main_key) for c in self.columns]
        for eq_name, terms in _merged_equations(self.columns):
            for term in terms:
                for kind in kinds:
                    index.append((eq_name, term, kind))
                    for col, cells in zip(self.columns, maps, strict=True):
                        cell = cells.get(eq_name, {}).get(term)
                        values[col.title].append(_cell_value(cell, kind))
        for stat in self.stats:
            index.append(("Statistics", stat, "stat"))
            for col in self.columns:
                values[col.title].append(float(col.stats.get(stat, math.nan)))
        return pd.DataFrame(
            values, index=pd.MultiIndex.from_tuples(index, names=["equation", "term", "kind"])
        )


# -- numbers --------------------------------------------------------------------------------


def compact_number(value: float | None, decimals: int = 4) -> str:
    """``%9.4f``, or four significant digits in exponential notation where the fixed form
    would be wider than ten characters (the seed's ``-2.088e+05``); ``.`` when missing."""
    if value is None or not math.isfinite(value):
        return "."
    text = f"{value:.{decimals}f}"
    if len(text) > 10:
        text = f"{value:.3e}"
    return text


def _stars(p: float) -> str:
    if not math.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _cell_value(cell: Cell | None, kind: str) -> float:
    if cell is None or cell.omitted:
        return math.nan
    return {"b": cell.estimate, "se": cell.se, "t": cell.t, "p": cell.p}[kind]


def _stat_text(name: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "."
    if name in _INTEGER_STATS and float(value).is_integer():
        return str(int(value))
    return compact_number(value)


# -- from result objects ------------------------------------------------------------------------


def _var_label(name: str, group: str, response: str) -> str:
    """``var(_cons)`` -> ``var(_cons[id])``; ``cov(x,_cons)`` -> ``cov(x[id],_cons[id])``;
    ``var(e)`` -> ``var(e.y)``: meglm's equation names."""
    if name in ("var(e)", "sd(e)"):
        return name.replace("(e)", f"(e.{response})")
    head, _, inner = name.partition("(")
    inner = inner.rstrip(")")
    parts = []
    for chunk in inner.split(","):
        parts.append(" ".join(f"{v}[{group}]" for v in chunk.split()))
    return f"{head}({','.join(parts)})"


def _component_p(estimate: float, se: float) -> float:
    """The p-value Stata's ``estimates table`` shows for any parameter: two-sided normal."""
    if not (se > 0 and math.isfinite(se)):
        return math.nan
    return float(2 * sps.norm.sf(abs(estimate / se)))


def _test_values(obj) -> tuple[float, float, float]:
    """``(chi2, df, p)`` of the model test: a ``chi2`` attribute, else ``wald``."""
    for attr in ("chi2", "wald"):
        test = getattr(obj, attr, None)
        if test is None:
            continue
        if hasattr(test, "stat"):
            return float(test.stat), float(test.df), float(test.p)
        if isinstance(test, int | float):
            df = float(getattr(obj, "df_m", math.nan))
            p = float(getattr(obj, "chi2_p", math.nan))
            return float(test), df, p
    return math.nan, math.nan, math.nan


def _n_groups(obj) -> float:
    design = getattr(obj, "design", None)
    group = getattr(design, "group", None)
    if group is not None:
        return float(group.n_groups)
    value = getattr(obj, "n_groups", None)
    return float(value) if value is not None else math.nan


def model_stats(obj) -> dict[str, float]:
    """The statistics of :data:`STAT_NAMES` that ``obj`` provides (missing ones are NaN)."""
    chi2, df, p = _test_values(obj)
    out = {
        "N": float(obj.nobs),
        "N_g": _n_groups(obj),
        "ll": float(obj.loglik),
        "ll_0": float(getattr(obj, "loglik_pooled", math.nan)),
        "chi2": chi2,
        "df_m": df,
        "p": p,
        "aic": float(getattr(obj, "aic", math.nan)),
        "bic": float(getattr(obj, "bic", math.nan)),
        "rank": float(getattr(obj, "n_params", math.nan)),
    }
    return out


def compact_column(obj, title: str = "model") -> CompactColumn:
    """The column of ``obj`` (a result object; see the module docstring)."""
    own = getattr(obj, "compact_column", None)
    if callable(own):
        return own(title)
    for attr in ("params", "bse", "pvalues", "loglik", "nobs"):
        if not hasattr(obj, attr):
            raise MixedGLMError(
                f"cannot tabulate a {type(obj).__name__}: it has no '{attr}' (compare() needs "
                "params, bse, pvalues, loglik and nobs)"
            )
    params, bse, pvalues = obj.params, obj.bse, obj.pvalues
    design = getattr(obj, "design", None)
    response = str(getattr(design, "response", None) or getattr(obj, "response", "") or "")
    omitted = dict(getattr(design, "omitted", ()) or ())
    names = list(getattr(design, "all_x_names", ()) or ()) or list(params.index)
    rows = []
    for name in names:
        if name in omitted and name not in params.index:
            rows.append((name, Cell(math.nan, omitted=True)))
            continue
        rows.append((name, Cell(float(params[name]), float(bse[name]), float(pvalues[name]))))
    equations = [Equation(response, tuple(rows), main=True)]
    varcomp = getattr(obj, "varcomp", None)
    if callable(varcomp):
        group = getattr(getattr(design, "group", None), "name", "")
        for vc in varcomp():
            label = _var_label(vc.name, group, response)
            cell = Cell(float(vc.estimate), float(vc.se), _component_p(vc.estimate, vc.se))
            equations.append(Equation(label, (("_cons", cell),)))
    extra = getattr(obj, "compact_extra", None)
    if callable(extra):
        equations.extend(extra())
    return CompactColumn(title, tuple(equations), model_stats(obj))


# -- rendering -------------------------------------------------------------------------------


def _main_key(columns: Sequence[CompactColumn]) -> str:
    """The main equations' heading: the outcome, or the outcomes joined by '/' when the
    models have different ones."""
    names = [c.equations[0].name for c in columns if c.equations and c.equations[0].main]
    return "/".join(dict.fromkeys(n for n in names if n))


def _column_map(col: CompactColumn, main_key: str) -> dict[str, dict[str, Cell]]:
    """``{equation: {term: cell}}`` of one column, its main equation under ``main_key``."""
    out: dict[str, dict[str, Cell]] = {}
    for k, eq in enumerate(col.equations):
        key = main_key if k == 0 and eq.main else eq.name
        out.setdefault(key, {}).update(dict(eq.rows))
    return out


def _merged_equations(columns: Sequence[CompactColumn]) -> list[tuple[str, list[str]]]:
    """Equations and their terms across models: the main equations are matched by position,
    the others by name; terms in order of first appearance, ``_cons`` last (as Stata)."""
    main_key = _main_key(columns)
    merged: dict[str, list[str]] = {main_key: []}
    for col in columns:
        for key, cells in _column_map(col, main_key).items():
            terms = merged.setdefault(key, [])
            terms.extend(t for t in cells if t not in terms)
    return [
        (key, [t for t in terms if t != "_cons"] + ["_cons"] * ("_cons" in terms))
        for key, terms in merged.items()
    ]


def render_compact(table: CompactTable) -> str:
    """The text of a :class:`CompactTable`, with its title and footer lines."""
    cols = table.columns
    if not cols:
        raise MixedGLMError("nothing to tabulate: no models given")
    unknown = [s for s in table.stats if s not in STAT_NAMES]
    if unknown:
        raise MixedGLMError(
            f"unknown statistic '{unknown[0]}' in stats: use any of {', '.join(STAT_NAMES)}"
        )
    equations = _merged_equations(cols)
    main_key = _main_key(cols)
    maps = [_column_map(c, main_key) for c in cols]
    labels = [t for _, terms in equations for t in terms] + list(table.stats)
    heads = [name for name, _ in equations]
    lw = max([LABEL_WIDTH, *(len(x) for x in labels), *(len(h) - 1 for h in heads)])
    widths = [max(COLUMN_WIDTH, len(c.title) + 2) for c in cols]

    def line(label: str, cells: list[str]) -> str:
        return "|" + label + "|" + "|".join(cells) + "|"

    def value_cells(texts: list[str], stars: list[str]) -> list[str]:
        return [
            f"{text:>{w - 4}}{star:<3} " for text, star, w in zip(texts, stars, widths, strict=True)
        ]

    rule = "|" + "-" * (lw + 1) + "+" + "+".join("-" * w for w in widths) + "|"
    total = len(rule)
    out = ["+" + "-" * (total - 2) + "+"]
    titles = [f"{c.title:^{w}}" for c, w in zip(cols, widths, strict=True)]
    out.append(line(f"{'Variable':>{lw}} ", titles))
    out.append(rule)
    extra_kinds = [k for k in ("se", "t", "p") if getattr(table, k)]
    for k, (eq_name, terms) in enumerate(equations):
        if k > 0:
            out.append(rule)
        head = f" {eq_name:<{lw}}" if k == 0 else f"{eq_name:>{lw + 1}}"
        out.append(line(head, [" " * w for w in widths]))
        for term in terms:
            cells = [m.get(eq_name, {}).get(term) for m in maps]
            texts, stars = [], []
            for cell in cells:
                if cell is None:
                    texts.append("")
                    stars.append("")
                elif cell.omitted:
                    texts.append("(omitted)")
                    stars.append("")
                else:
                    texts.append(compact_number(cell.estimate))
                    stars.append(_stars(cell.p) if table.star else "")
            out.append(line(f"{term:>{lw}} ", value_cells(texts, stars)))
            for kind in extra_kinds:
                texts = []
                for cell in cells:
                    value = _cell_value(cell, kind)
                    if cell is None or cell.omitted:
                        texts.append("")
                    elif kind == "t":
                        texts.append(compact_number(value, 2))
                    else:
                        texts.append(compact_number(value))
                out.append(line(" " * (lw + 1), value_cells(texts, [""] * len(cols))))
    if table.stats:
        out.append(rule)
        out.append(line(f" {'Statistics':<{lw}}", [" " * w for w in widths]))
        for stat in table.stats:
            texts = [_stat_text(stat, c.stats.get(stat)) for c in cols]
            out.append(line(f"{stat:>{lw}} ", value_cells(texts, [""] * len(cols))))
    out.append("+" + "-" * (total - 2) + "+")
    if table.star:
        out.append(f"{STAR_LEGEND:>{total}}")
    if extra_kinds:
        legend = "legend: " + "/".join(["b", *extra_kinds])
        out.append(f"{legend:>{total}}")
    title = [table.title] if table.title else []
    return "\n".join(title + out + list(table.footer))


# -- several models -----------------------------------------------------------------------------


_COMPONENT_TERM = re.compile(r"([^\s(),\[\]]+)\[")


def _renamed(col: CompactColumn, rename: Callable[[str], str]) -> CompactColumn:
    """Coefficients renamed, and the variables inside variance-component names
    (``var(W__x[id])`` -> ``var(x[id])`` for ``{"W__x": "x"}``)."""
    eqs = []
    for k, eq in enumerate(col.equations):
        if k == 0 and eq.main:
            rows = tuple((rename(name), cell) for name, cell in eq.rows)
            eqs.append(Equation(eq.name, rows, True))
        else:
            name = _COMPONENT_TERM.sub(lambda m: f"{rename(m.group(1))}[", eq.name)
            eqs.append(Equation(name, eq.rows, eq.main))
    return CompactColumn(col.title, tuple(eqs), col.stats)


def compare(
    models: Sequence[object],
    names: Sequence[str] | None = None,
    *,
    star: bool = False,
    se: bool = False,
    t: bool = False,
    p: bool = False,
    stats: Sequence[str] = (*DEFAULT_STATS, "N"),
    rename: Mapping[str, str] | Callable[[str], str] | None = None,
    title: str | None = None,
) -> CompactTable:
    """Several fitted models side by side in the compact layout.

    ``models`` are result objects (GLMM, hybrid, conditional fixed-effects... anything with
    ``params``, ``bse``, ``pvalues``, ``loglik`` and ``nobs``) or their column dictionaries
    from the JSON documents (see :func:`column_from_dict`). ``rename`` maps coefficient names
    so that rows line up across models, e.g. ``{"W__nauthors": "nauthors"}`` to read a hybrid
    model's within effects beside a fixed-effects model's.
    """
    models = list(models)
    if not models:
        raise MixedGLMError("compare() needs at least one model")
    if names is None:
        names = [f"model{k + 1}" for k in range(len(models))]
    names = list(names)
    if len(names) != len(models):
        raise MixedGLMError(f"compare(): {len(models)} models but {len(names)} names")
    rename_fn: Callable[[str], str]
    if isinstance(rename, Mapping):
        mapping = dict(rename)
        rename_fn = lambda name: mapping.get(name, name)  # noqa: E731
    else:
        rename_fn = rename or (lambda name: name)
    columns = []
    for obj, name in zip(models, names, strict=True):
        col = column_from_dict(obj, name) if isinstance(obj, Mapping) else compact_column(obj, name)
        columns.append(_renamed(col, rename_fn))
    return CompactTable(tuple(columns), tuple(stats), star, se, t, p, title)


def column_from_dict(doc: Mapping, title: str = "model") -> CompactColumn:
    """A column from a result's JSON document (``to_dict()`` / ``--json``): its ``coef``
    records, ``random`` components, ``loglik``, ``aic``, ``bic``, ``wald`` (or ``chi2``) and
    ``nobs``."""
    if "coef" not in doc:
        raise MixedGLMError(f"the results document of '{title}' has no 'coef' entries")

    def num(value) -> float:
        return math.nan if value is None else float(value)

    response = str(doc.get("depvar") or doc.get("response") or "")
    rows = tuple(
        (r["term"], Cell(num(r.get("estimate")), num(r.get("se")), num(r.get("p"))))
        for r in doc["coef"]
    )
    equations = [Equation(response, rows, main=True)]
    groups = doc.get("groups") or {}
    group = next(iter(groups), "")
    for r in doc.get("random", []) or []:
        est, se_ = num(r.get("estimate")), num(r.get("se"))
        label = _var_label(r["name"], r.get("group") or group, response)
        equations.append(Equation(label, (("_cons", Cell(est, se_, _component_p(est, se_))),)))
    test = doc.get("wald") or doc.get("chi2") or {}
    n_g = groups[group]["n"] if group else doc.get("n_groups")
    stats = {
        "N": num(doc.get("nobs")),
        "N_g": num(n_g),
        "ll": num(doc.get("loglik")),
        "ll_0": num(doc.get("loglik_pooled")),
        "chi2": num(test.get("chi2", test.get("stat"))) if isinstance(test, Mapping) else num(test),
        "df_m": num(test.get("df")) if isinstance(test, Mapping) else math.nan,
        "p": num(test.get("p")) if isinstance(test, Mapping) else math.nan,
        "aic": num(doc.get("aic")),
        "bic": num(doc.get("bic")),
        "rank": num(doc.get("n_params")),
    }
    return CompactColumn(title, tuple(equations), stats)
