"""Robust and cluster-robust covariance of a finished fit (``vce="robust"``,
``vce="cluster VAR"``): per-cluster scores from the model's engine at the estimates, then the
sandwich of :mod:`mixedglm.inference.robust`. Orchestration only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from mixedglm.engines.aghq import AGHQEngine
from mixedglm.errors import DataError
from mixedglm.inference.robust import VCEInfo, cluster_map, parse_vce, sandwich
from mixedglm.results.glmm import GLMMResults

__all__ = ["glmm_robust", "robust_cov"]


def _cluster_values(frame: pd.DataFrame, variable: str, positions: np.ndarray) -> pd.Series:
    if variable not in frame.columns:
        raise DataError(f"cluster variable '{variable}' not found in the data")
    return frame[variable].iloc[positions].reset_index(drop=True)


def robust_cov(
    cov: np.ndarray,
    scores: np.ndarray,
    row_codes: np.ndarray,
    top_name: str,
    vce: str | None,
    frame: pd.DataFrame | None,
    positions: np.ndarray | None,
) -> tuple[np.ndarray, VCEInfo] | None:
    """The sandwich for ``vce`` from per-top-cluster ``scores`` ``(G, P)``.

    ``row_codes`` ``(N,)`` gives each estimation row's top-level cluster and ``positions``
    the rows' positions in ``frame`` (where the clustering variable is read). Returns
    ``None`` for the model-based ``oim``.
    """
    choice = parse_vce(vce)
    if choice is None:
        return None
    kind, variable = choice
    if kind == "robust" or variable == top_name:
        out, g = sandwich(cov, scores)
        return out, VCEInfo(kind, top_name, g)
    assert variable is not None and frame is not None and positions is not None
    values = _cluster_values(frame, variable, positions)
    groups, _ = cluster_map(row_codes, values, variable, top_name)
    out, g = sandwich(cov, scores, groups)
    return out, VCEInfo(kind, variable, g)


def glmm_robust(res: GLMMResults, vce: str | None, frame: pd.DataFrame) -> GLMMResults:
    """``res`` with its covariance replaced by the sandwich (unchanged for ``oim``)."""
    if parse_vce(vce) is None:
        return res
    engine = res.engine or AGHQEngine(
        res.design.cluster_arrays(),
        res.family,
        res.structure,
        nagq=res.nagq,
        method=res.method,
        curvature=res.curvature,
    )
    scores = engine.contributions(res.params_all).score
    group = res.design.group
    assert group is not None and vce is not None
    out = robust_cov(
        res.cov_all,
        scores,
        res.design.group_codes,
        group.name,
        vce,
        frame,
        res.design.source_positions,
    )
    assert out is not None
    cov, info = out
    return replace(res, cov_all=cov, vce=info)
