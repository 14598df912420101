"""lme4-style model formulas: ``y ~ x1 + C(f) + (1 + x | g) + (1 | h)``.

The right-hand side is split at top-level ``+`` signs into fixed terms (handed to formulaic
as they are) and random-effect terms in parentheses with ``|`` (correlated effects) or
``||`` (independent effects). Parse errors say where the formula went wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mixedglm.errors import FormulaError

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class RandomTerm:
    """One ``(expr | group)`` or ``(expr || group)`` term."""

    text: str
    expr: str
    group: str
    correlated: bool

    @property
    def factors(self) -> tuple[str, ...]:
        """The columns whose interaction is the grouping factor (``a:b`` -> ``(a, b)``)."""
        return tuple(self.group.split(":"))

    @property
    def is_compound(self) -> bool:
        """Whether the grouping factor is an interaction of several columns."""
        return ":" in self.group


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into its response, fixed part and random-effect terms."""

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]

    @property
    def groups(self) -> tuple[str, ...]:
        """Grouping variables in order of appearance, without repeats."""
        seen: list[str] = []
        for term in self.random:
            if term.group not in seen:
                seen.append(term.group)
        return tuple(seen)


def _where(text: str, pos: int) -> str:
    return f"{text}\n{' ' * pos}^"


def _check_parentheses(text: str) -> None:
    depth = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(
                    f"the formula has a ')' without a matching '(' at position {i + 1}:\n"
                    + _where(text, i)
                )
    if depth > 0:
        pos = text.rfind("(")
        raise FormulaError(
            f"the formula has a '(' that is never closed (position {pos + 1}):\n"
            + _where(text, pos)
        )


def _split_top_level(rhs: str) -> list[str]:
    """Split at top-level ``+``; a top-level ``-`` starts a new (negative) term."""
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in rhs:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if depth == 0 and ch in "+-":
            parts.append(current)
            current = "-" if ch == "-" else ""
            continue
        current += ch
    parts.append(current)
    return parts


def _parse_random(term: str, text: str) -> list[RandomTerm]:
    inner = term.strip()[1:-1]
    depth = 0
    bar = -1
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            bar = i
            break
    correlated = not inner[bar + 1 : bar + 2] == "|"
    expr = inner[:bar].strip()
    group = inner[bar + (1 if correlated else 2) :].strip()
    pos = text.find(term.strip())
    if not expr:
        raise FormulaError(
            f"random-effect term '{term.strip()}' has nothing before '|': "
            "write (1 | group) for a random intercept:\n" + _where(text, max(pos, 0))
        )
    if not group:
        raise FormulaError(
            f"random-effect term '{term.strip()}' names no grouping variable after '|':\n"
            + _where(text, max(pos, 0))
        )
    return _expand_group(term.strip(), expr, group, correlated)


def _expand_group(term: str, expr: str, group: str, correlated: bool) -> list[RandomTerm]:
    """``a/b/c`` -> the terms of ``a``, ``a:b`` and ``a:b:c`` (lme4's nesting operator);
    ``a:b`` -> one term whose grouping factor is the interaction of ``a`` and ``b``."""
    spaced = "".join(group.split())
    levels = spaced.split("/")
    names = [name for level in levels for name in level.split(":")]
    for name in names:
        if not _NAME.match(name):
            raise FormulaError(
                f"random-effect term '{term}': '{name or group}' is not a column name; a "
                "grouping factor is a column, an interaction a:b, or a nesting a/b"
            )
    if len(set(names)) != len(names):
        raise FormulaError(f"random-effect term '{term}' names a column twice in '{group}'")
    bar = "|" if correlated else "||"
    if len(levels) == 1:
        return [RandomTerm(text=term, expr=expr, group=spaced, correlated=correlated)]
    out = []
    for depth in range(1, len(levels) + 1):
        grp = ":".join(levels[:depth])
        out.append(RandomTerm(f"({expr} {bar} {grp})", expr, grp, correlated))
    return out


def parse_formula(text: str) -> ParsedFormula:
    """Parse an lme4-style formula; raise :class:`FormulaError` saying where it fails."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("the formula is empty: write it as 'y ~ x1 + x2 + (1 | group)'")
    text = " ".join(text.split())
    _check_parentheses(text)
    if text.count("~") != 1:
        where = text.find("~", text.find("~") + 1) if text.count("~") > 1 else len(text)
        raise FormulaError(
            "the formula needs exactly one '~' between the outcome and the covariates "
            "(as in 'y ~ x1 + x2'):\n" + _where(text, where)
        )
    lhs, rhs = (part.strip() for part in text.split("~"))
    if not lhs:
        raise FormulaError("the formula has no outcome before '~':\n" + _where(text, 0))
    if not rhs:
        raise FormulaError(
            "the formula has nothing after '~' (write '1' for a constant only):\n"
            + _where(text, len(text))
        )
    fixed_terms: list[str] = []
    random_terms: list[RandomTerm] = []
    for raw in _split_top_level(rhs):
        term = raw.strip()
        if term in ("", "-"):
            pos = text.find("~") + 1 + rhs.find(raw) if raw else len(text)
            raise FormulaError(
                "the formula has an operator without a term beside it:\n"
                + _where(text, min(pos, len(text)))
            )
        if term.startswith("(") and term.endswith(")") and "|" in term:
            random_terms.extend(_parse_random(term, text))
        else:
            fixed_terms.append(term)
    fixed = " + ".join(fixed_terms).replace("+ -", "-") if fixed_terms else "1"
    return ParsedFormula(text=text, response=lhs, fixed=fixed, random=tuple(random_terms))
