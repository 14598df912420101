"""A nested model fitted on Dask: the in-memory multilevel results (estimates, tables,
random effects gathered on the client at the end of the fit), with the engine, the number of
partitions and of workers in the JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from mixedglm.errors import MixedGLMError
from mixedglm.results.multilevel import MultilevelResults


@dataclass(frozen=True, repr=False)  # repr: the table (DisplayMixin)
class DaskMultilevelResults(MultilevelResults):
    """:class:`MultilevelResults` of a nested fit on Dask; its design has no rows (the
    factors keep their labels and observations per level)."""

    n_partitions: int = 0
    n_workers: int = 0
    timings: dict = field(default_factory=dict)

    def predict(self, *args: object, **kwargs: object) -> pd.Series:
        """Not available after a nested fit on Dask (an error saying what to do)."""
        raise MixedGLMError(
            "predict() after a nested fit on Dask is not available yet: the random effects "
            "(random_effects()) are in memory; fit in memory to predict"
        )

    def to_dict(self, level: float | None = None) -> dict:
        """The in-memory JSON document with ``engine``, ``partitions`` and ``workers``."""
        out = super().to_dict(level)
        out["engine"] = "dask"
        out["partitions"] = self.n_partitions
        out["workers"] = self.n_workers
        return out
