"""Wald tests of linear hypotheses on coefficients: Stata's ``test``.

``wald_hypotheses(params, cov, ["x1 = x2", "x3 = 0"])`` builds the restrictions ``R b = r``
from the text (sums of coefficient names times numbers, on either side of ``=``; a
hypothesis without ``=`` means ``= 0``, as ``test x3``), and returns
``(R b - r)' (R V R')^-1 (R b - r)`` on ``rank(R V R')`` degrees of freedom. A list of names
tests them all zero.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mixedglm.errors import MixedGLMError

__all__ = ["WaldTest", "parse_hypothesis", "wald_hypotheses"]

_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z0-9_.]")


@dataclass(frozen=True)
class WaldTest:
    """``stat`` (chi2), ``df``, ``p`` and the constraints as Stata echoes them."""

    stat: float
    df: int
    p: float
    constraints: tuple[str, ...]
    dropped: tuple[int, ...] = ()

    def __str__(self) -> str:
        lines = [f" ({k + 1:>2})  {text}" for k, text in enumerate(self.constraints)]
        lines += [f"       Constraint {k} dropped" for k in self.dropped]
        lines += [
            "",
            f"{'chi2(':>16}{self.df:>3}) ={self.stat:>8.2f}",
            f"{'Prob > chi2 =':>22}{self.p:>10.4f}",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def to_dict(self) -> dict:
        return {
            "chi2": self.stat,
            "df": self.df,
            "p": self.p,
            "constraints": list(self.constraints),
        }


def _match_name(text: str, i: int, names: Sequence[str]) -> tuple[str, int] | None:
    """The longest coefficient name at ``text[i:]`` (also as ``_b[name]``)."""
    for name in names:
        wrapped = f"_b[{name}]"
        if text.startswith(wrapped, i):
            return name, i + len(wrapped)
    for name in names:
        end = i + len(name)
        if text.startswith(name, i) and not (end < len(text) and _IDENT.match(text[end])):
            return name, end
    return None


def _parse_side(text: str, names: Sequence[str], whole: str) -> tuple[dict[str, float], float]:
    """``"2*x1 - x2 + 3"`` -> ``({x1: 2, x2: -1}, 3)``."""
    coefs: dict[str, float] = {}
    const = 0.0
    i, n = 0, len(text)

    def skip(j: int) -> int:
        while j < n and text[j].isspace():
            j += 1
        return j

    i = skip(i)
    if i >= n:
        raise MixedGLMError(f"hypothesis '{whole}' has an empty side")
    while i < n:
        sign = 1.0
        while i < n and text[i] in "+-":
            sign = -sign if text[i] == "-" else sign
            i = skip(i + 1)
        factor, name = sign, None
        while True:
            found = _match_name(text, i, names)
            if found is not None:
                if name is not None:
                    raise MixedGLMError(f"hypothesis '{whole}' is not linear (a product of terms)")
                name, i = found
            else:
                number = _NUMBER.match(text, i)
                if number is None:
                    rest = re.match(r"[^\s+\-*=]+", text[i:])
                    token = rest.group(0) if rest else text[i:]
                    raise MixedGLMError(
                        f"'{token}' in hypothesis '{whole}' is not a coefficient of the model "
                        f"(coefficients: {', '.join(sorted(names, key=str))})"
                    )
                factor *= float(number.group(0))
                i = number.end()
            i = skip(i)
            if i < n and text[i] == "*":
                i = skip(i + 1)
                continue
            break
        if name is None:
            const += factor
        else:
            coefs[name] = coefs.get(name, 0.0) + factor
        if i < n and text[i] not in "+-":
            raise MixedGLMError(f"cannot read hypothesis '{whole}' at '{text[i:]}'")
    return coefs, const


def parse_hypothesis(text: str, names: Sequence[str]) -> tuple[dict[str, float], float]:
    """One hypothesis -> ``({name: weight}, r)`` meaning ``sum weight * b_name = r``."""
    ordered = sorted(names, key=len, reverse=True)
    parts = text.split("=")
    if len(parts) > 2:
        raise MixedGLMError(f"hypothesis '{text}' has more than one '='")
    left, lc = _parse_side(parts[0], ordered, text)
    right, rc = _parse_side(parts[1], ordered, text) if len(parts) == 2 else ({}, 0.0)
    coefs = dict(left)
    for name, w in right.items():
        coefs[name] = coefs.get(name, 0.0) - w
    coefs = {k: v for k, v in coefs.items() if v != 0}
    if not coefs:
        raise MixedGLMError(f"hypothesis '{text}' involves no coefficient")
    return coefs, rc - lc


def _echo(coefs: dict[str, float], r: float, names: Sequence[str], eq: str | None) -> str:
    out = ""
    for name in sorted(coefs, key=list(names).index):
        w = coefs[name]
        label = f"[{eq}]{name}" if eq else name
        mag = abs(w)
        term = label if mag == 1 else f"{mag:g}*{label}"
        if not out:
            out = term if w > 0 else f"- {term}"
        else:
            out += f" {'+' if w > 0 else '-'} {term}"
    return f"{out} = {r:g}"


def wald_hypotheses(
    params: pd.Series,
    cov: pd.DataFrame,
    hypotheses: Sequence[str | Sequence[str]],
    equation: str | None = None,
) -> WaldTest:
    """The joint Wald test of ``hypotheses`` (strings, or lists of names meaning each = 0)."""
    items: list[str] = []
    for h in hypotheses:
        if isinstance(h, str):
            items.append(h)
        else:
            items += [str(name) for name in h]
    if not items:
        raise MixedGLMError("test() needs at least one hypothesis, e.g. 'x1 = x2' or ['x1']")
    names = [str(n) for n in params.index]
    rows = [parse_hypothesis(text, names) for text in items]
    R = np.zeros((len(rows), len(names)))
    r = np.zeros(len(rows))
    for k, (coefs, rhs) in enumerate(rows):
        for name, w in coefs.items():
            R[k, names.index(name)] = w
        r[k] = rhs
    V = cov.to_numpy()
    if np.any(~np.isfinite(V[np.ix_(np.any(R != 0, 0), np.any(R != 0, 0))])):
        raise MixedGLMError("a tested coefficient has no standard error")
    diff = R @ params.to_numpy() - r
    middle = R @ V @ R.T
    # drop constraints that are linear combinations of earlier ones (as Stata)
    keep: list[int] = []
    for k in range(len(rows)):
        trial = [*keep, k]
        sub = middle[np.ix_(trial, trial)]
        if np.linalg.matrix_rank(sub, tol=1e-12 * max(1.0, np.abs(sub).max())) == len(trial):
            keep.append(k)
    dropped = tuple(k + 1 for k in range(len(rows)) if k not in keep)
    sub = middle[np.ix_(keep, keep)]
    stat = float(diff[keep] @ np.linalg.solve(sub, diff[keep]))
    df = len(keep)
    echoes = tuple(_echo(c, rhs, names, equation) for c, rhs in rows)
    return WaldTest(stat, df, float(stats.chi2.sf(stat, df)), echoes, dropped)
