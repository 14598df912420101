"""Where the data come from: a DataFrame, a file (CSV, Parquet, Stata .dta) or a bundled
dataset name; and the ``subset`` / ``if`` restriction."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from mixedglm.errors import DataError, FileError, SubsetError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

DataSource = pd.DataFrame | str | os.PathLike


# Stata writes a lone "." (and ".a" to ".z") for a missing value
STATA_MISSING = [".", *[f".{c}" for c in "abcdefghijklmnopqrstuvwxyz"]]
_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars", ",": "commas"}
_SYNTAX = (
    "pandas syntax: == for equals, != for not equal, & for and, | for or, ~ for not, "
    'x.isna() / x.notna() for missing, e.g. "sample == 1 & x2.notna()"'
)


def _check_file(path: Path, source: object) -> None:
    """The path names a readable, non-empty regular file (else a :class:`FileError`)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileError(f"data file '{source}' does not exist") from None
    except OSError as err:
        reason = "the file name is too long" if err.errno == errno.ENAMETOOLONG else err.strerror
        raise FileError(f"cannot open data file '{_short(source)}': {reason}") from None
    if path.is_dir():
        raise FileError(f"'{source}' is a directory, not a data file")
    if not os.access(path, os.R_OK):
        raise FileError(f"data file '{source}' is not readable (permission denied)")
    if info.st_size == 0:
        raise FileError(f"data file '{source}' is empty")


def _short(source: object, limit: int = 80) -> str:
    text = str(source)
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 :]}"


def _check_table(frame: pd.DataFrame, source: object, sep: str, path: Path) -> pd.DataFrame:
    """A CSV that read as one column but whose header holds another separator, or one
    with a header and no rows, is an error naming the file."""
    if frame.shape[1] == 1:
        header = str(frame.columns[0])
        for other, words in _SEPARATORS.items():
            if other != sep and other in header:
                raise FileError(
                    f"data file '{source}' looks separated by {words}, not "
                    f"{_SEPARATORS[sep]}: save it comma-separated as .csv (tab-separated as "
                    f".tsv), or read it with pandas.read_csv(sep=...) and pass the DataFrame"
                )
    if frame.shape[0] == 0:
        raise FileError(
            f"data file '{source}' has column names ({', '.join(map(str, frame.columns[:5]))}"
            f"{', ...' if frame.shape[1] > 5 else ''}) but no rows of data"
        )
    return frame


def load_data(source: DataSource) -> pd.DataFrame:
    """Return the data as a DataFrame.

    ``source`` is a DataFrame (used as is, never modified), a path to a ``.csv``/``.csv.gz``/
    ``.tsv``, ``.parquet`` or Stata ``.dta`` file (value labels become categories), or the
    name of a bundled dataset (``mixedglm.datasets.dataset_names()``). In text files a lone
    ``.`` (``.a`` to ``.z``) is a missing value, as Stata writes it.
    """
    if isinstance(source, pd.DataFrame):
        if source.shape[0] == 0:
            raise DataError("the data frame has no rows")
        return source
    if is_dask_frame(source):
        raise DataError(
            "this step works in memory: pass a pandas DataFrame (ddf.compute()); the fits "
            "(glmm, clogit, xtpoisson_fe, hybrid) take a Dask DataFrame themselves"
        )
    if not isinstance(source, str | os.PathLike):
        raise DataError(
            f"data must be a pandas DataFrame, a file path or a dataset name, not "
            f"{type(source).__name__}"
        )
    if not str(source).strip():
        raise FileError("the data file name is empty")
    path = Path(source)
    try:
        exists = path.exists()
    except OSError:
        exists = True  # a name too long and the like: _check_file says what is wrong
    if path.suffix == "" and not exists:
        from mixedglm.datasets import dataset_names, load_dataset

        if str(source) in dataset_names():
            return load_dataset(str(source))
        raise FileError(
            f"'{_short(source)}' is neither a file nor a bundled dataset "
            f"(bundled: {', '.join(dataset_names())})"
        )
    _check_file(path, source)
    suffixes = "".join(path.suffixes[-2:]).lower()
    try:
        if path.suffix.lower() == ".dta":
            return _check_table(pd.read_stata(path, convert_categoricals=True), source, ",", path)
        if path.suffix.lower() == ".parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError as err:
                raise DataError(
                    "reading Parquet needs pyarrow: pip install 'mixedglm[parquet]'"
                ) from err
            return _check_table(pd.read_parquet(path), source, ",", path)
        for ends, sep in (((".csv", ".csv.gz", ".txt"), ","), ((".tsv", ".tsv.gz", ".tab"), "\t")):
            if suffixes.endswith(ends):
                frame = pd.read_csv(path, sep=sep, na_values=STATA_MISSING)
                return _check_table(frame, source, sep, path)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise FileError(f"data file '{source}' has no columns (is it empty?)") from None
    except UnicodeDecodeError as err:
        raise FileError(
            f"data file '{source}' is not text in UTF-8 ({err.reason} at byte {err.start}): "
            "is it a binary file, or saved in another encoding?"
        ) from None
    except Exception as err:  # a parser's own message, with the file named
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FileError(f"could not read '{source}': {first}") from err
    raise FileError(
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


_STATA_IDIOMS = (
    (re.compile(r"(?<![=!<>])=(?!=)"), "'=' assigns; compare with '=='"),
    (re.compile(r"!(?!=)"), "'!' is not Python: negate with '~'"),
    (re.compile(r"\bmissing\s*\("), "missing(x) is Stata: write x.isna() (or x.notna())"),
    (re.compile(r"\binlist\s*\("), "inlist(x, a, b) is Stata: write x.isin([a, b])"),
    (re.compile(r"\binrange\s*\("), "inrange(x, a, b) is Stata: write (x >= a) & (x <= b)"),
)


def _subset_hint(condition: str) -> str:
    return "; ".join(advice for pattern, advice in _STATA_IDIOMS if pattern.search(condition))


def apply_subset(data: pd.DataFrame, condition: str | None) -> pd.DataFrame:
    """Rows where ``condition`` holds, with Stata's meaning of ``if``: a numeric result is
    true where it is non-zero and not missing. The condition is pandas syntax
    (``DataFrame.eval``); a Stata idiom (``=``, ``!``, ``missing()``) is an error that shows
    the pandas form."""
    if condition is None or not str(condition).strip():
        return data
    if not isinstance(condition, str):
        raise SubsetError(f"the condition must be a string, not {type(condition).__name__}")
    hint = _subset_hint(condition)
    try:
        result = data.eval(condition)
    except Exception as err:
        name = re.search(r"name '([^']+)' is not defined", str(err))
        if name:
            what = f"variable '{name.group(1)}' not found in the data"
        else:
            what = (str(err).strip().splitlines() or [type(err).__name__])[0]
        advice = f"{hint}; " if hint else ""
        raise SubsetError(
            f"cannot evaluate the condition '{condition}': {what} ({advice}{_SYNTAX})"
        ) from None
    # a Series, an array or a scalar: np.ndim and np.repeat take any of them (numpy's
    # ArrayLike leaves out the dates and timestamps among pandas' scalars)
    array_like = cast("ArrayLike", result)
    if isinstance(result, pd.DataFrame) or np.ndim(array_like) > 1:
        advice = f"{hint}; " if hint else ""
        raise SubsetError(
            f"the condition '{condition}' does not give one true/false value per row "
            f"({advice}{_SYNTAX})"
        )
    if np.ndim(array_like) == 0:
        result = pd.Series(np.repeat(array_like, len(data)), index=data.index)
    result = pd.Series(result, index=data.index) if not isinstance(result, pd.Series) else result
    if result.dtype == bool:
        mask = result.to_numpy()
    else:
        values = pd.to_numeric(result, errors="coerce").to_numpy(dtype=float)
        mask = np.isfinite(values) & (values != 0)
    if not mask.any():
        raise SubsetError(f"no observations satisfy the condition '{condition}'")
    return data.loc[mask]
