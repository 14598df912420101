"""The table model every non-Stata renderer draws: a :class:`Grid` of text cells.

Both table kinds become a grid: a :class:`~mixedglm.report.table.CoefTable` (one model's
estimation table, :func:`coef_grid`) and a
:class:`~mixedglm.report.compact.CompactTable` (models side by side, its ``grid()``). The
renderers of :mod:`mixedglm.report.render` (markdown, LaTeX, HTML) then need to know only
this model, so each format is written once for every table.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixedglm.report.formats import stata_g
from mixedglm.report.table import CoefTable, Row


@dataclass(frozen=True)
class GridRow:
    """A row: its label (indentation included) and one text per value column; ``heading``
    marks a row that names the block below it (an equation, a grouping variable)."""

    label: str
    cells: tuple[str, ...]
    heading: bool = False


@dataclass(frozen=True)
class Grid:
    """A titled table of text: ``header`` pairs above it (``(key, value)``, value may be
    empty), the column headings (the label column's first), blocks of rows separated by
    rules, and footer lines."""

    title: str
    columns: tuple[str, ...]
    blocks: tuple[tuple[GridRow, ...], ...]
    header: tuple[tuple[str, str], ...] = ()
    footer: tuple[str, ...] = ()

    def rows(self) -> list[GridRow]:
        return [row for block in self.blocks for row in block]


def _cells(row: Row) -> tuple[str, ...]:
    if row.style in ("blank", "factor", "group"):
        return ("",) * 6
    if row.style in ("omitted", "base", "offset", "exposure", "level_omitted"):
        shown = "0" if row.coef is None else stata_g(row.coef)
        word = "omitted" if row.style == "level_omitted" else row.style
        return (shown, f"({word})", "", "", "", "")

    def num(v, fmt=None):
        if v is None:
            return ""
        return f"{v:{fmt}}" if fmt else stata_g(v)

    return (
        num(row.coef),
        num(row.se),
        num(row.stat, ".2f"),
        num(row.p, ".3f"),
        num(row.ci_low),
        num(row.ci_high),
    )


def _label(row: Row) -> str:
    return f"  {row.label}" if row.style in ("level", "level_omitted") else row.label


def _header_pairs(table: CoefTable) -> tuple[tuple[str, str], ...]:
    out = []
    for line in table.header:
        if line.left.strip():
            out.append((line.left.strip(), ""))
        if line.key.strip() and line.value:
            out.append((line.key.strip(), line.value))
    return tuple(out)


def coef_grid(table: CoefTable) -> Grid:
    """The grid of an estimation table: Stata's columns, its blocks without blank rows."""
    columns = (
        table.depvar,
        table.coef_name,
        "Std. Err.",
        table.stat_name,
        f"P>|{table.stat_name}|",
        f"[{table.level:g}% Conf.",
        "Interval]",
    )
    blocks = tuple(
        tuple(
            GridRow(_label(row), _cells(row), row.style in ("factor", "group"))
            for row in block
            if row.style != "blank"
        )
        for block in table.blocks
    )
    footer = tuple(line for line in table.footer if line)
    return Grid(table.title, columns, blocks, _header_pairs(table), footer)
