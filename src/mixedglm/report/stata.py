"""Render a :class:`~mixedglm.report.table.CoefTable` as Stata prints it.

Layout (Stata 15/16 style, as the seed's output): a 48-character left header column and a
30-character right one (``key`` padded to 18, ``=``, value right-aligned in 11); the table's
label column is right-aligned and at least 12 characters wide, then ``|`` and the columns
Coef. (11), Std. Err. (11), z (9), P>|z| (8) and the confidence interval (13 + 12).
"""

from __future__ import annotations

from mixedglm.report.formats import comma_int, stata_g
from mixedglm.report.table import CoefTable, HeaderLine, Row

LEFT_WIDTH = 48
KEY_WIDTH = 18
VALUE_WIDTH = 11
BODY_WIDTH = 64


def _header_line(line: HeaderLine) -> str:
    if not line.key:
        return line.left.rstrip()
    if not line.value:
        return f"{line.left:<{LEFT_WIDTH}}{line.key}"
    right = f"{line.key:<{KEY_WIDTH}}={line.value:>{VALUE_WIDTH}}"
    return f"{line.left:<{LEFT_WIDTH}}{right}"


def _column_header(level: float, stat_name: str, coef_name: str) -> str:
    lev = f"{level:g}"
    ci = f"[{lev}% Conf. Interval]"
    stat = f"P>|{stat_name}|"
    return f"{coef_name:>11}   Std. Err.{stat_name:>7}{stat:>9}{ci:>25}"


def label_width(table: CoefTable) -> int:
    """Characters left of ``|``: the longest label plus a space, at least 13."""
    widths = [len(table.depvar) + 1, 13]
    for row in table.rows():
        extra = {"varcomp": 1, "level": 2, "level_omitted": 2, "group": 0}.get(row.style, 1)
        widths.append(len(row.label) + extra)
    return max(widths)


def _body(row: Row) -> str:
    if row.style in ("blank", "factor", "group"):
        return ""
    if row.style in ("omitted", "base", "offset", "exposure", "level_omitted"):
        # 0 for an omitted coefficient; 1 for an omitted odds ratio and for an offset
        shown = "0" if row.coef is None else stata_g(row.coef)
        word = "omitted" if row.style == "level_omitted" else row.style
        return f"{shown:>11}  ({word})"
    coef = f"{stata_g(row.coef):>11}"
    se = f"{stata_g(row.se):>11}" if row.se is not None else " " * 11
    if row.style in ("coef", "level") or row.stat is not None:
        stat = f"{row.stat:>9.2f}" if row.stat is not None else f"{'.':>9}"
        p = f"{row.p:>8.3f}" if row.p is not None else f"{'.':>8}"
    else:
        stat, p = " " * 9, " " * 8
    lo = f"{stata_g(row.ci_low):>13}" if row.ci_low is not None else ""
    hi = f"{stata_g(row.ci_high):>12}" if row.ci_high is not None else ""
    return (coef + se + stat + p + lo + hi).rstrip()


def _row_line(row: Row, width: int) -> str:
    if row.style == "group":
        return f"{row.label:<{width}}|"
    if row.style == "varcomp":
        return f"{row.label:>{width}}|{_body(row)}"
    if row.style in ("level", "level_omitted"):
        return f"{row.label:>{width - 2}}  |{_body(row)}"
    if row.style == "blank":
        return f"{'':>{width}}|"
    return f"{row.label:>{width - 1}} |{_body(row)}"


def render_table(table: CoefTable, width: int | None = None) -> str:
    """The coefficient table alone (rules, column header, rows)."""
    w = width or label_width(table)
    rule = "-" * (w + 1 + BODY_WIDTH)
    mid = "-" * w + "+" + "-" * BODY_WIDTH
    lines = [rule]
    if table.se_note:
        lines.insert(0, f"{table.se_note:>{w + 1 + BODY_WIDTH}}")
    if table.se_title:
        pad = int(18.5 - len(table.se_title) / 2)
        lines.append(f"{'':>{w}}|{'':>{pad}}{table.se_title}")
    lines += [
        f"{table.depvar:>{w - 1}} |"
        + _column_header(table.level, table.stat_name, table.coef_name),
        mid,
    ]
    for i, block in enumerate(table.blocks):
        if i > 0:
            lines.append(mid)
        lines += [_row_line(row, w) for row in block]
    lines.append(rule)
    return "\n".join(lines)


def render_stata(table: CoefTable) -> str:
    """Title, header, table and footer as Stata prints them."""
    out: list[str] = list(table.notes_before)
    if table.header:
        first = table.header[0]
        out.append(_header_line(HeaderLine(table.title, first.key, first.value)))
        out += [_header_line(line) for line in table.header[1:]]
    else:
        out.append(table.title)
    out.append("")
    out.append(render_table(table))
    out += list(table.footer)
    return "\n".join(out)


def render_ic(
    n_obs: int, ll_null: float | None, ll_model: float, df: int, aic: float, bic: float
) -> str:
    """Stata's ``estat ic`` table."""
    rule = "-" * 77
    head = (
        f"{'Model':>12} |{'N':>11}{'ll(null)':>11}{'ll(model)':>11}{'df':>8}{'AIC':>11}{'BIC':>11}"
    )
    row = (
        f"{'.':>12} |{comma_int(n_obs):>11}{stata_g(ll_null):>11}{stata_g(ll_model):>11}"
        f"{df:>8}{stata_g(aic):>11}{stata_g(bic):>11}"
    )
    return "\n".join(
        [
            "Akaike's information criterion and Bayesian information criterion",
            "",
            rule,
            head,
            "-" * 13 + "+" + "-" * 63,
            row,
            rule,
            "Note: BIC uses N = number of observations. See [R] BIC note.",
        ]
    )


def render_summarize(rows: list[tuple[str, int, float, float, float, float]]) -> str:
    """Stata's ``summarize``: ``(name, obs, mean, sd, min, max)`` per variable."""
    head = f"{'Variable':>12} |{'Obs':>11}{'Mean':>12}{'Std. Dev.':>13}{'Min':>10}{'Max':>11}"
    lines = [head, "-" * 13 + "+" + "-" * 57]
    for name, n, mean, sd, low, high in rows:
        lines.append(
            f"{name:>12} |{comma_int(n):>11}{stata_g(mean):>12}{stata_g(sd):>12}"
            f"{stata_g(low):>11}{stata_g(high):>11}"
        )
    return "\n".join(lines)
