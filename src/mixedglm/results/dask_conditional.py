"""A conditional fixed-effects model fitted on Dask: the in-memory results, whose JSON adds
the engine, the number of partitions and of workers."""

from __future__ import annotations

from dataclasses import dataclass, field

from mixedglm.results.conditional import ConditionalResults


@dataclass(frozen=True, repr=False)
class DaskConditionalResults(ConditionalResults):
    """:class:`ConditionalResults` of a fit on Dask."""

    n_partitions: int = 0
    n_workers: int = 0
    timings: dict = field(default_factory=dict)

    def to_dict(self, level: float | None = None, eform: bool | None = None, **kw) -> dict:
        """The in-memory JSON document with ``engine``, ``partitions`` and ``workers``."""
        out = super().to_dict(level, eform, **kw)
        out["engine"] = "dask"
        out["partitions"] = self.n_partitions
        out["workers"] = self.n_workers
        return out
