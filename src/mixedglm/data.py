"""Where the data come from: a DataFrame, a file (CSV, Parquet, Stata .dta) or a bundled
dataset name; and the ``subset`` / ``if`` restriction."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mixedglm.errors import DataError

DataSource = pd.DataFrame | str | os.PathLike


def load_data(source: DataSource) -> pd.DataFrame:
    """Return the data as a DataFrame.

    ``source`` is a DataFrame (used as is, never modified), a path to a ``.csv``/``.csv.gz``/
    ``.tsv``, ``.parquet`` or Stata ``.dta`` file (value labels become categories), or the
    name of a bundled dataset (``mixedglm.datasets.dataset_names()``).
    """
    if isinstance(source, pd.DataFrame):
        return source
    if is_dask_frame(source):
        raise DataError(
            "this model is fitted in memory: only glmm() runs on Dask so far (clogit, "
            "xtpoisson_fe and hybrid do not); pass a pandas DataFrame (ddf.compute())"
        )
    if not isinstance(source, str | os.PathLike):
        raise DataError(
            f"data must be a pandas DataFrame, a file path or a dataset name, not "
            f"{type(source).__name__}"
        )
    path = Path(source)
    if path.suffix == "" and not path.exists():
        from mixedglm.datasets import dataset_names, load_dataset

        if str(source) in dataset_names():
            return load_dataset(str(source))
        raise DataError(
            f"'{source}' is neither a file nor a bundled dataset "
            f"(bundled: {', '.join(dataset_names())})"
        )
    if not path.exists():
        raise DataError(f"data file '{source}' does not exist")
    suffixes = "".join(path.suffixes[-2:]).lower()
    try:
        if path.suffix.lower() == ".dta":
            return pd.read_stata(path, convert_categoricals=True)
        if path.suffix.lower() == ".parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError as err:
                raise DataError(
                    "reading Parquet needs pyarrow: pip install 'mixedglm[parquet]'"
                ) from err
            return pd.read_parquet(path)
        if suffixes.endswith((".csv", ".csv.gz", ".txt")):
            return pd.read_csv(path)
        if suffixes.endswith((".tsv", ".tsv.gz", ".tab")):
            return pd.read_csv(path, sep="\t")
    except DataError:
        raise
    except Exception as err:  # a parser's own message, with the file named
        raise DataError(f"could not read '{source}': {err}") from err
    raise DataError(
        f"unknown file type '{path.suffix}' for '{source}': use .csv, .tsv, .parquet or .dta"
    )


def is_dask_frame(data: object) -> bool:
    """Whether ``data`` is a Dask DataFrame (checked without importing Dask)."""
    return type(data).__module__.split(".")[0] == "dask" and hasattr(data, "npartitions")


def check_engine(engine: str, data: object) -> bool:
    """Whether to fit on Dask: ``engine="dask"``, or Dask data with the default engine."""
    if engine not in ("memory", "dask"):
        raise DataError(f"engine must be 'memory' or 'dask', not {engine!r}")
    if engine == "memory" and is_dask_frame(data):
        return True
    return engine == "dask"


def apply_subset(data: pd.DataFrame, condition: str | None) -> pd.DataFrame:
    """Rows where ``condition`` holds, with Stata's meaning of ``if``: a numeric result is
    true where it is non-zero and not missing."""
    if condition is None or not str(condition).strip():
        return data
    try:
        result = data.eval(condition)
    except Exception as err:
        raise DataError(f"cannot evaluate the condition '{condition}': {err}") from err
    result = pd.Series(result, index=data.index) if not isinstance(result, pd.Series) else result
    if result.dtype == bool:
        mask = result.to_numpy()
    else:
        values = pd.to_numeric(result, errors="coerce").to_numpy(dtype=float)
        mask = np.isfinite(values) & (values != 0)
    if not mask.any():
        raise DataError(f"no observations satisfy the condition '{condition}'")
    return data.loc[mask]
