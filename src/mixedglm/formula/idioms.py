"""lme4 formula idioms that formulaic does not handle by itself.

* **Variables inside transforms.** formulaic reports no required variables for its
  stateful transforms (``scale(x)``, ``center(x)``, ``poly(x, 2)``, ``bs(x, df=3)``...), so
  the column would never reach the model frame and listwise deletion would not see it.
  :func:`formula_variables` reads every factor of the formula with Python's ``ast`` and
  collects the names that are not functions.
* **``cbind(successes, failures) ~ ...``**: a binomial outcome, the successes out of
  ``successes + failures`` trials (lme4's ``glmer``).
* **``offset(expr)``** in the formula: the same as ``offset=`` with the column ``expr``
  (``offset(log(t))``; ``log``, ``exp``, ``sqrt`` and ``np.*`` may be used). Several offsets
  add up.

A derived column (the trials, an offset expression) is named by the expression that makes it
(``succ + fail``, ``log(t)``), so that predictions on new data can evaluate it again there
(:func:`derived_column`).
"""

from __future__ import annotations

import ast
import builtins
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from formulaic import Formula
from formulaic.errors import FormulaicError

from mixedglm.errors import DataError, FormulaError
from mixedglm.formula.parse import ParsedFormula, _split_top_level

#: Functions an ``offset()`` expression may call, as R users write them.
_FUNCTIONS = {
    "log": np.log,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "log1p": np.log1p,
    "abs": np.abs,
    "np": np,
    "numpy": np,
}
# names a formula may use that are not data columns (formulaic's transforms and modules)
_NOT_VARIABLES = set(_FUNCTIONS) | {"C", "I", "Q", "math", "scipy", "contr", "pi", "e"}
_CBIND = re.compile(r"^cbind\s*\((?P<inner>.*)\)$", re.DOTALL)
_OFFSET = re.compile(r"^offset\s*\((?P<inner>.*)\)$", re.DOTALL)


def _suggest(name: str, columns: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, [str(c) for c in columns], n=3)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def expression_names(expr: str) -> list[str]:
    """Names a Python expression reads as values: not called functions, not the module of
    an attribute (``np`` in ``np.log(x)``), not keyword names."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as err:
        raise FormulaError(f"cannot parse '{expr}': {err.msg}") from err
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            while isinstance(func, ast.Attribute):
                func = func.value
            skip.add(id(func))
        elif isinstance(node, ast.Attribute):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            skip.add(id(base))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and id(node) not in skip and node.id not in names:
            names.append(node.id)
    return names


def _factor_names(factor) -> list[str]:
    method = str(getattr(getattr(factor, "eval_method", None), "value", "")).lower()
    expr = str(getattr(factor, "expr", factor))
    if method == "lookup":
        return [expr]
    if method == "python":
        return expression_names(expr)
    return []  # literals


def formula_variables(expr: str, data: pd.DataFrame, what: str) -> list[str]:
    """The data columns a formulaic expression needs (sorted), including those inside
    stateful transforms; a name that is neither a column nor a known function is an error
    naming it."""
    try:
        formula = Formula(expr)
        required = {str(v) for v in formula.required_variables}
        for term in formula:
            for factor in term.factors:
                required.update(_factor_names(factor))
    except FormulaicError as err:
        raise FormulaError(f"cannot parse the {what} '{expr}': {err}") from err
    out = []
    for name in sorted(required):
        if name in data.columns:
            out.append(name)
        elif name not in _NOT_VARIABLES and not hasattr(builtins, name):
            raise DataError(
                f"variable '{name}' not found in the data ({what} '{expr}')"
                + _suggest(name, data.columns)
            )
    return out


def evaluate(expr: str, data: pd.DataFrame, role: str) -> np.ndarray:
    """Evaluate ``expr`` (an offset or trials expression) on ``data``, as floats."""
    names = expression_names(expr)
    for name in names:
        if name not in data.columns and name not in _FUNCTIONS:
            raise DataError(
                f"variable '{name}' of the {role} '{expr}' not found in the data"
                + _suggest(name, data.columns)
            )
    scope = {name: data[name].to_numpy(dtype=float) for name in names if name in data.columns}
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            value = eval(  # the user's own formula, restricted to columns and math functions
                compile(ast.parse(expr.strip(), mode="eval"), "<formula>", "eval"),
                {"__builtins__": {}, **_FUNCTIONS},
                scope,
            )
    except Exception as err:
        raise FormulaError(f"cannot evaluate the {role} '{expr}': {err}") from err
    values = np.broadcast_to(np.asarray(value, dtype=float), (len(data),)).copy()
    values[~np.isfinite(values)] = np.nan  # log(0), log(-1): missing, dropped listwise
    return values


def derived_column(data: pd.DataFrame, name: str, role: str) -> np.ndarray:
    """Column ``name`` of ``data``, or, when ``name`` is an expression made by
    :func:`apply_idioms` (``log(t)``), its value computed on ``data``."""
    if name in data.columns:
        return data[name].to_numpy(dtype=float)
    if name.isidentifier():
        raise DataError(f"the new data lack the {role} variable '{name}'")
    try:
        expression_names(name)
    except FormulaError:
        raise DataError(f"the new data lack the {role} variable '{name}'") from None
    return evaluate(name, data, role)


@dataclass(frozen=True)
class Idioms:
    """The formula and data after the idioms were turned into options."""

    formula: ParsedFormula
    data: pd.DataFrame
    offset: str | None
    trials: str | None


def _split_arguments(inner: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in inner:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return parts


def apply_idioms(
    formula: ParsedFormula,
    data: pd.DataFrame,
    *,
    offset: str | None = None,
    trials: str | None = None,
    allow_cbind: bool = True,
) -> Idioms:
    """Turn ``cbind(s, f)`` into the outcome ``s`` with trials ``s + f`` and ``offset(...)``
    terms into an offset column (summed with ``offset=``); ``data`` is not modified (a
    shallow copy gets the new columns)."""
    new_columns: dict[str, np.ndarray] = {}
    response = formula.response
    match = _CBIND.match(response.strip())
    if match:
        args = _split_arguments(match.group("inner"))
        if len(args) != 2 or not all(args):
            raise FormulaError(
                f"cbind() takes two columns, the successes and the failures: '{response}'"
            )
        if not allow_cbind:
            raise FormulaError(f"cbind(successes, failures) is for binomial models: '{response}'")
        if trials is not None:
            raise FormulaError("give the trials either by cbind(successes, failures) or trials=")
        succ, fail = (a if a.isidentifier() else f"({a})" for a in args)
        if succ not in data.columns:  # an expression: a new column named by it
            new_columns[succ] = evaluate(succ, data, "cbind() successes")
        response, trials = succ, f"{succ} + {fail}"
        new_columns[trials] = evaluate(trials, data, "cbind() trials")
    fixed_terms, offsets = [], []
    for raw in _split_top_level(formula.fixed):
        term = raw.strip()
        found = _OFFSET.match(term)
        if found:
            offsets.append(found.group("inner").strip())
        elif term:
            fixed_terms.append(term)
    if offsets:
        if offset is not None:
            offsets.append(offset)
        offset = " + ".join(offsets)
        if offset not in data.columns:
            new_columns[offset] = evaluate(offset, data, "offset")
    if not new_columns and response == formula.response and not offsets:
        return Idioms(formula, data, offset, trials)
    fixed = " + ".join(fixed_terms).replace("+ -", "-") if fixed_terms else "1"
    if fixed_terms and all(t.startswith("-") for t in fixed_terms):
        fixed = "1 " + fixed
    parsed = replace(formula, response=response, fixed=fixed)
    frame = data.assign(**new_columns) if new_columns else data
    return Idioms(parsed, frame, offset, trials)
