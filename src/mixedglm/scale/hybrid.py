"""The worker side of a hybrid (within/between) model on Dask: one partition's sums for the
decomposition, and its decomposed columns.

The rows were shuffled on the cluster variable, so every cluster lies whole in one partition
and its means are the in-memory ones. The first pass returns per partition what the
decisions need (missing values, the clusters' sizes and means of the ``use`` variables, the
within sums of squares, the outcome's spread); the client decides which variables are
decomposed (:func:`~mixedglm.design.hybrid.plan_terms`) and each partition then makes its
columns with the in-memory :func:`~mixedglm.design.hybrid.decomposed_frame`. Nothing here
imports Dask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mixedglm.design.checks import check_values
from mixedglm.design.hybrid import (
    HybridRequest,
    VariableTerms,
    _numeric,
    decomposed_frame,
    outcome_spread,
    outcome_values,
)
from mixedglm.design.missing import listwise


def _clusters(kept: pd.DataFrame, cluster: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes, labels = pd.factorize(kept[cluster], sort=True)
    sizes = np.bincount(codes, minlength=len(labels)).astype(float)
    return codes, np.asarray(labels), sizes


def hybrid_stats(frame: pd.DataFrame, request: HybridRequest, named: Sequence[str]) -> dict:
    """The partition's counts and sums for the decomposition (module docstring)."""
    check_values(frame, [c for c in named if c in frame.columns])
    data = frame[list(request.wanted)]
    rows = listwise(data)
    kept = data.loc[rows.keep]
    codes, labels, sizes = _clusters(kept, request.cluster)
    spread, largest = outcome_spread(outcome_values(kept, request.response), codes, sizes)
    means, ssr = {}, {}
    for name in request.use:
        x = _numeric(kept, name, "use() variable")
        means[name] = np.bincount(codes, weights=x, minlength=sizes.shape[0]) / sizes
        resid = x - means[name][codes]
        ssr[name] = float(resid @ resid)
    return {
        "rows": len(data),
        "missing_cluster": int(data[request.cluster].isna().sum()),
        "missing": rows.counts.to_dict(),
        "kept": int(rows.keep.sum()),
        "labels": labels,
        "sizes": sizes,
        "spread": spread,
        "largest": largest,
        "means": means,
        "ssr": ssr,
    }


def decompose_partition(
    frame: pd.DataFrame,
    request: HybridRequest,
    residual: Sequence[str],
    terms: Sequence[VariableTerms],
    cre: bool,
) -> pd.DataFrame:
    """The partition's estimation rows with the model's columns (the in-memory ones)."""
    data = frame[list(request.wanted)]
    kept = data.loc[listwise(data).keep]
    codes, _, sizes = _clusters(kept, request.cluster)
    return decomposed_frame(kept, codes, sizes, request, residual, terms, cre)
