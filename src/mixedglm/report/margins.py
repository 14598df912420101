"""Stata's ``margins`` output, and the command line's ``--margins`` specification.

``parse_margins_spec("dydx(x1 x2) at(x3=0) over(g) predict(mu fixedonly)")`` gives the
keyword arguments of :meth:`~mixedglm.results.glmm.GLMMResults.margins`;
:func:`render_margins` prints its DataFrame as Stata does (header, ``Delta-method``
column title, one row per margin).
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import cast

import pandas as pd

from mixedglm.errors import MixedGLMError
from mixedglm.report.formats import comma_int
from mixedglm.report.stata import _header_line, render_table
from mixedglm.report.table import CoefTable, HeaderLine, Row

__all__ = ["parse_margins_spec", "render_margins"]

_PART = re.compile(r"\s*([A-Za-z_]+)\s*\(([^()]*)\)\s*")


def _value(text: str):
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


def parse_margins_spec(text: str) -> dict:
    """``dydx(a b)``, ``at(x=1 y=0)`` (a list as ``x=(0 1)`` is not needed: repeat
    ``--margins``), ``over(v)``, ``predict(mu fixedonly)`` or ``predict(mu marginal)``."""
    out: dict = {"marginal": True}
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise MixedGLMError(
                f"cannot read the margins specification at '{text[pos:]}': use dydx(x1 x2), "
                "at(x=value), over(var) or predict(mu fixedonly)"
            )
        key, body = match.group(1).lower(), match.group(2).split()
        if key == "dydx":
            out["dydx"] = body
        elif key == "at":
            at = {}
            for item in body:
                name, sep, value = item.partition("=")
                if not sep:
                    raise MixedGLMError(f"at() takes var=value pairs, not '{item}'")
                at[name] = _value(value)
            out["at"] = at
        elif key == "over":
            if len(body) != 1:
                raise MixedGLMError("over() takes one variable")
            out["over"] = body[0]
        elif key == "predict":
            words = {w.lower() for w in body}
            if "fixedonly" in words:
                out["marginal"] = False
            elif words - {"mu", "marginal", "pr"}:
                raise MixedGLMError(
                    f"predict({' '.join(body)}): use predict(mu fixedonly) or predict(mu marginal)"
                )
        else:
            raise MixedGLMError(f"unknown margins option '{key}()'")
        pos = match.end()
    return out


def render_margins(frame: pd.DataFrame, level: float = 95.0) -> str:
    """The margins table as Stata prints it."""
    dydx = frame.attrs.get("dydx") or []
    marginal = frame.attrs.get("marginal", True)
    title = "Average marginal effects" if dydx else "Predictive margins"
    vce = frame.attrs.get("vce", "OIM")
    expression = (
        "Marginal predicted mean, predict(mu marginal)"
        if marginal
        else "Predicted mean, fixed portion only, predict(mu fixedonly)"
    )
    lines = [
        _header_line(HeaderLine(title, "Number of obs", comma_int(frame.attrs.get("nobs", 0)))),
        f"Model VCE    : {'Robust' if vce == 'robust' else 'OIM'}",
        "",
        f"Expression   : {expression}",
    ]
    if dydx:
        lines.append(f"dy/dx w.r.t. : {' '.join(dydx)}")
    rows = []
    for key, row in frame.iterrows():
        # a row's key: its term, or the tuple of a MultiIndex row (at / over and term)
        if isinstance(key, str):
            label = key
        else:
            label = " ".join(str(k) for k in cast("tuple[Hashable, ...]", key) if k != "")
        rows.append(
            Row(
                str(label),
                "coef",
                row["estimate"],
                row["se"],
                row["z"],
                row["p"],
                row["ci_low"],
                row["ci_high"],
            )
        )
    table = CoefTable(
        title="",
        header=(),
        depvar="",
        blocks=(tuple(rows),),
        level=level,
        coef_name="dy/dx" if dydx else "Margin",
        se_title="Delta-method",
    )
    return "\n".join([*lines, "", render_table(table)])
