"""HTML rendering of a :class:`~mixedglm.report.compact.CompactTable` (``compare()`` and the
hybrid model's table in Jupyter): the same rows, numbers and stars as the text."""

from __future__ import annotations

import html
import math

from mixedglm.report.compact import (
    STAR_LEGEND,
    Cell,
    CompactTable,
    _column_map,
    _main_key,
    _merged_equations,
    _stars,
    _stat_text,
    compact_number,
)


def _cell_html(cell: Cell | None, table: CompactTable) -> str:
    if cell is None:
        return ""
    if cell.omitted:
        return "(omitted)"
    text = compact_number(cell.estimate)
    if table.star and math.isfinite(cell.p):
        text += _stars(cell.p)
    extras = []
    if table.se:
        extras.append(f"({compact_number(cell.se)})")
    if table.t:
        extras.append(f"t={compact_number(cell.t, 2)}")
    if table.p:
        extras.append(f"p={compact_number(cell.p)}")
    if extras:
        text += "<br>" + "<br>".join(html.escape(e) for e in extras)
    return text


def render_compact_html(table: CompactTable) -> str:
    """A ``<table>``: one column per model, one row per term, a heading row per equation
    (outcome, variance components, ``Statistics``), the title as caption and the footer
    (and star legend) below."""
    esc = html.escape
    cols = table.columns
    main_key = _main_key(cols)
    maps = [_column_map(c, main_key) for c in cols]
    span = len(cols) + 1
    out = ['<table class="mixedglm compact">']
    if table.title:
        out.append(f"<caption>{esc(table.title)}</caption>")
    out.append("<thead><tr><th>Variable</th>")
    out += [f"<th>{esc(c.title)}</th>" for c in cols]
    out.append("</tr></thead><tbody>")
    for eq_name, terms in _merged_equations(cols):
        out.append(f'<tr><th colspan="{span}" style="text-align:left">{esc(eq_name)}</th></tr>')
        for term in terms:
            cells = [_cell_html(m.get(eq_name, {}).get(term), table) for m in maps]
            out.append(
                f"<tr><td>{esc(term)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
            )
    if table.stats:
        out.append(f'<tr><th colspan="{span}" style="text-align:left">Statistics</th></tr>')
        for stat in table.stats:
            values = [esc(_stat_text(stat, c.stats.get(stat))) for c in cols]
            out.append(
                f"<tr><td>{esc(stat)}</td>" + "".join(f"<td>{v}</td>" for v in values) + "</tr>"
            )
    out.append("</tbody></table>")
    notes = ([STAR_LEGEND] if table.star else []) + [line for line in table.footer if line]
    out += [f"<p>{esc(line)}</p>" for line in notes]
    return "".join(out)
