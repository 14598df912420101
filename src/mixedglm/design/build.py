"""From a formula and a DataFrame to the arrays of a model with one grouping factor.

Steps, each with a clear error in the user's names: check the variables exist and have
usable types; drop rows with a missing value in any model variable (counted and reported);
sort the rows by cluster once (stable, so the original order survives within clusters);
build the fixed-effects matrix (formulaic's columns, see :mod:`mixedglm.design.columns`; the
constant is called ``_cons`` and put last, as Stata does; collinear columns are omitted with a
note); build the random-effects columns; check the outcome against the family.

The data are never copied as a whole: the steps work on the estimation rows' positions
(``rows``) and take each variable's values once, into the arrays the engine reads.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mixedglm.design.arrays import ClusterArrays
from mixedglm.design.checks import Columns, check_matrix, check_offset_options, check_values
from mixedglm.design.collinear import find_collinear_gram
from mixedglm.design.columns import column_plan, readable_name
from mixedglm.design.missing import missing_notes, no_rows_left
from mixedglm.errors import DataError, FormulaError
from mixedglm.families import Family
from mixedglm.families.ordinal import ordinal_outcome
from mixedglm.formula import ParsedFormula, RandomTerm
from mixedglm.formula.idioms import formula_variables
from mixedglm.labels import value_labels

__all__ = ["GroupInfo", "ModelDesign", "build_design", "readable_name"]

_KNOWN_NAMESPACES = {"np", "numpy", "math", "scipy", "C", "I", "Q", "poly", "center", "scale"}


@dataclass(frozen=True)
class GroupInfo:
    """A grouping variable: its name, cluster labels (in code order) and sizes."""

    name: str
    labels: np.ndarray
    sizes: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.sizes.shape[0])

    @property
    def min(self) -> int:
        return int(self.sizes.min())

    @property
    def avg(self) -> float:
        return float(self.sizes.mean())

    @property
    def max(self) -> int:
        return int(self.sizes.max())


@dataclass(frozen=True)
class ModelDesign:
    """Everything the engines need, rows sorted by cluster, plus the names to report.

    Shapes: ``y``, ``trials``, ``offset``, ``group_codes``: ``(N,)``; ``X``: ``(N, p)``;
    ``Z``: ``(N, q)``; ``starts``: ``(G + 1,)``. ``row_index`` holds the original index
    labels of the rows in this order and ``source_positions`` their positions in the data
    given (to put predictions back in the data's order).
    """

    formula: ParsedFormula
    response: str
    y: np.ndarray
    trials: np.ndarray
    offset: np.ndarray
    X: np.ndarray
    x_names: tuple[str, ...]
    Z: np.ndarray
    z_names: tuple[str, ...]
    group: GroupInfo | None
    group_codes: np.ndarray
    starts: np.ndarray
    row_index: pd.Index
    random_terms: tuple[RandomTerm, ...]
    source_positions: np.ndarray | None = None
    omitted: tuple[tuple[str, str], ...] = ()
    all_x_names: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    n_dropped_missing: int = 0
    offset_name: str | None = None
    exposure_name: str | None = None
    trials_name: str | None = None
    fixed_spec: object = field(default=None, repr=False)
    random_specs: tuple = field(default=(), repr=False)
    binomial_trials: bool = False
    categories: tuple = ()  # an ordinal outcome's categories, coded 0.. in y
    value_labels: Mapping = field(default_factory=dict)  # see mixedglm.labels

    @property
    def n_obs(self) -> int:
        return int(self.y.shape[0])

    def cluster_arrays(self) -> ClusterArrays:
        """The arrays of :class:`~mixedglm.design.arrays.ClusterArrays`."""
        return ClusterArrays(
            y=self.y,
            trials=self.trials,
            offset=self.offset,
            X=self.X,
            Z=self.Z,
            starts=self.starts,
        )


def _suggest(name: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=3)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _require_columns(names: list[str], data: pd.DataFrame, where: dict[str, str]) -> None:
    columns = [str(c) for c in data.columns]
    for name in names:
        if name not in data.columns:
            raise DataError(
                f"variable '{name}' not found in the data ({where.get(name, 'formula')})"
                + _suggest(name, columns)
            )


def _formula_variables(expr: str, data: pd.DataFrame, what: str) -> list[str]:
    """Variables a formulaic expression needs, checked against the data (including those
    inside stateful transforms such as ``scale(x)``; see :mod:`mixedglm.formula.idioms`)."""
    return formula_variables(expr, data, what)


def _is_text(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series.dtype)


def _check_text_columns(fixed: str, variables: list[str], data: pd.DataFrame) -> None:
    """A text column that holds numbers is an error (it would silently become categories)."""
    for name in variables:
        col = data[name]
        if not _is_text(col):
            continue
        if re.search(rf"C\(\s*{re.escape(name)}\s*[,)]", fixed):
            continue
        values = col.dropna()
        if len(values) and pd.to_numeric(values, errors="coerce").notna().mean() > 0.9:
            raise DataError(
                f"variable '{name}' is text holding numbers: {non_numbers(col)}; make every "
                f"entry a number or leave it empty (missing), or write C({name}) to use "
                f"'{name}' as categories"
            )


def _numeric_column(data: Columns, name: str, role: str) -> np.ndarray:
    col = data[name]
    if isinstance(col.dtype, pd.CategoricalDtype):
        raise DataError(f"{role} '{name}' is categorical; it must be numeric")
    if _is_text(col):
        raise DataError(f"{role} '{name}' is text; it must be numeric")
    return col.to_numpy(dtype=float)


def _response(data: Columns, name: str) -> tuple[np.ndarray, str | None]:
    """The outcome as floats; a two-category categorical becomes 0/1 (with a note)."""
    col = data[name]
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = list(col.cat.categories)
        if len(cats) != 2:
            raise DataError(
                f"outcome '{name}' is categorical with {len(cats)} categories; "
                "a binary outcome needs two"
            )
        note = f"note: outcome {name} coded 0 = {cats[0]}, 1 = {cats[1]}"
        return col.cat.codes.to_numpy(dtype=float), note
    if col.dtype == bool:
        return col.to_numpy(dtype=float), None
    if _is_text(col):
        raise DataError(f"outcome '{name}' is text ({non_numbers(col)}); it must be numeric")
    return col.to_numpy(dtype=float), None


class _Rows:
    """The estimation rows of the data, one variable at a time (a Series in model order)."""

    def __init__(self, data: pd.DataFrame, rows: np.ndarray) -> None:
        self.data = data
        self.rows = rows

    def __getitem__(self, name: str) -> pd.Series:
        return self.data[name].iloc[self.rows]


def non_numbers(col: pd.Series) -> str:
    """Words for the entries of a text column that are not numbers: how many, which, where."""
    values = col.dropna()
    bad = values[pd.to_numeric(values, errors="coerce").isna()]
    if bad.empty:
        return "every entry is a number written as text"
    shown = ", ".join(repr(str(v)) for v in pd.unique(bad.astype(str))[:3])
    first = bad.index[0]
    return (
        f"{len(bad)} {'entry is not a number' if len(bad) == 1 else 'entries are not numbers'} "
        f"({shown}; first at row {first})"
    )


def _listwise(data: pd.DataFrame, wanted: list[str]) -> tuple[np.ndarray, int, list[str]]:
    """Positions of the rows with no missing value in ``wanted``, the number dropped and
    the note (missing values per variable); an error when nothing is left."""
    counts: dict[str, int] = {}
    missing = np.zeros(len(data), dtype=bool)
    for name in wanted:
        na = data[name].isna().to_numpy()
        counts[name] = int(na.sum())
        if counts[name]:
            missing |= na
    n_dropped = int(missing.sum())
    notes = missing_notes(counts, n_dropped)
    if n_dropped == len(data):
        raise no_rows_left(n_dropped, counts)
    return np.flatnonzero(~missing), n_dropped, notes


def _fixed_matrix(
    formula: ParsedFormula,
    data: pd.DataFrame,
    rows: np.ndarray,
    family: Family,
    in_order: bool,
    collinear: Callable[[np.ndarray], list[int]] | None = None,
) -> tuple[np.ndarray, list[str], list[str], list[tuple[str, str]], list[str], object]:
    """The fixed-effects matrix, constant last and collinear columns omitted.

    Returns ``(X, x_names, all_x_names, omitted, notes, spec)``. The columns are written once,
    in their final order; only an omitted column (or an ordinal model's constant, which
    stands in for the cut points while collinearity is judged) costs a copy.
    """
    plan = column_plan(formula.fixed, data, rows, "fixed part", in_order)
    names = list(plan.names)
    source: list[int | None] = list(range(len(names)))
    if family.is_ordinal and "_cons" not in names:
        # the cut points play the constant's part: keep one (first) while looking for
        # collinear columns, so that a full set of dummies loses a level as with a constant
        names = ["_cons", *names]
        source = [None, *source]
    order = [j for j, n in enumerate(names) if n != "_cons"]
    order += [j for j, n in enumerate(names) if n == "_cons"]  # Stata puts it last
    X = np.empty((rows.shape[0], len(names)))
    plan.fill(X, [source[j] for j in order])
    check_matrix(X, [names[j] for j in order], "fixed part")  # before any arithmetic on it
    stored = np.argsort(order)  # column of X holding formula column j
    if collinear is not None:  # decided by the caller (over all partitions of the data)
        dropped = list(collinear(X[:, stored]))
    else:
        gram = X.T @ X
        dropped = find_collinear_gram(gram[np.ix_(stored, stored)])
    notes = [f"note: {names[j]} omitted because of collinearity" for j in dropped]
    omitted = [(names[j], "collinearity") for j in dropped]
    all_x_names = [names[j] for j in order]
    final = [j for j in order if j not in dropped]
    if family.is_ordinal:  # Stata's ordinal models have no constant: the cut points are it
        final = [j for j in final if names[j] != "_cons"]
        all_x_names = [n for n in all_x_names if n != "_cons"]
        omitted = [o for o in omitted if o[0] != "_cons"]
    if len(final) != len(order):
        X = np.ascontiguousarray(X[:, [int(stored[j]) for j in final]])
    return X, [names[j] for j in final], all_x_names, omitted, notes, plan.spec


def _random_matrix(
    formula: ParsedFormula, data: pd.DataFrame, rows: np.ndarray, in_order: bool
) -> tuple[np.ndarray, list[str], list[object]]:
    """The random-effects columns of every term, side by side."""
    plans = [
        column_plan(term.expr, data, rows, f"random-effect term {term.text}", in_order)
        for term in formula.random
    ]
    Z = np.empty((rows.shape[0], sum(len(plan.names) for plan in plans)))
    first = 0
    for plan in plans:
        width = len(plan.names)
        plan.fill(Z[:, first : first + width], list(range(width)))
        first += width
    names = [name for plan in plans for name in plan.names]
    return Z, names, [plan.spec for plan in plans]


def build_design(
    formula: ParsedFormula,
    data: pd.DataFrame,
    family: Family,
    *,
    offset: str | None = None,
    exposure: str | None = None,
    trials: str | None = None,
    require_group: bool = True,
    collinear: Callable[[np.ndarray], list[int]] | None = None,
    whole: bool = True,
    outcome_categories: tuple | None = None,
) -> ModelDesign:
    """Build the :class:`ModelDesign` of ``formula`` on ``data`` (never modified).

    For one partition of a larger data set (:mod:`mixedglm.scale`): ``collinear`` decides
    which columns to omit (the caller decides globally), ``whole=False`` skips the checks
    that need every cluster (two groups at least, slopes varying within some group) and
    ``outcome_categories`` codes an ordinal outcome by the categories of all the data.
    """
    if formula.response in data.columns:
        response_vars = [formula.response]
    else:
        raise DataError(
            f"outcome '{formula.response}' not found in the data"
            + _suggest(formula.response, [str(c) for c in data.columns])
        )
    groups = formula.groups
    if len(groups) > 1:
        raise FormulaError(
            f"random effects for several grouping variables ({', '.join(groups)}) are not "
            "supported yet: use one grouping variable"
        )
    if require_group and not groups:
        raise FormulaError(
            "the formula has no random-effect term: add one such as (1 | group), "
            "or use a model without random effects"
        )
    where: dict[str, str] = {}
    fixed_vars = _formula_variables(formula.fixed, data, "fixed part")
    random_vars: list[str] = []
    for term in formula.random:
        random_vars += _formula_variables(term.expr, data, f"random-effect term {term.text}")
        where[term.group] = f"grouping variable of {term.text}"
    check_offset_options(offset, exposure)
    extra = {"offset": offset, "exposure": exposure, "trials": trials}
    for role, name in extra.items():
        if name is not None:
            where[name] = f"{role} variable"
    wanted = list(
        dict.fromkeys(
            response_vars
            + fixed_vars
            + random_vars
            + list(groups)
            + [v for v in extra.values() if v is not None]
        )
    )
    _require_columns(wanted, data, where)
    _check_text_columns(formula.fixed, fixed_vars, data)
    for term in formula.random:
        _check_text_columns("", [v for v in random_vars if v in term.expr], data)

    rows, n_dropped, notes = _listwise(data, wanted)
    check_values(_Rows(data, rows), wanted)
    in_order = not n_dropped  # rows are all rows in their order (until sorted by cluster)

    # clusters: sort once, stably
    if groups:
        gname = groups[0]
        codes, labels = pd.factorize(
            data[gname].iloc[rows] if n_dropped else data[gname], sort=True
        )
        codes = codes.astype(np.int64, copy=False)
        if codes.shape[0] > 1 and np.any(codes[1:] < codes[:-1]):
            in_order = False
            order = np.argsort(codes, kind="stable")
            rows = rows[order]
            codes = codes[order]
        sizes = np.bincount(codes)
        if sizes.shape[0] < 2 and whole:
            raise DataError(
                f"grouping variable '{gname}' has a single group in the estimation sample: a "
                "random-effects model needs at least two groups"
            )
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        group = GroupInfo(gname, np.asarray(labels), sizes)
    else:
        codes = np.zeros(rows.shape[0], dtype=np.int64)
        starts = np.array([0, rows.shape[0]], dtype=np.int64)
        group = None
    frame = _Rows(data, rows)
    n_obs = rows.shape[0]

    categories: tuple = ()
    if family.is_ordinal and outcome_categories is not None:
        categories = tuple(outcome_categories)
        y = pd.Index(categories).get_indexer(frame[formula.response]).astype(float)
    elif family.is_ordinal:
        y, categories, outcome_notes = ordinal_outcome(frame[formula.response], formula.response)
        notes += outcome_notes
    else:
        y, response_note = _response(frame, formula.response)
        if response_note:
            notes.append(response_note)
    n_trials = None
    if trials is not None:
        n_trials = _numeric_column(frame, trials, "trials variable")
    family.check_outcome(y, n_trials, formula.response)

    X, x_names, all_x_names, omitted, x_notes, fixed_spec = _fixed_matrix(
        formula, data, rows, family, in_order, collinear
    )
    notes += x_notes
    Z, z_names, random_specs = _random_matrix(formula, data, rows, in_order)
    check_matrix(Z, z_names, "random part")
    if len(set(z_names)) != len(z_names):
        raise FormulaError(
            "a column appears in more than one random-effect term of "
            f"'{groups[0]}': {', '.join(sorted({n for n in z_names if z_names.count(n) > 1}))}"
        )
    for j, name in enumerate(z_names):
        if name == "_cons" or not whole:
            continue
        col = Z[:, j]
        sums = np.add.reduceat(col, starts[:-1])
        means = sums / np.diff(starts)
        within = col - np.repeat(means, np.diff(starts))
        if np.all(np.abs(within) <= 1e-12 * max(1.0, float(np.max(np.abs(col))))):
            raise DataError(
                f"random slope on '{name}' cannot be estimated: '{name}' is constant within "
                f"every group of '{group.name if group else ''}'"
            )

    off = np.zeros(n_obs)
    if offset is not None:
        off = off + _numeric_column(frame, offset, "offset variable")
    if exposure is not None:
        expo = _numeric_column(frame, exposure, "exposure variable")
        if np.any(expo <= 0):
            raise DataError(f"exposure variable '{exposure}' must be positive")
        off = off + np.log(expo)
    n_tr = n_trials if n_trials is not None else np.ones(n_obs)
    return ModelDesign(
        formula=formula,
        response=formula.response,
        y=np.ascontiguousarray(y),
        trials=np.ascontiguousarray(n_tr),
        offset=off,
        X=X,
        x_names=tuple(x_names),
        Z=Z,
        z_names=tuple(z_names),
        group=group,
        group_codes=codes,
        starts=starts,
        row_index=data.index if in_order else data.index[rows],
        source_positions=rows,
        random_terms=formula.random,
        omitted=tuple(omitted),
        all_x_names=tuple(all_x_names),
        notes=tuple(notes),
        n_dropped_missing=n_dropped,
        offset_name=offset,
        exposure_name=exposure,
        trials_name=trials,
        fixed_spec=fixed_spec,
        random_specs=tuple(random_specs),
        binomial_trials=trials is not None,
        categories=categories,
        value_labels=value_labels(data, wanted),
    )
