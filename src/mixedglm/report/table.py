"""The table model shared by every output format.

A :class:`CoefTable` is what Stata prints after an estimation command: a title, a header of
key/value pairs, a coefficient table in blocks separated by rules, and footer lines. The
result classes build one; :mod:`mixedglm.report.stata` renders it as Stata's text and
:mod:`mixedglm.report.render` as markdown, LaTeX, HTML or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

RowStyle = Literal[
    "coef",  # label | coef se z p lo hi
    "param",  # ancillary parameter (/lnsig2u, sigma_u, var(_cons) in xt style): no z, p
    "varcomp",  # var(_cons) rows of a random-effects block: label flush against the rule
    "omitted",  # 0 (omitted)
    "base",  # 0 (base)
    "offset",  # 1 (offset): an offset variable's fixed coefficient
    "exposure",  # 1 (exposure): ln(exposure variable)'s fixed coefficient
    "blank",  # empty row
    "factor",  # factor-variable header (its levels follow as 'level' rows)
    "level",  # a factor level
    "level_omitted",  # a factor level shown as 0 (omitted), indented as a level
    "group",  # name of a grouping variable, left-aligned, heading a varcomp block
]


@dataclass(frozen=True)
class Row:
    """One row of a coefficient table; numbers are ``None`` where not shown."""

    label: str
    style: RowStyle = "coef"
    coef: float | None = None
    se: float | None = None
    stat: float | None = None
    p: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class HeaderLine:
    """A header line: free text on the left, ``key = value`` on the right (either empty)."""

    left: str = ""
    key: str = ""
    value: str = ""


@dataclass(frozen=True)
class CoefTable:
    """A complete estimation table."""

    title: str
    header: tuple[HeaderLine, ...]
    depvar: str
    blocks: tuple[tuple[Row, ...], ...]
    footer: tuple[str, ...] = ()
    level: float = 95.0
    stat_name: str = "z"
    notes_before: tuple[str, ...] = field(default=())
    coef_name: str = "Coef."
    se_title: str = ""  # a line above "Std. Err.": "Robust", "Delta-method"
    se_note: str = ""  # right-aligned above the table: "(Std. Err. adjusted for ...)"

    def rows(self) -> list[Row]:
        return [row for block in self.blocks for row in block]
