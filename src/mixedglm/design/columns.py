"""The columns of a formula's model matrix, filled straight into the engine's arrays.

formulaic decides what the columns are: their names, the levels of each factor and which
level is the base. For a large data set, letting it also build the matrix costs a second
and several copies of the data (a DataFrame of dummies, a float copy, a reordering), so for
the common terms we use formulaic only on a *probe*: the few rows that hold every level of
every categorical variable, which gives the same :class:`~formulaic.ModelSpec` as the whole
data. The values are then taken from the data's columns, row block by row block, into the
final array in the order the model wants.

Fast terms: the constant, a numeric variable by name, and a single factor (``C(x)`` or a
text/categorical variable by name) with formulaic's default treatment coding. Anything else
(interactions, transforms such as ``center(x)`` or ``np.log(x)``, other contrasts) is built
by formulaic on the estimation rows, as before; the result is the same either way (tested).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from formulaic import Formula, ModelSpec, model_matrix
from formulaic.errors import FormulaicError
from formulaic.transforms.contrasts import TreatmentContrasts
from formulaic.utils.sentinels import UNSET

from mixedglm.design.arrays import BLOCK_ROWS
from mixedglm.errors import FormulaError
from mixedglm.formula.idioms import formula_variables

_LEVEL = re.compile(r"\[T\.(.*)\]")
_CALL_C = re.compile(r"^C\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$")
_CALL_C_ANYWHERE = re.compile(r"\bC\(\s*([A-Za-z_][A-Za-z0-9_]*)")

Filler = Callable[[np.ndarray, int, int], None]


def readable_name(name: str) -> str:
    """formulaic's column name made readable: ``C(f)[T.1]`` -> ``C(f)[1]``."""
    if name == "Intercept":
        return "_cons"
    return _LEVEL.sub(lambda m: f"[{m.group(1)}]", name)


@dataclass(frozen=True)
class ColumnPlan:
    """The columns of one formula part on the estimation rows, not yet materialised.

    ``names`` are readable column names in formulaic's order, ``spec`` formulaic's model
    spec (for predictions on new data), ``fillers[j](out, lo, hi)`` writes column ``j`` of
    estimation rows ``lo:hi`` into the vector ``out``. ``fast`` says whether formulaic was
    run only on the probe rows.
    """

    names: tuple[str, ...]
    spec: ModelSpec
    fillers: tuple[Filler, ...]
    fast: bool

    def fill(self, out: np.ndarray, columns: list[int | None]) -> None:
        """Write the plan's ``columns`` into the columns of ``out`` (``None``: a constant)."""
        fillers = [_constant_filler if j is None else self.fillers[j] for j in columns]
        n = out.shape[0]
        for lo in range(0, n, BLOCK_ROWS):
            hi = min(n, lo + BLOCK_ROWS)
            for k, fill in enumerate(fillers):
                fill(out[lo:hi, k], lo, hi)


@lru_cache(maxsize=256)
def parsed_formula(expr: str) -> Formula:
    """formulaic's parse of ``expr`` (kept: parsing costs more than a small model matrix)."""
    return Formula(expr)


@lru_cache(maxsize=64)
def _constant_spec(expr: str) -> ModelSpec:
    """The spec of a part without variables, such as a random intercept's ``1``."""
    return model_matrix(
        parsed_formula(expr), pd.DataFrame(index=[0]), na_action="ignore"
    ).model_spec


def _spec_of(expr: str, frame: pd.DataFrame, what: str) -> tuple[ModelSpec, pd.DataFrame]:
    try:
        mm = model_matrix(parsed_formula(expr), frame, na_action="ignore")
    except FormulaicError as err:
        raise FormulaError(f"cannot build the {what} '{expr}': {err}") from err
    return mm.model_spec, mm


def _is_plain_number(series: pd.Series) -> bool:
    kind = getattr(series.dtype, "kind", "O")
    return isinstance(series.dtype, np.dtype) and kind in "fiub"


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each code of ``pd.factorize`` (codes appear in
    increasing order of first occurrence)."""
    running = np.maximum.accumulate(codes)
    return np.flatnonzero(np.diff(running, prepend=-1) > 0)


def _compact(codes: np.ndarray, n_values: int) -> np.ndarray:
    """Codes (``-1`` for missing) in the smallest signed integer type that holds them."""
    for dtype in (np.int8, np.int16, np.int32):
        if n_values <= np.iinfo(dtype).max:
            return codes.astype(dtype, copy=False)
    return codes


def _factor_codes(series: pd.Series, rows: np.ndarray | None) -> tuple[np.ndarray, list]:
    """Codes of the estimation rows (``rows`` of ``series``; None: all, in order) and the
    values they code."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        uniques = list(series.cat.categories)
        return _compact(codes if rows is None else codes[rows], len(uniques)), uniques
    values = series.to_numpy()
    codes, found = pd.factorize(values if rows is None else values[rows])
    return _compact(codes, len(found)), list(found)


def _probe_rows(variables: list[str], data: pd.DataFrame, rows: np.ndarray | None, expr: str):
    """Estimation-row positions holding every level of every variable that may be
    categorical, and those variables' codes (reused to fill the dummy columns)."""
    called = set(_CALL_C_ANYWHERE.findall(expr))
    positions = [np.zeros(1, dtype=np.int64)]
    codes: dict[str, tuple[np.ndarray, list]] = {}
    for name in variables:
        series = data[name]
        if _is_plain_number(series) and name not in called:
            continue
        codes[name] = _factor_codes(series, rows)
        positions.append(_first_rows(codes[name][0]))
    return np.unique(np.concatenate(positions)), codes


def _numeric_filler(values: np.ndarray, rows: np.ndarray | None) -> Filler:
    def fill(out: np.ndarray, lo: int, hi: int) -> None:
        out[:] = values[lo:hi] if rows is None else values[rows[lo:hi]]

    return fill


def _constant_filler(out: np.ndarray, lo: int, hi: int) -> None:
    out[:] = 1.0


def _dummy_filler(level_codes: np.ndarray, level: int) -> Filler:
    def fill(out: np.ndarray, lo: int, hi: int) -> None:
        out[:] = level_codes[lo:hi] == level

    return fill


def _fast_fillers(
    spec: ModelSpec, data: pd.DataFrame, rows: np.ndarray | None, codes: dict
) -> list[Filler] | None:
    """One filler per column of ``spec``, or None when a term needs formulaic itself."""
    if spec.transform_state:
        return None
    fillers: list[Filler] = []
    for structure in spec.structure:
        factors = list(structure.term.factors)
        if len(factors) != 1 or len(structure.scoped_terms) != 1:
            return None
        factor = factors[0]
        expr = str(factor.expr)
        method = factor.eval_method.value
        if method == "literal" and expr == "1":
            fillers += [_constant_filler] * len(structure.columns)
            continue
        kind, state = spec.encoder_state.get(expr, (None, None))
        if kind is None:
            return None
        match = _CALL_C.match(expr)
        name = match.group(1) if match and method == "python" else expr
        if method not in ("lookup", "python") or name not in data.columns:
            return None
        if method == "python" and not match:
            return None
        if kind.value == "numerical":
            if not _is_plain_number(data[name]) or len(structure.columns) != 1:
                return None
            fillers.append(_numeric_filler(data[name].to_numpy(), rows))
            continue
        if kind.value != "categorical" or name not in codes:
            return None
        contrasts = state.get("contrasts")
        treatment = getattr(contrasts, "contrasts", None)
        if (
            treatment is None
            or type(treatment) is not TreatmentContrasts
            or treatment.base is not UNSET
        ):
            return None
        levels = list(state["categories"])
        scoped = str(structure.scoped_terms[0])
        used = levels[1:] if scoped == expr + "-" else levels if scoped == expr else None
        if used is None or len(used) != len(structure.columns):
            return None
        row_codes, values = codes[name]
        position = {level: j for j, level in enumerate(levels)}
        lut = _compact(np.array([position.get(v, -1) for v in values] + [-1]), len(levels))
        level_codes = lut[row_codes]  # code -1 (missing) maps to the trailing -1
        if np.any(level_codes < 0):
            return None
        first = len(levels) - len(used)
        fillers += [_dummy_filler(level_codes, j) for j in range(first, len(levels))]
    return fillers


def column_plan(
    expr: str, data: pd.DataFrame, rows: np.ndarray, what: str, in_order: bool | None = None
) -> ColumnPlan:
    """The :class:`ColumnPlan` of formula part ``expr`` on rows ``rows`` of ``data``.

    ``rows`` are positions in ``data`` (complete cases, in the model's row order);
    ``in_order`` says whether they are all rows in their order (None: find out).
    """
    variables = formula_variables(expr, data, what)  # also those inside scale(x), poly(x, 2)
    # the estimation rows are often all rows in their order: then no take is needed
    if in_order is None:
        in_order = rows.shape[0] == len(data) and bool(np.all(np.diff(rows) == 1))
    take = None if in_order else rows
    if variables:
        probe, codes = _probe_rows(variables, data, take, expr)
        spec, _ = _spec_of(expr, data.iloc[rows[probe]][variables], what)
    else:
        try:
            spec, codes = _constant_spec(expr), {}
        except FormulaicError as err:
            raise FormulaError(f"cannot build the {what} '{expr}': {err}") from err
    fillers = _fast_fillers(spec, data, take, codes)
    if fillers is not None:
        names = tuple(readable_name(str(c)) for c in spec.column_names)
        return ColumnPlan(names, spec, tuple(fillers), fast=True)
    spec, mm = _spec_of(expr, data.iloc[rows][variables], what)
    matrix = np.asarray(mm, dtype=float)
    names = tuple(readable_name(str(c)) for c in mm.columns)

    def column(j: int) -> Filler:
        def fill(out: np.ndarray, lo: int, hi: int) -> None:
            out[:] = matrix[lo:hi, j]

        return fill

    return ColumnPlan(names, spec, tuple(column(j) for j in range(len(names))), fast=False)
