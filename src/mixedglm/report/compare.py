"""Several fitted models side by side: :func:`compare`.

Every column is built from a results document, the dictionary a result's ``to_dict()``
returns and ``--json`` writes (the schema of the README): a fitted model and its JSON file
give the same column, whatever its kind (GLMM, conditional fixed effects, hybrid). An
object without ``to_dict()`` is tabulated from ``params``, ``bse``, ``pvalues``,
``loglik`` and ``nobs`` (the least a column needs); one with ``compact_column(title)``
provides its column itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence

from scipy import stats as sps

from mixedglm.errors import MixedGLMError
from mixedglm.report.compact import (
    DEFAULT_STATS,
    Cell,
    CompactColumn,
    CompactTable,
    Equation,
)

__all__ = ["column_from_dict", "compare", "document_of"]

_REQUIRED = ("params", "bse", "pvalues", "loglik", "nobs")
_COMPONENT_TERM = re.compile(r"([^\s(),\[\]]+)\[")


def _num(value) -> float:
    return math.nan if value is None else float(value)


def _var_label(name: str, group: str, response: str) -> str:
    """``var(_cons)`` -> ``var(_cons[id])``; ``cov(x,_cons)`` -> ``cov(x[id],_cons[id])``;
    ``var(e)`` -> ``var(e.y)``: meglm's equation names."""
    if name in ("var(e)", "sd(e)"):
        return name.replace("(e)", f"(e.{response})")
    head, _, inner = name.partition("(")
    inner = inner.rstrip(")")
    parts = []
    for chunk in inner.split(","):
        parts.append(" ".join(f"{v}[{group}]" for v in chunk.split()))
    return f"{head}({','.join(parts)})"


def _component_p(estimate: float, se: float) -> float:
    """The p-value Stata's ``estimates table`` shows for any parameter: two-sided normal."""
    if not (se > 0 and math.isfinite(se)):
        return math.nan
    return float(2 * sps.norm.sf(abs(estimate / se)))


def document_of(obj) -> Mapping:
    """The results document of ``obj``: its ``to_dict()``, or for a foreign object the
    fields a column needs, read from ``params``, ``bse``, ``pvalues``, ``loglik``, ``nobs``
    (and ``response`` when it has one)."""
    if isinstance(obj, Mapping):
        return obj
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    for attr in _REQUIRED:
        if not hasattr(obj, attr):
            raise MixedGLMError(
                f"cannot tabulate a {type(obj).__name__}: it has no '{attr}' (compare() needs "
                "params, bse, pvalues, loglik and nobs, or a to_dict() results document)"
            )
    coef = [
        {"term": name, "estimate": float(obj.params[name]), "se": float(obj.bse[name]),
         "p": float(obj.pvalues[name])}
        for name in obj.params.index
    ]  # fmt: skip
    depvar = str(getattr(obj, "response", "") or "")
    return {"depvar": depvar, "coef": coef, "loglik": float(obj.loglik), "nobs": obj.nobs}


def _coefficient_cell(record: Mapping, eform: bool) -> Cell:
    """A ``coef`` record as a cell on the coefficient scale: a document written with
    ``eform`` holds ``exp(b)`` and ``exp(b) se``, which are turned back into ``b`` and ``se``
    (Stata's ``estimates table`` shows coefficients unless asked otherwise)."""
    est, se, p = _num(record.get("estimate")), _num(record.get("se")), _num(record.get("p"))
    if eform and est > 0:
        est, se = math.log(est), se / est
    return Cell(est, se, p)


def _model_test(doc: Mapping) -> tuple[float, float, float]:
    """``(chi2, df, p)`` of the header's model test: ``chi2`` (conditional models' LR or
    Wald), else ``wald`` (mixed models)."""
    test = doc.get("chi2") or doc.get("wald") or {}
    if not isinstance(test, Mapping):
        return _num(test), math.nan, math.nan
    return _num(test.get("chi2", test.get("stat"))), _num(test.get("df")), _num(test.get("p"))


def column_from_dict(doc: Mapping, title: str = "model") -> CompactColumn:
    """A column from a results document: its ``coef`` records (in the order of ``terms``
    when present, omitted ones marked), ``random`` components and statistics (``nobs``,
    ``groups``, ``loglik``, ``loglik_0``, the model test, ``aic``, ``bic``, ``n_params``)."""
    if "coef" not in doc:
        raise MixedGLMError(f"the results document of '{title}' has no 'coef' entries")
    response = str(doc.get("depvar") or doc.get("response") or "")
    eform = bool(doc.get("eform"))
    cells = {r["term"]: _coefficient_cell(r, eform) for r in doc["coef"]}
    omitted = [r["term"] if isinstance(r, Mapping) else r for r in doc.get("omitted") or []]
    names = list(doc.get("terms") or [*cells, *(n for n in omitted if n not in cells)])
    rows = tuple(
        (name, cells.get(name, Cell(math.nan, omitted=True)))
        for name in names
        if name in cells or name in omitted
    )
    equations = [Equation(response, rows, main=True)]
    groups = doc.get("groups") or {}
    group = next(iter(groups), "")
    for r in doc.get("random", []) or []:
        est, se_ = _num(r.get("estimate")), _num(r.get("se"))
        label = _var_label(r["name"], r.get("group") or group, response)
        equations.append(Equation(label, (("_cons", Cell(est, se_, _component_p(est, se_))),)))
    chi2, df, p = _model_test(doc)
    stats = {
        "N": _num(doc.get("nobs")),
        "N_g": _num(groups[group]["n"] if group else doc.get("n_groups")),
        "ll": _num(doc.get("loglik")),
        "ll_0": _num(doc.get("loglik_0")),
        "chi2": chi2,
        "df_m": df,
        "p": p,
        "aic": _num(doc.get("aic")),
        "bic": _num(doc.get("bic")),
        "rank": _num(doc.get("n_params")),
    }
    return CompactColumn(title, tuple(equations), stats)


def model_column(obj, title: str = "model") -> CompactColumn:
    """The column of a result object, a foreign object or a results document."""
    own = getattr(obj, "compact_column", None)
    if callable(own) and not isinstance(obj, Mapping):
        return own(title)
    return column_from_dict(document_of(obj), title)


def _renamed(col: CompactColumn, rename: Callable[[str], str]) -> CompactColumn:
    """Coefficients renamed, and the variables inside variance-component names
    (``var(W__x[id])`` -> ``var(x[id])`` for ``{"W__x": "x"}``)."""
    eqs = []
    for k, eq in enumerate(col.equations):
        if k == 0 and eq.main:
            rows = tuple((rename(name), cell) for name, cell in eq.rows)
            eqs.append(Equation(eq.name, rows, True))
        else:
            name = _COMPONENT_TERM.sub(lambda m: f"{rename(m.group(1))}[", eq.name)
            eqs.append(Equation(name, eq.rows, eq.main))
    return CompactColumn(col.title, tuple(eqs), col.stats)


def compare(
    models: Sequence[object],
    names: Sequence[str] | None = None,
    *,
    star: bool = False,
    se: bool = False,
    t: bool = False,
    p: bool = False,
    stats: Sequence[str] = (*DEFAULT_STATS, "N"),
    rename: Mapping[str, str] | Callable[[str], str] | None = None,
    title: str | None = None,
) -> CompactTable:
    """Several fitted models side by side in the compact layout.

    ``models`` are result objects (GLMM, hybrid, conditional fixed effects) or their
    results documents (``to_dict()``, ``--json``); each column is built from the document,
    so an object and its JSON file give the same column. ``stats`` chooses the statistics
    (:data:`~mixedglm.report.compact.STAT_NAMES`: ``N``, ``N_g``, ``ll``, ``ll_0``,
    ``chi2``, ``df_m``, ``p``, ``aic``, ``bic``, ``rank``). ``rename`` maps coefficient
    names so that rows line up across models, e.g. ``{"W__nauthors": "nauthors"}`` to read
    a hybrid model's within effects beside a fixed-effects model's. The table prints as
    Stata's text and renders as markdown, LaTeX and HTML (``as_markdown()`` ...).
    """
    models = list(models)
    if not models:
        raise MixedGLMError("compare() needs at least one model")
    if names is None:
        names = [f"model{k + 1}" for k in range(len(models))]
    names = list(names)
    if len(names) != len(models):
        raise MixedGLMError(f"compare(): {len(models)} models but {len(names)} names")
    rename_fn: Callable[[str], str]
    if isinstance(rename, Mapping):
        mapping = dict(rename)

        def rename_fn(name: str) -> str:
            return mapping.get(name, name)

    else:
        rename_fn = rename or (lambda name: name)
    columns = [
        _renamed(model_column(obj, name), rename_fn)
        for obj, name in zip(models, names, strict=True)
    ]
    return CompactTable(tuple(columns), tuple(stats), star, se, t, p, title)
