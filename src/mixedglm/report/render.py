"""Markdown, LaTeX and HTML renderings of any table (through its
:class:`~mixedglm.report.grid.Grid`), and :class:`Formats`, the ``as_*`` methods of the
objects that print as Stata's text."""

from __future__ import annotations

import html

from mixedglm.report.grid import Grid, coef_grid
from mixedglm.report.table import CoefTable

__all__ = ["Formats", "render_html", "render_latex", "render_markdown"]


def as_grid(table) -> Grid:
    """A :class:`Grid` from a grid, a :class:`CoefTable` or anything with ``grid()``."""
    if isinstance(table, Grid):
        return table
    if isinstance(table, CoefTable):
        return coef_grid(table)
    return table.grid()


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(table) -> str:
    """A markdown document: title, header pairs, the table and the footer."""
    grid = as_grid(table)
    lines = [f"**{grid.title}**", ""] if grid.title else []
    for key, value in grid.header:
        lines.append(f"- {key}" + (f": {value}" if value else ""))
    if grid.header:
        lines.append("")
    lines.append("| " + " | ".join(_md_escape(c) for c in grid.columns) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(grid.columns) - 1)) + "|")
    for row in grid.rows():
        cells = [_md_escape(row.label), *(_md_escape(c) for c in row.cells)]
        lines.append("| " + " | ".join(cells) + " |")
    if grid.footer:
        lines += ["", *grid.footer]
    return "\n".join(lines)


_LATEX = {
    "\\": r"\textbackslash{}",
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _latex_escape(text: str) -> str:
    """Each special character replaced once (so the escapes are not escaped again)."""
    return "".join(_LATEX.get(ch, ch) for ch in text)


def render_latex(table) -> str:
    """A ``tabular`` with one rule between blocks."""
    grid = as_grid(table)
    cols = [_latex_escape(c) for c in grid.columns]
    spec = "l" + "r" * (len(cols) - 1)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\hline", " & ".join(cols) + r" \\", r"\hline"]
    for i, block in enumerate(grid.blocks):
        if i:
            lines.append(r"\hline")
        for row in block:
            cells = [_latex_escape(row.label), *(_latex_escape(c) for c in row.cells)]
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines)


def render_html(table) -> str:
    """A ``<table>`` with a caption (the title); the footer lines in a last row."""
    grid = as_grid(table)
    esc = html.escape
    caption = f"<caption>{esc(grid.title)}</caption>" if grid.title else ""
    out = [f'<table class="mixedglm">{caption}', "<thead><tr>"]
    out += [f"<th>{esc(c)}</th>" for c in grid.columns]
    out.append("</tr></thead><tbody>")
    for row in grid.rows():
        cells = "".join(f"<td>{esc(c)}</td>" for c in [row.label, *row.cells])
        out.append(f"<tr>{cells}</tr>")
    if grid.footer:
        lines = "<br>".join(esc(line) for line in grid.footer)
        out.append(f'<tr class="note"><td colspan="{len(grid.columns)}">{lines}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


class Formats:
    """``as_text``, ``as_markdown``, ``as_latex`` and ``as_html`` of an object that prints
    as Stata's text (``str()``) and gives its table as a grid (``grid()``)."""

    def grid(self) -> Grid:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def as_text(self) -> str:
        return str(self)

    def as_markdown(self) -> str:
        return render_markdown(self.grid())

    def as_latex(self) -> str:
        return render_latex(self.grid())

    def as_html(self) -> str:
        return render_html(self.grid())

    def _repr_html_(self) -> str:
        """The table as HTML (Jupyter)."""
        return self.as_html()
