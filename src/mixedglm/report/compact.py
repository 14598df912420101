"""The compact table of ``xthybrid`` (Stata's ``estimates table, style(columns)``) for one or
several models side by side.

Layout, as the seed's ``xthybrid`` output shows it: a box drawn with ``+``, ``-`` and ``|``;
a label column right-aligned in 21 characters (wider when a label is longer: Stata would
abbreviate it); one 15-character column per model holding the estimate as ``%9.4f`` right-
aligned in 11 characters followed by its stars (``*`` p<.05, ``**`` p<.01, ``***`` p<.001) and
a space. Equations follow each other between rules: the model's outcome (its name left-
aligned) with the fixed effects, then one equation per variance component (``var(_cons[id])``,
right-aligned) holding ``_cons``, then the ``Statistics`` block. Numbers too wide for ten
characters in ``%.4f`` are shown with four significant digits in exponential notation
(``-2.088e+05``), as in the seed; counts (``N``, ``N_g``, ``df_m``, ``rank``) as integers.

The columns are built from the results' JSON documents (:mod:`mixedglm.report.compare`);
:func:`layout` turns a table into text cells that :func:`render_compact` draws as Stata's
text and :func:`compact_grid` hands to the markdown, LaTeX and HTML renderers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from mixedglm.errors import MixedGLMError
from mixedglm.report.grid import Grid, GridRow
from mixedglm.report.render import Formats

__all__ = [
    "DEFAULT_STATS",
    "STAR_LEGEND",
    "STAT_NAMES",
    "Cell",
    "CompactColumn",
    "CompactTable",
    "Equation",
    "compact_grid",
    "compact_number",
    "layout",
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
class CompactTable(Formats):
    """A compact table: ``str()`` (or ``as_text()``) is Stata's text; ``as_markdown()``,
    ``as_latex()`` and ``as_html()`` the other formats; ``to_frame()`` the numbers."""

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

    def grid(self) -> Grid:
        """The table as cells of text, for the markdown, LaTeX and HTML renderers."""
        return compact_grid(self)

    def to_frame(self) -> pd.DataFrame:
        """Estimates (and SE, t, p as requested) by equation and term, one column per model."""
        index: list[tuple[str, str, str]] = []
        values: dict[str, list[float]] = {c.title: [] for c in self.columns}
        kinds = ["b", *_extra_kinds(self)]
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


@dataclass(frozen=True)
class _Block:
    """An equation (or the statistics) laid out: its heading and, per row, the label and
    each model's text and stars."""

    heading: str
    rows: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]


def _check(table: CompactTable) -> None:
    if not table.columns:
        raise MixedGLMError("nothing to tabulate: no models given")
    unknown = [s for s in table.stats if s not in STAT_NAMES]
    if unknown:
        raise MixedGLMError(
            f"unknown statistic '{unknown[0]}' in stats: use any of {', '.join(STAT_NAMES)}"
        )


def _extra_kinds(table: CompactTable) -> list[str]:
    return [k for k in ("se", "t", "p") if getattr(table, k)]


def _estimate_texts(
    cells: list[Cell | None], star: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
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
            stars.append(_stars(cell.p) if star else "")
    return tuple(texts), tuple(stars)


def _extra_texts(cells: list[Cell | None], kind: str) -> tuple[str, ...]:
    texts = []
    for cell in cells:
        if cell is None or cell.omitted:
            texts.append("")
        else:
            texts.append(compact_number(_cell_value(cell, kind), 2 if kind == "t" else 4))
    return tuple(texts)


def layout(table: CompactTable) -> list[_Block]:
    """The table's blocks as text, before any format draws them: each equation, then the
    statistics (when any are asked for)."""
    _check(table)
    cols = table.columns
    main_key = _main_key(cols)
    maps = [_column_map(c, main_key) for c in cols]
    no_stars = ("",) * len(cols)
    blocks = []
    for eq_name, terms in _merged_equations(cols):
        rows = []
        for term in terms:
            cells = [m.get(eq_name, {}).get(term) for m in maps]
            rows.append((term, *_estimate_texts(cells, table.star)))
            rows += [("", _extra_texts(cells, k), no_stars) for k in _extra_kinds(table)]
        blocks.append(_Block(eq_name, tuple(rows)))
    if table.stats:
        rows = [
            (stat, tuple(_stat_text(stat, c.stats.get(stat)) for c in cols), no_stars)
            for stat in table.stats
        ]
        blocks.append(_Block("Statistics", tuple(rows)))
    return blocks


def _legends(table: CompactTable) -> list[str]:
    out = [STAR_LEGEND] if table.star else []
    if _extra_kinds(table):
        out.append("legend: " + "/".join(["b", *_extra_kinds(table)]))
    return out


def render_compact(table: CompactTable) -> str:
    """The text of a :class:`CompactTable`, with its title and footer lines."""
    blocks = layout(table)
    cols = table.columns
    labels = [label for b in blocks for label, _, _ in b.rows]
    heads = [b.heading for b in blocks if b.heading != "Statistics"]
    lw = max([LABEL_WIDTH, *(len(x) for x in labels), *(len(h) - 1 for h in heads)])
    widths = [max(COLUMN_WIDTH, len(c.title) + 2) for c in cols]
    blank = [" " * w for w in widths]

    def line(label: str, cells: list[str]) -> str:
        return "|" + label + "|" + "|".join(cells) + "|"

    def value_cells(texts: tuple[str, ...], stars: tuple[str, ...]) -> list[str]:
        return [
            f"{text:>{w - 4}}{star:<3} " for text, star, w in zip(texts, stars, widths, strict=True)
        ]

    rule = "|" + "-" * (lw + 1) + "+" + "+".join("-" * w for w in widths) + "|"
    total = len(rule)
    out = ["+" + "-" * (total - 2) + "+"]
    titles = [f"{c.title:^{w}}" for c, w in zip(cols, widths, strict=True)]
    out.append(line(f"{'Variable':>{lw}} ", titles))
    for k, block in enumerate(blocks):
        out.append(rule)
        left = k == 0 or block.heading == "Statistics"
        head = f" {block.heading:<{lw}}" if left else f"{block.heading:>{lw + 1}}"
        out.append(line(head, blank))
        out += [line(f"{label:>{lw}} ", value_cells(t, s)) for label, t, s in block.rows]
    out.append("+" + "-" * (total - 2) + "+")
    out += [f"{legend:>{total}}" for legend in _legends(table)]
    title = [table.title] if table.title else []
    return "\n".join(title + out + list(table.footer))


def compact_grid(table: CompactTable) -> Grid:
    """The table as a :class:`~mixedglm.report.grid.Grid` (estimates with their stars; the
    equations' and the statistics' headings as heading rows)."""
    blocks = tuple(
        (
            GridRow(block.heading, ("",) * len(table.columns), heading=True),
            *(
                GridRow(label, tuple(t + s for t, s in zip(texts, stars, strict=True)))
                for label, texts, stars in block.rows
            ),
        )
        for block in layout(table)
    )
    columns = ("Variable", *(c.title for c in table.columns))
    footer = (*_legends(table), *table.footer)
    return Grid(table.title or "", columns, blocks, footer=footer)
