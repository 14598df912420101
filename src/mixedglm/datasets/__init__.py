"""Datasets bundled with mixedglm.

``load_dataset("papers")`` returns the simulated papers-in-authors data that reproduce the
examples of Schunk & Perales (2017); see :mod:`mixedglm.datasets.papers` for what it contains and
how it was generated. Every call reads the shipped file afresh (nothing is cached), so the
returned frame is the caller's to modify.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

__all__ = ["dataset_names", "load_dataset"]


def _load_papers() -> pd.DataFrame:
    # imported here so that `python -m mixedglm.datasets.papers` does not import it twice
    from mixedglm.datasets.papers import load_papers

    return load_papers()


_LOADERS: dict[str, Callable[[], pd.DataFrame]] = {"papers": _load_papers}


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_LOADERS)


def load_dataset(name: str) -> pd.DataFrame:
    """Load a bundled dataset by name as a new DataFrame.

    Raises ``ValueError`` (listing the available names) for an unknown name.
    """
    loader = _LOADERS.get(name)
    if loader is None:
        available = ", ".join(repr(n) for n in dataset_names())
        raise ValueError(f"unknown dataset {name!r}; available datasets: {available}")
    return loader()
