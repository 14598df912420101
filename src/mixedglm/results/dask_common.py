"""What the results of any fit on Dask add to the in-memory ones: the per-observation
accessors (fitted values, residuals) as lazy Dask Series, ``margins()`` over the rows of a
pandas ``data=``, and the JSON's ``engine``, ``partitions`` and ``workers``."""

from __future__ import annotations

from typing import Any

import dask.dataframe as dd
import pandas as pd

from mixedglm.errors import MixedGLMError
from mixedglm.inference.margins import margins as margins_of_fit

ORDINAL_OBSERVATIONS = (
    "fitted values and residuals are not defined for ordinal models: "
    "predict(kind='pr') gives the probability of each category"
)


class DaskResultsMixin:
    """Put before the in-memory results class: ``class R(DaskResultsMixin, GLMMResults)``.
    The class gives ``_lazy_accessor(name)`` (a lazy Series of the in-memory accessor
    ``name``, per partition), ``family``, ``n_partitions`` and ``n_workers``."""

    family: Any
    n_partitions: int
    n_workers: int

    def margins(
        self,
        dydx: str | list[str] | None = None,
        at: dict | None = None,
        over: str | None = None,
        marginal: bool = True,
        data: pd.DataFrame | dd.DataFrame | None = None,
        level: float | None = None,
    ) -> pd.DataFrame:
        """As the in-memory ``margins()``, over the rows of ``data`` (a pandas DataFrame):
        after a fit on Dask the estimation rows are not in memory, so ``data`` is needed
        (``ddf.compute()`` when it fits, or a random sample of it)."""
        if data is None:
            raise MixedGLMError(
                "margins() after a fit on Dask averages over the rows of data=, a pandas "
                "DataFrame (the estimation rows are on the workers): pass ddf.compute() "
                "when it fits in memory, or a random sample of the rows"
            )
        if isinstance(data, dd.DataFrame):
            raise MixedGLMError(
                "margins(data=...) takes a pandas DataFrame: compute the Dask DataFrame "
                "(or a random sample of it) first"
            )
        return margins_of_fit(self, dydx, at, over, marginal, data, level)

    def _lazy_accessor(self, name: str) -> dd.Series:
        raise NotImplementedError

    def _observations(self, name: str) -> dd.Series:
        if self.family.is_ordinal:
            raise MixedGLMError(ORDINAL_OBSERVATIONS)
        return self._lazy_accessor(name)

    @property
    def fittedvalues(self) -> dd.Series:
        """As the in-memory ``fittedvalues``, lazy (one partition per partition)."""
        return self._observations("fittedvalues")

    @property
    def resid_response(self) -> dd.Series:
        """As the in-memory ``resid_response``, lazy."""
        return self._observations("resid_response")

    @property
    def resid_pearson(self) -> dd.Series:
        """As the in-memory ``resid_pearson``, lazy."""
        return self._observations("resid_pearson")

    @property
    def resid_deviance(self) -> dd.Series:
        """As the in-memory ``resid_deviance``, lazy."""
        return self._observations("resid_deviance")

    def to_dict(self, level: float | None = None) -> dict:
        """The in-memory JSON document with ``engine``, ``partitions`` and ``workers``."""
        out = super().to_dict(level)  # type: ignore[misc]
        out["engine"] = "dask"
        out["partitions"] = self.n_partitions
        out["workers"] = self.n_workers
        return out
