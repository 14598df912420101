"""Markdown, LaTeX and HTML renderings of a :class:`~mixedglm.report.table.CoefTable`."""

from __future__ import annotations

import html

from mixedglm.report.formats import stata_g
from mixedglm.report.table import CoefTable, Row


def _cells(row: Row) -> list[str]:
    if row.style in ("blank", "factor", "group"):
        return [""] * 6
    if row.style in ("omitted", "base", "offset", "exposure", "level_omitted"):
        shown = "0" if row.coef is None else stata_g(row.coef)
        word = "omitted" if row.style == "level_omitted" else row.style
        return [shown, f"({word})", "", "", "", ""]

    def num(v, fmt=None):
        if v is None:
            return ""
        return f"{v:{fmt}}" if fmt else stata_g(v)

    return [
        num(row.coef),
        num(row.se),
        num(row.stat, ".2f"),
        num(row.p, ".3f"),
        num(row.ci_low),
        num(row.ci_high),
    ]


def _label(row: Row) -> str:
    return f"  {row.label}" if row.style in ("level", "level_omitted") else row.label


def _columns(table: CoefTable) -> list[str]:
    return [
        table.depvar,
        table.coef_name,
        "Std. Err.",
        table.stat_name,
        f"P>|{table.stat_name}|",
        f"[{table.level:g}% Conf.",
        "Interval]",
    ]


def _header_pairs(table: CoefTable) -> list[tuple[str, str]]:
    out = []
    for line in table.header:
        if line.left.strip():
            out.append((line.left.strip(), ""))
        if line.key.strip() and line.value:
            out.append((line.key.strip(), line.value))
    return out


def render_markdown(table: CoefTable) -> str:
    """A markdown document: title, header pairs, the table and the footer."""
    lines = [f"**{table.title}**", ""]
    for key, value in _header_pairs(table):
        lines.append(f"- {key}" + (f": {value}" if value else ""))
    lines.append("")
    cols = _columns(table)
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * 6) + "|")
    for row in table.rows():
        if row.style == "blank":
            continue
        lines.append("| " + " | ".join([_label(row), *_cells(row)]) + " |")
    lines += [""] + [f"{line}" for line in table.footer if line]
    return "\n".join(lines)


def _latex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
        ("$", r"\$"),
        ("{", r"\{"),
        ("}", r"\}"),
    ):
        text = text.replace(a, b)
    return text


def render_latex(table: CoefTable) -> str:
    """A ``tabular`` with one rule between blocks."""
    cols = [_latex_escape(c) for c in _columns(table)]
    lines = [r"\begin{tabular}{l" + "r" * 6 + "}", r"\hline", " & ".join(cols) + r" \\", r"\hline"]
    for i, block in enumerate(table.blocks):
        if i:
            lines.append(r"\hline")
        for row in block:
            if row.style == "blank":
                continue
            cells = [_latex_escape(_label(row)), *(_latex_escape(c) for c in _cells(row))]
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines)


def render_html(table: CoefTable) -> str:
    """A ``<table>`` with a caption."""
    esc = html.escape
    out = [f'<table class="mixedglm"><caption>{esc(table.title)}</caption>', "<thead><tr>"]
    out += [f"<th>{esc(c)}</th>" for c in _columns(table)]
    out.append("</tr></thead><tbody>")
    for row in table.rows():
        if row.style == "blank":
            continue
        cells = "".join(f"<td>{esc(c)}</td>" for c in [_label(row), *_cells(row)])
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)
