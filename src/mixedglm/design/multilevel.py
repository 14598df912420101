"""Designs with several grouping factors: ``(1 | a/b)``, ``(1 | a) + (1 | a:b)``, crossed
``(1 | subject) + (1 | item)``.

The fixed part, the outcome, offsets and the family's checks are built by
:func:`mixedglm.design.build.build_design` (on rows already free of missing values); this
module adds one :class:`FactorDesign` per grouping factor (its integer codes, its
random-effect columns and their covariance structure) and classifies the factors as nested
(every level of the finer factor lies in a single level of the coarser one, a chain from the
top factor down) or crossed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np
import pandas as pd
from formulaic import model_matrix
from formulaic.errors import FormulaicError

from mixedglm.design.build import (
    ModelDesign,
    _formula_variables,
    _require_columns,
    build_design,
)
from mixedglm.design.columns import readable_name
from mixedglm.design.missing import listwise, no_rows_left
from mixedglm.engines.covariance import STRUCTURES, CovarianceStructure
from mixedglm.errors import DataError, FormulaError, MixedGLMError
from mixedglm.families import Family
from mixedglm.formula import ParsedFormula, RandomTerm


def _materialize(expr: str, frame: pd.DataFrame, what: str) -> tuple[np.ndarray, list[str], object]:
    """A random-effect term's columns by formulaic: the matrix, readable names, the spec."""
    try:
        mm = model_matrix(expr, frame, na_action="ignore")
    except FormulaicError as err:
        raise FormulaError(f"cannot build the {what} '{expr}': {err}") from err
    names = [readable_name(str(c)) for c in mm.columns]
    return np.ascontiguousarray(np.asarray(mm, dtype=float)), names, mm.model_spec


@dataclass(frozen=True)
class FactorDesign:
    """One grouping factor: ``codes`` ``(N,)`` in ``0..G-1`` (rows in the design's order),
    ``labels`` ``(G,)`` (``a:b`` levels joined by ``:``), its random-effect columns ``Z``
    ``(N, q)`` and their covariance structure."""

    name: str
    codes: np.ndarray
    labels: np.ndarray
    Z: np.ndarray
    structure: CovarianceStructure
    terms: tuple[RandomTerm, ...]
    specs: tuple = field(default=(), repr=False)  # formulaic specs of the terms (predict)

    @property
    def n_levels(self) -> int:
        return int(self.labels.shape[0])

    @property
    def q(self) -> int:
        return self.structure.q

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=self.n_levels)

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names making the factor (``comm:mom`` -> ``(comm, mom)``)."""
        return tuple(self.name.split(":"))


@dataclass(frozen=True)
class MultilevelDesign:
    """A model with several grouping factors (or one interaction factor).

    ``base`` holds the outcome, ``X``, offsets and names (rows in the data's order after
    listwise deletion); ``factors`` the grouping factors in the order of the formula;
    ``nested`` whether they form one chain of nested factors, ``order`` their indices from
    the top (coarsest) factor down when nested; ``display`` the names Stata prints
    (``comm``, ``comm>mom``).
    """

    base: ModelDesign
    factors: tuple[FactorDesign, ...]
    nested: bool
    order: tuple[int, ...]
    display: tuple[str, ...] = field(default=())

    @property
    def n_obs(self) -> int:
        return self.base.n_obs

    @property
    def kind(self) -> str:
        """``nested`` or ``crossed`` (one factor counts as nested)."""
        return "nested" if self.nested else "crossed"

    def factor(self, name: str) -> FactorDesign:
        """The factor called ``name`` (``comm:mom`` or Stata's ``comm>mom``)."""
        for f, shown in zip(self.factors, self.display, strict=True):
            if name in (f.name, shown):
                return f
        raise MixedGLMError(
            f"no grouping factor '{name}': the model has {', '.join(f.name for f in self.factors)}"
        )

    @property
    def top_codes(self) -> np.ndarray:
        """Each row's top-level cluster (all zero for crossed models)."""
        if not self.nested:
            return np.zeros(self.n_obs, dtype=np.int64)
        return self.factors[self.order[0]].codes

    @property
    def n_top(self) -> int:
        return self.factors[self.order[0]].n_levels if self.nested else 1


def _factor_codes(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (sorted by the columns' values) and labels of an interaction."""
    if len(columns) == 1:
        codes, uniques = pd.factorize(frame[columns[0]], sort=True)
        return codes.astype(np.int64), np.asarray(uniques)
    # each column's sorted codes (a missing value one of its own), combined column by
    # column: the combined codes' order is the value tuples' (a MultiIndex's factorize took
    # 1.5 s on a million rows)
    parts = [pd.factorize(frame[c], sort=True, use_na_sentinel=False) for c in columns]
    codes = parts[0][0].astype(np.int64)
    for col_codes, uniques in parts[1:]:
        _, codes = np.unique(codes * len(uniques) + col_codes, return_inverse=True)
    _, rows = np.unique(codes, return_index=True)  # a row of each combination, in order
    values = [np.asarray(uniques)[col_codes[rows]] for col_codes, uniques in parts]
    joined = [":".join(str(v) for v in tup) for tup in zip(*values, strict=True)]
    return codes.astype(np.int64), np.array(joined, dtype=object)


def _structure_for(
    group: str, terms: list[RandomTerm], names: list[str], widths: list[int], cov: object
) -> CovarianceStructure:
    """lme4's reading: one ``(1 + x | g)`` term is unstructured, ``||`` or several terms for
    the same factor independent; ``cov`` (one name, or a dict by factor) overrides."""
    choice = cov.get(group) if isinstance(cov, dict) else cov
    if choice is not None:
        kind = str(choice).lower()
        if kind not in STRUCTURES:
            raise MixedGLMError(
                f"unknown covariance structure '{choice}' for '{group}': use one of "
                f"{', '.join(STRUCTURES)}"
            )
        if kind == "exchangeable" and len(names) < 2:
            raise MixedGLMError(
                f"cov='exchangeable' for '{group}' needs at least two random-effect columns"
            )
        return CovarianceStructure(kind, tuple(names))
    if len(terms) == 1:
        kind = "unstructured" if terms[0].correlated else "independent"
        return CovarianceStructure(kind, tuple(names))
    if all(w == 1 for w in widths) or all(not t.correlated for t in terms):
        return CovarianceStructure("independent", tuple(names))
    raise FormulaError(
        f"several random-effect terms with more than one column for '{group}': write one "
        "term, e.g. (1 + x | g), and choose cov="
    )


def nesting_order(factors: list[FactorDesign]) -> tuple[bool, tuple[int, ...]]:
    """Whether the factors form one nested chain, and their order from the top down.

    Factor ``f`` is nested in ``g`` when every level of ``f`` occurs with one level of ``g``
    only; the chain is checked after sorting the factors by their number of levels.
    """
    order = sorted(range(len(factors)), key=lambda k: (factors[k].n_levels, k))
    for outer, inner in pairwise(order):
        fi, fo = factors[inner], factors[outer]
        first = np.full(fi.n_levels, -1, dtype=np.int64)
        first[fi.codes] = fo.codes
        if np.any(first[fi.codes] != fo.codes):
            return False, tuple(order)
    return True, tuple(order)


def _display_names(factors: list[FactorDesign], nested: bool, order: tuple[int, ...]) -> list[str]:
    """Stata's level names: ``comm``, ``comm>mom`` (the path from the top) when nested."""
    names = [f.name.replace(":", ">") for f in factors]
    if not nested:
        return names
    path: list[str] = []
    for k in order:
        cols = factors[k].columns
        new = [c for c in cols if c not in path]
        path += new
        names[k] = ">".join(path) if len(new) == 1 else names[k]
    return names


def build_multilevel_design(
    formula: ParsedFormula,
    data: pd.DataFrame,
    family: Family,
    *,
    cov: object = None,
    offset: str | None = None,
    exposure: str | None = None,
    trials: str | None = None,
    part: dict | None = None,
) -> MultilevelDesign:
    """The design of a model with several grouping factors (or one interaction factor).

    ``part``: for one partition of a larger data set (:mod:`mixedglm.scale.multilevel`), the
    options passed on to :func:`~mixedglm.design.build.build_design` (``collinear``,
    ``whole``, ``outcome_categories``); the checks that need all the data (two levels per
    factor, random slopes varying within levels) are then the caller's.
    """
    if not formula.random:
        raise FormulaError("the formula has no random-effect term")
    group_cols = list(dict.fromkeys(c for t in formula.random for c in t.factors))
    where = {c: f"grouping variable in {t.text}" for t in formula.random for c in t.factors}
    _require_columns(group_cols, data, where)
    random_vars: list[str] = []
    for term in formula.random:
        random_vars += _formula_variables(term.expr, data, f"random-effect term {term.text}")
    extra = [c for c in group_cols + random_vars if c in data.columns]
    extra = list(dict.fromkeys(extra))
    complete = listwise(data[extra])  # the grouping and random-part variables
    if len(data) and not complete.keep.any():
        counts = {str(k): int(v) for k, v in complete.counts.items()}
        raise no_rows_left(complete.n_dropped, counts)
    notes = complete.notes()
    frame = data.loc[complete.keep]
    fixed_only = replace(formula, random=())
    base = build_design(
        fixed_only,
        frame,
        family,
        offset=offset,
        exposure=exposure,
        trials=trials,
        require_group=False,
        **(part or {}),
    )
    assert base.source_positions is not None  # build_design keeps the rows' positions
    rows = frame.iloc[base.source_positions]
    by_group: dict[str, list[RandomTerm]] = {}
    for term in formula.random:
        by_group.setdefault(term.group, []).append(term)
    factors: list[FactorDesign] = []
    for group, terms in by_group.items():
        codes, labels = _factor_codes(rows, tuple(group.split(":")))
        if labels.shape[0] < 2 and part is None:
            raise DataError(
                f"grouping factor '{group}' has a single level in the estimation sample: a "
                "random effect needs at least two"
            )
        blocks, names, widths, specs = [], [], [], []
        for term in terms:
            Zt, nt, spec = _materialize(term.expr, rows, f"random-effect term {term.text}")
            specs.append(spec)
            blocks.append(Zt)
            names += nt
            widths.append(len(nt))
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise FormulaError(
                f"a column appears in more than one random-effect term of '{group}': "
                + ", ".join(dup)
            )
        Z = np.ascontiguousarray(np.hstack(blocks))
        structure = _structure_for(group, terms, names, widths, cov)
        factors.append(FactorDesign(group, codes, labels, Z, structure, tuple(terms), tuple(specs)))
    if part is None:
        _check_slopes(factors)
    nested, order = nesting_order(factors)
    display = _display_names(factors, nested, order)
    base = replace(
        base,
        notes=tuple(notes) + base.notes,
        random_terms=formula.random,
        source_positions=np.flatnonzero(complete.keep)[base.source_positions],
        formula=formula,
    )
    return MultilevelDesign(base, tuple(factors), nested, order, tuple(display))


def _check_slopes(factors: list[FactorDesign]) -> None:
    """A random slope on a variable constant within every level of its factor is an error."""
    for f in factors:
        sizes = f.sizes
        for j, name in enumerate(f.structure.columns):
            if name == "_cons":
                continue
            col = f.Z[:, j]
            means = np.bincount(f.codes, weights=col, minlength=f.n_levels) / sizes
            within = col - means[f.codes]
            if np.all(np.abs(within) <= 1e-12 * max(1.0, float(np.max(np.abs(col))))):
                raise DataError(
                    f"random slope on '{name}' cannot be estimated: '{name}' is constant "
                    f"within every level of '{f.name}'"
                )
