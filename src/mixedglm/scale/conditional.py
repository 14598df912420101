"""The worker side of a conditional fixed-effects fit (``clogit``, ``xtpoisson_fe``) on Dask.

Every group lies whole in one partition (the data were shuffled on the group variable), so
each partition's within-group design is the in-memory one for its groups: built by
:func:`~mixedglm.scale.partition.build_partition` with the globally agreed factor levels and
no column omitted, rows sorted by group, the uninformative groups counted and set aside
(:func:`~mixedglm.design.within.informative_groups`). What needs all the groups is decided on
the client from the partitions' sums: Stata's notes, the covariates without within-group
variance (any partition) and the collinear ones (the summed cross-products of the
within-transformed columns). The partition then keeps the chosen columns and evaluates the
exact conditional likelihood with the in-memory kernels. Nothing here imports Dask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mixedglm.design.build import GroupInfo
from mixedglm.design.checks import conditional_pairs
from mixedglm.design.weights import group_weight_vector
from mixedglm.design.within import (
    check_finite,
    demean,
    group_starts,
    informative_groups,
    validate_outcome,
    within_variance,
)
from mixedglm.engines.base import Contributions
from mixedglm.engines.conditional import clogit_evaluate, cpoisson_evaluate
from mixedglm.engines.conditional_contrib import (
    conditional_contributions,
    weighted_conditional_objective,
)
from mixedglm.errors import DataError
from mixedglm.optim import Evaluation
from mixedglm.scale import partition as part
from mixedglm.scale.partition import DesignSpec


@dataclass(frozen=True)
class ConditionalSpec:
    """What every partition needs: the design (``design.columns`` are the model's
    variables and the group), the model ``kind`` and the carried variables (the ``vce``
    cluster variable, the group weights)."""

    design: DesignSpec
    kind: str
    cluster: str | None = None
    weights: str | None = None


@dataclass
class ConditionalPart:
    """One partition's informative groups: rows sorted by group, every column of the
    formula (``X``) until the client has chosen the identified ones (``Xk``)."""

    kind: str
    y: np.ndarray
    X: np.ndarray
    offset: np.ndarray | None
    starts: np.ndarray
    group: GroupInfo
    carried: pd.DataFrame
    Xk: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    weights: np.ndarray | None = None


def group_stats(frame: pd.DataFrame, spec: ConditionalSpec, level_columns: list[str]) -> dict:
    """The global pass: rows without a group (dropped first, as in memory), then the
    missing values and distinct values of the model's variables (:func:`partition_stats`)."""
    group = spec.design.group
    has_group = frame[group].notna().to_numpy()
    stats = part.partition_stats(frame.loc[has_group], spec.design, level_columns)
    stats["no_group"] = int((~has_group).sum())
    return stats


def op_build(frame: pd.DataFrame, spec: ConditionalSpec, model_id: str, index: int) -> dict | None:
    """Build partition ``index``'s within-group design and keep it on this worker; return
    the counts of uninformative groups, which columns vary within a group and the
    cross-products of the within-transformed columns."""
    dspec = spec.design
    frame = frame.loc[frame[dspec.group].notna()].reset_index(drop=True)
    design, _ = part.build_partition(frame, dspec, with_gram=False)
    if design is None:
        return None
    rows = frame.loc[design.row_index]
    covariates = [j for j, n in enumerate(design.x_names) if n != "_cons"]
    names = [design.x_names[j] for j in covariates]
    codes, labels = pd.factorize(rows[dspec.group], sort=True)
    order = np.argsort(codes, kind="stable")
    y = design.y[order]
    X = np.ascontiguousarray(design.X[order][:, covariates])
    validate_outcome(y, spec.kind, design.response)
    starts_all = group_starts(codes[order])
    keep_group, counts = informative_groups(y, starts_all, spec.kind)
    sizes = np.diff(starts_all)[keep_group]
    kept_rows = np.repeat(keep_group, np.diff(starts_all))
    starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    Xk = X[kept_rows]
    check_finite(Xk, names)
    D = demean(Xk, starts) if sizes.size else Xk
    has_offset = dspec.offset is not None or dspec.exposure is not None
    carried = [c for c in (spec.cluster, spec.weights) if c is not None]
    part.keep(
        model_id,
        index,
        ConditionalPart(
            spec.kind,
            np.ascontiguousarray(y[kept_rows]),
            Xk,
            np.ascontiguousarray(design.offset[order][kept_rows]) if has_offset else None,
            starts,
            GroupInfo(dspec.group, np.asarray(labels)[keep_group], sizes),
            rows[carried].iloc[order].iloc[kept_rows].reset_index(drop=True),
        ),
    )
    return {
        "index": index,
        "counts": counts,
        "varies": within_variance(Xk, starts) if sizes.size else np.zeros(len(names), bool),
        "gram": D.T @ D,
        "names": names,
        "rows": int(y.shape[0]),
        "response": design.response,
        "value_labels": design.value_labels,
    }


def _cluster_values(p: ConditionalPart, variable: str) -> tuple[np.ndarray, int]:
    """Per kept group its value of the ``vce`` cluster variable (which must not split a
    group), and the missing values among the kept rows."""
    values = p.carried[variable]
    n_missing = int(values.isna().sum())
    if n_missing or not p.group.n_groups:
        return values.to_numpy()[:0], n_missing
    codes, _ = pd.factorize(values, sort=True)
    first = codes[p.starts[:-1]]
    if np.any(np.repeat(first, p.group.sizes) != codes):
        raise DataError(
            f"cluster variable '{variable}' splits clusters of {p.group.name}: the "
            f"highest-level groups ({p.group.name}) must be nested within the clusters of "
            f"{variable}"
        )
    return values.to_numpy()[p.starts[:-1]], 0


def op_finalize(model_id: str, parts: list[int], columns: np.ndarray, spec: ConditionalSpec):
    """Keep the identified ``columns``; per partition its groups (labels and sizes), the
    largest absolute value of each column (the separation check), the group weights and the
    ``vce`` cluster variable's value per group."""
    out = []
    with part._LOCK:
        for i in parts:
            p: ConditionalPart = part.kept(model_id, i)
            p.Xk = np.ascontiguousarray(p.X[:, columns])
            p.X = p.X[:0]
            codes = np.repeat(np.arange(p.group.n_groups), p.group.sizes)
            if spec.weights is not None and p.group.n_groups:
                values = p.carried[spec.weights]
                p.weights = group_weight_vector(values, codes, p.starts, spec.weights, p.group.name)
            cluster, n_missing = _cluster_values(p, spec.cluster) if spec.cluster else (None, 0)
            out.append(
                {
                    "labels": p.group.labels,
                    "sizes": p.group.sizes,
                    "reach": np.max(np.abs(p.Xk), axis=0)
                    if p.Xk.shape[0]
                    else np.zeros(p.Xk.shape[1]),
                    "cluster": cluster,
                    "cluster_missing": n_missing,
                }
            )
    return out


class ConditionalObjective:
    """A partition's conditional log-likelihood, score and Hessian (the in-memory kernels),
    and its per-group contributions; an empty partition contributes zeros."""

    def __init__(self, p: ConditionalPart) -> None:
        self.p = p
        if p.weights is not None and p.group.n_groups:
            self._weighted = weighted_conditional_objective(
                p.kind, p.Xk, p.y, p.starts, p.offset, p.weights
            )
        else:
            self._weighted = None

    def __call__(self, beta: np.ndarray, order: int) -> Evaluation:
        p = self.p
        k = beta.shape[0]
        if not p.group.n_groups:
            zero = np.zeros(k)
            return Evaluation(
                0.0, zero if order >= 1 else None, np.zeros((k, k)) if order >= 2 else None
            )
        if self._weighted is not None:
            return self._weighted(beta, order)
        if p.kind == "logit":
            return clogit_evaluate(beta, p.Xk, p.y, p.starts, order, offset=p.offset)
        return cpoisson_evaluate(beta, p.Xk, p.y, p.offset, p.starts, order)

    def contributions(self, beta: np.ndarray) -> Contributions:
        p = self.p
        if not p.group.n_groups:
            return Contributions(np.zeros(0), np.zeros((0, beta.shape[0])))
        return conditional_contributions(p.kind, beta, p.Xk, p.y, p.starts, p.offset)


def conditional_engine(p: ConditionalPart) -> ConditionalObjective:
    """The engine builder named in the Dask engine's setup (see ``partition._engine``)."""
    return ConditionalObjective(p)


def op_pairs(model_id: str, parts: list[int], max_pairs: int) -> list:
    """Per partition the rows of the separation check (``None`` beyond ``max_pairs``)."""
    out = []
    with part._LOCK:
        for i in parts:
            p: ConditionalPart = part.kept(model_id, i)
            out.append(conditional_pairs(p.y, p.Xk, p.starts, p.kind, max_pairs))
    return out
