"""Stata-style value labels on numeric columns.

A numeric column can carry labels for its values (``female``: 0 = Male, 1 = Female) in the
DataFrame's ``attrs["value_labels"]`` (``{column: {value: label}}``), which pandas keeps
through selections and writes to Parquet. The variable stays numeric (``female`` is a 0/1
covariate, as in Stata); where a table shows the levels of a factor (``C(female)``, Stata's
``i.female``) the labels are printed instead of the values, as Stata does. Categorical
columns (Stata files read with their labels, pandas categoricals, Parquet dictionaries)
carry their labels in the categories themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

ATTR = "value_labels"

LabelMap = Mapping[str, Mapping[str, str]]


def set_value_labels(data: pd.DataFrame, labels: Mapping[str, Mapping[Any, str]]) -> None:
    """Attach value labels to columns of ``data`` (in place): ``{"female": {0: "Male", 1:
    "Female"}}``."""
    current = dict(data.attrs.get(ATTR, {}))
    for column, mapping in labels.items():
        current[str(column)] = {_key(v): str(text) for v, text in mapping.items()}
    data.attrs[ATTR] = current


def value_labels(data: pd.DataFrame, columns: Iterable[str] | None = None) -> dict:
    """The value labels of ``data`` (of ``columns`` only, when given), keys as text."""
    found = data.attrs.get(ATTR) or {}
    wanted = None if columns is None else {str(c) for c in columns}
    return {
        str(col): {_key(v): str(t) for v, t in mapping.items()}
        for col, mapping in found.items()
        if wanted is None or str(col) in wanted
    }


def _key(value: object) -> str:
    """A value as the key of a label: whole numbers without decimals (``1.0`` -> ``1``)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else repr(number)


def level_label(variable: str, level: str, labels: LabelMap | None) -> str:
    """The label of ``variable``'s value ``level`` (as formulaic names it), or ``level``."""
    if not labels or variable not in labels:
        return level
    return labels[variable].get(_key(level), level)
