"""The worker side of a Dask fit: one partition's design and engines, kept in worker memory.

Everything here runs inside a Dask worker on a pandas partition whose clusters lie whole in
it; nothing imports Dask. A partition's design is built by the in-memory
:func:`~mixedglm.design.build.build_design` with the decisions that need all the data made
beforehand on the client (factor levels, the ordinal outcome's categories, the columns omitted
for collinearity): so its columns are those of the in-memory design, and each cluster's rows,
engine and numbers are the in-memory ones. The engines live in a registry of this worker
process keyed by a model id and the partition's number; their per-cluster adaptive state
(modes, grids) persists between the Newton steps, exactly as in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numba
import numpy as np
import pandas as pd

from mixedglm.design.build import ModelDesign, _check_text_columns, build_design
from mixedglm.design.checks import outcome_extent
from mixedglm.design.multilevel import MultilevelDesign
from mixedglm.design.weights import (
    group_weight_vector,
    observation_weights,
    weight_counts,
    weight_roles,
)
from mixedglm.engines.aghq import AGHQEngine
from mixedglm.engines.base import Engine
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.engines.glm import GLMObjective
from mixedglm.engines.rules import IntegrationRule
from mixedglm.errors import DataError
from mixedglm.families import Family
from mixedglm.formula import ParsedFormula
from mixedglm.models.reml import CrossProducts
from mixedglm.models.weights import row_weights


@dataclass(frozen=True)
class DesignSpec:
    """What every partition needs to build its part of the global design.

    ``columns``: the model's variables; ``levels``: global categories of the variables that
    become dummies; ``outcome_categories``: an ordinal outcome's categories (all the data's);
    ``dropped``: columns omitted for collinearity (by name, decided on all the data);
    ``carried``: other columns kept with the design's rows (a ``vce`` cluster variable,
    the weights), whose missing values drop no row; ``weights``: the ``fweight``,
    ``pweight`` and group weight variables (or None).
    """

    formula: ParsedFormula
    family: Family
    columns: tuple[str, ...]
    group: str
    offset: str | None = None
    exposure: str | None = None
    trials: str | None = None
    levels: tuple[tuple[str, tuple], ...] = ()
    outcome_categories: tuple | None = None
    dropped: tuple[str, ...] = ()
    carried: tuple[str, ...] = ()
    weights: tuple[str | None, str | None, str | None] = (None, None, None)


# -- restricting and counting ----------------------------------------------------------------
def subset_mask(frame: pd.DataFrame, condition: str | None) -> np.ndarray:
    """Rows where ``condition`` holds (Stata's ``if``: non-zero and not missing); unlike the
    in-memory :func:`~mixedglm.data.apply_subset`, a partition may select no row."""
    if condition is None or not str(condition).strip():
        return np.ones(len(frame), dtype=bool)
    try:
        result = frame.eval(condition)
    except Exception as err:
        raise DataError(f"cannot evaluate the condition '{condition}': {err}") from err
    result = pd.Series(result, index=frame.index) if not isinstance(result, pd.Series) else result
    if result.dtype == bool:
        return result.to_numpy()
    values = pd.to_numeric(result, errors="coerce").to_numpy(dtype=float)
    return np.isfinite(values) & (values != 0)


def restrict(frame: pd.DataFrame, condition: str | None, columns: list[str]) -> pd.DataFrame:
    """The partition's rows satisfying ``condition``, only the model's columns."""
    return frame.loc[subset_mask(frame, condition), columns]


def _is_text(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series.dtype)


def partition_stats(
    frame: pd.DataFrame, spec: DesignSpec, level_columns: list[str], first: tuple[str, ...] = ()
) -> dict:
    """Counts for the global pass: missing values per variable, rows kept, the distinct
    values of the variables that become dummies and of an ordinal outcome. ``first``: the
    variables whose missing values drop rows first (a multilevel design's grouping and
    random-effect variables): their counts and rows apart, ``missing`` counts the rest."""
    _check_text_columns(spec.formula.fixed, [c for c in spec.columns if c in level_columns], frame)
    data = frame[list(spec.columns)]
    missing = data.isna()
    keep = ~missing.any(axis=1).to_numpy()
    kept = data.loc[keep]
    values = {}
    for name in level_columns:
        col = kept[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            values[name] = ("categories", tuple(col.cat.categories))
        else:
            values[name] = ("values", tuple(pd.unique(col)))
    outcome = None
    if spec.family.is_ordinal:
        col = kept[spec.formula.response]
        if isinstance(col.dtype, pd.CategoricalDtype):
            outcome = ("categories", tuple(col.cat.categories), tuple(pd.unique(col)))
        else:
            outcome = ("values", (), tuple(pd.unique(col)))
    before = missing[list(first)].any(axis=1).to_numpy() if first else np.zeros(len(data), bool)
    roles = weight_roles(*spec.weights)
    return {
        "weights": {var: weight_counts(frame[var]) for _, var in roles},
        "rows": len(frame),
        "first": (int(before.sum()), missing[list(first)].sum().to_dict()),
        "missing": missing.loc[~before].sum().to_dict(),
        "kept": int(keep.sum()),
        "values": values,
        "outcome": outcome,
    }


# -- the partition's design ------------------------------------------------------------------
def with_levels(frame: pd.DataFrame, spec: DesignSpec) -> pd.DataFrame:
    """The variables that become dummies as categoricals with the global levels, so that
    every partition has every column of the in-memory design (unused levels give zeros)."""
    if not spec.levels:
        return frame
    frame = frame.copy()
    for name, levels in spec.levels:
        frame[name] = pd.Categorical(frame[name], categories=list(levels))
    return frame


def gram_names(design: ModelDesign, ordinal: bool) -> list[str]:
    """The names of the columns in the order the collinearity check sees them (formulaic's,
    the constant first)."""
    rest = [n for n in design.all_x_names if n != "_cons"]
    return ["_cons", *rest] if ordinal or "_cons" in design.all_x_names else rest


def build_partition(
    frame: pd.DataFrame, spec: DesignSpec, with_gram: bool, builder=None
) -> tuple[Any, np.ndarray | None]:
    """The partition's design with every column (collinear ones still in) and, when asked
    for, the cross-product matrix of its fixed-effects columns (for the global check).
    ``builder(frame, spec, options)``: another model's design from the rows kept (with the
    global levels) and ``build_design``'s partition options."""
    grams: list[np.ndarray] = []

    def record(X: np.ndarray) -> list[int]:
        if with_gram:
            grams.append(X.T @ X)
        return []

    data = frame[list(spec.columns)]
    keep = data.notna().all(axis=1).to_numpy()
    if not keep.any():
        return None, None
    data = data.loc[keep]  # listwise deletion (counted globally) before the levels are set
    options: dict[str, Any] = {
        "collinear": record,
        "whole": False,
        "outcome_categories": spec.outcome_categories,
    }
    if builder is not None:
        return builder(with_levels(data, spec), spec, options), (grams[0] if grams else None)
    design = build_design(
        spec.formula,
        with_levels(data, spec),
        spec.family,
        offset=spec.offset,
        exposure=spec.exposure,
        trials=spec.trials,
        require_group=False,  # a random part was checked on the client, if the model has one
        **options,
    )
    return design, (grams[0] if grams else None)


def drop_columns(design: ModelDesign, dropped: tuple[str, ...], ordinal: bool) -> ModelDesign:
    """The design without the globally collinear columns, with the in-memory notes' order."""
    if not dropped:
        return design
    keep = [j for j, n in enumerate(design.x_names) if n not in dropped]
    omitted = tuple((n, "collinearity") for n in dropped if not (ordinal and n == "_cons"))
    return replace(
        design,
        X=np.ascontiguousarray(design.X[:, keep]),
        x_names=tuple(design.x_names[j] for j in keep),
        omitted=omitted,
    )


def carried_rows(frame: pd.DataFrame, spec: DesignSpec, design: ModelDesign) -> pd.DataFrame:
    """The ``carried`` columns on the design's rows (in its order, index reset)."""
    rows = frame[list(spec.columns)].notna().all(axis=1).to_numpy()
    chosen = frame.loc[rows, list(spec.carried)]
    assert design.source_positions is not None  # build_design keeps the rows' positions
    return chosen.iloc[design.source_positions].reset_index(drop=True)


def partition_weights(
    carried: pd.DataFrame, spec: DesignSpec, design: ModelDesign
) -> tuple[np.ndarray | None, np.ndarray | None] | None:
    """The observation weights and the cluster weights of the design's rows (checked as
    in memory), or None without weights."""
    fweight, pweight, group_weight = spec.weights
    if not (fweight or pweight or group_weight):
        return None
    var = fweight or pweight
    obs = observation_weights(carried, var, "fweight" if fweight else "pweight") if var else None
    clusters = None
    if group_weight:
        assert design.group is not None
        clusters = group_weight_vector(
            carried[group_weight], design.group_codes, design.starts, group_weight, spec.group
        )
    return obs, clusters


def design_for(frame: pd.DataFrame, spec: DesignSpec) -> ModelDesign | None:
    """A partition's final design (for the lazy random effects and predictions)."""
    design, _ = build_partition(frame, spec, with_gram=False)
    if design is None:
        return None
    return drop_columns(design, spec.dropped, spec.family.is_ordinal)


def summary(design: ModelDesign, family: Family, weights: tuple | None = None) -> dict:
    """What the client needs of a partition: sizes, labels, and the sums behind the start
    values, the constant columns, the random-effect scales and the within-group checks."""
    starts = design.starts
    sizes = np.diff(starts)
    Z = design.Z
    within = np.zeros(Z.shape[1])
    for j in range(Z.shape[1]):
        means = np.add.reduceat(Z[:, j], starts[:-1]) / sizes
        within[j] = float(np.max(np.abs(Z[:, j] - np.repeat(means, sizes))))
    y, off = design.y, design.offset
    k = len(design.categories) if family.is_ordinal else 0
    return {
        "n": design.n_obs,
        "labels": design.group.labels if design.group else np.zeros(0),
        "sizes": sizes,
        "zsq": np.sum(Z**2, axis=0),
        "z_within": within,
        "z_max": np.max(np.abs(Z), axis=0) if Z.shape[0] else np.zeros(Z.shape[1]),
        "ones": np.all(design.X == 1.0, axis=0),
        "sums": np.array(
            [
                np.sum(y),
                np.sum(y**2),
                np.sum(design.trials),
                np.sum(off),
                np.sum(y - off),
                np.sum((y - off) ** 2),
            ]
        ),
        "counts": np.bincount(y.astype(np.int64), minlength=k).astype(float) if k else None,
        "outcome": outcome_extent(y, design.trials if design.binomial_trials else None),
        "sample": sample_hash(design),
        "weighted": None if weights is None else _weighted_sums(design, *weights),
    }


def _weighted_sums(design: ModelDesign, obs, clusters) -> np.ndarray:
    """The rows' total weights' sums behind a weighted fit's start values (as
    ``GLMObjective.start``) and its number of observations."""
    w = row_weights(design, obs, clusters)
    return np.array([w @ design.y, w @ design.trials, np.sum(w)])


def sample_hash(design: ModelDesign) -> int:
    """The sum (modulo 2**64) of a hash of each row's index label, cluster and outcome: a
    signature of the estimation sample that does not depend on the rows' order or on how
    they are split into partitions (added over the partitions)."""
    group = design.group.labels[design.group_codes] if design.group is not None else 0
    rows = pd.DataFrame({"group": group, "y": design.y}, index=design.row_index)
    hashes = pd.util.hash_pandas_object(rows, index=True).to_numpy()
    return int(hashes.sum(dtype=np.uint64))


# -- engines kept in worker memory ----------------------------------------------------------
def memory_engine(
    design: ModelDesign,
    family: Family,
    structure: CovarianceStructure,
    rule: IntegrationRule,
    weights: tuple | None = None,
) -> AGHQEngine:
    """THE in-memory engine of one partition for ``rule`` (the one place that builds it);
    ``weights``: the observations' and the clusters' (:func:`partition_weights`)."""
    factor = design.group.name if design.group is not None else "group"
    arrays = design.cluster_arrays()
    if weights is not None:
        arrays = replace(arrays, weights=weights[0], cluster_weights=weights[1])
    return AGHQEngine(arrays, family, structure, rule, factor=factor)


def pooled_engine(
    design: ModelDesign, family: Family, weights: tuple | None = None
) -> GLMObjective:
    """The pooled GLM (no random effects) on one partition: the start values; with
    ``weights`` each row's total weight, as in memory."""
    a = design.cluster_arrays()
    w = a.weights if weights is None else row_weights(design, *weights)
    return GLMObjective(a.X, a.y, a.trials, a.offset, family, w)


@dataclass
class _Part:
    """A partition's design (a :class:`ModelDesign`, or another model's partition data)
    and the engines built on it."""

    design: Any
    engines: dict = field(default_factory=dict)
    carried: pd.DataFrame | None = None
    weights: tuple[np.ndarray | None, np.ndarray | None] | None = None


def keep(model_id: str, index: int, design: object) -> None:
    """Keep partition ``index``'s design of model ``model_id`` in this worker's memory."""
    with _LOCK:
        _MODELS.setdefault(model_id, {})[index] = _Part(design)


def kept(model_id: str, index: int) -> Any:
    """The design kept for partition ``index`` of model ``model_id``."""
    return _MODELS[model_id][index].design


_LOCK = threading.Lock()
_MODELS: dict[str, dict[int, _Part]] = {}


def op_build(frame: pd.DataFrame, spec: DesignSpec, model_id: str, index: int) -> dict | None:
    """Build partition ``index``'s design, keep it in this worker, return its ``X'X``."""
    design, gram = build_partition(frame, spec, with_gram=True)
    if design is None:
        return None
    keep(model_id, index, design)
    if spec.carried:
        kept_part = _MODELS[model_id][index]
        kept_part.carried = carried_rows(frame, spec, design)
        kept_part.weights = partition_weights(kept_part.carried, spec, design)
    return built(index, gram, design, spec.family)


def built(index: int, gram: np.ndarray | None, design: ModelDesign, family: Family) -> dict:
    """What a partition's build returns to the client: its number, ``X'X``, the columns'
    names in the collinearity check's order, and its design without rows (the header)."""
    header = replace(
        design,
        y=design.y[:0],
        trials=design.trials[:0],
        offset=design.offset[:0],
        X=design.X[:0],
        Z=design.Z[:0],
        group_codes=design.group_codes[:0],
        row_index=design.row_index[:0],
        source_positions=None,
    )
    return {
        "index": index,
        "gram": gram,
        "names": gram_names(design, family.is_ordinal),
        "header": header,
    }


def op_finalize(model_id: str, parts: list[int], spec: DesignSpec) -> list[dict]:
    """Drop the globally collinear columns; the partitions' summaries."""
    out = []
    with _LOCK:
        for i in parts:
            part = _MODELS[model_id][i]
            part.design = drop_columns(part.design, spec.dropped, spec.family.is_ordinal)
            out.append(summary(part.design, spec.family, part.weights))
    return out


def _max_threads() -> int:
    """Numba's thread pool size (numba.config sets it from the environment at import)."""
    return numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]


def _engine(model_id: str, i: int, key: str, setup: tuple) -> AGHQEngine | GLMObjective:
    part = _MODELS[model_id][i]
    engine = part.engines.get(key)
    if engine is None:
        if callable(setup[0]):  # another model's engine: a builder and its arguments
            engine = setup[0](part.design, *setup[1:])
        elif setup[0] == "pooled":
            engine = pooled_engine(part.design, setup[1], part.weights)
        else:
            family, structure, rule = setup[1:]
            engine = memory_engine(part.design, family, structure, rule, part.weights)
        part.engines[key] = engine
    return engine


def _aghq_engine(model_id: str, i: int, key: str, setup: tuple) -> AGHQEngine:
    """The partition's quadrature engine ``key`` (``setup`` is never the pooled GLM's)."""
    engine = _engine(model_id, i, key, setup)
    assert isinstance(engine, AGHQEngine)
    return engine


def _cluster_engine(model_id: str, i: int, key: str, setup: tuple) -> Engine:
    """The partition's engine ``key`` that answers per cluster (quadrature, or another
    model's engine such as the conditional logit's; never the pooled GLM)."""
    engine = _engine(model_id, i, key, setup)
    assert not isinstance(engine, GLMObjective)
    return cast(Engine, engine)


@contextmanager
def partition_engines(
    model_id: str, parts: list[int], key: str, setup: tuple, threads: int | None = None
) -> Iterator[list[tuple[int, Any]]]:
    """This worker's engines ``key`` of partitions ``parts`` (built on first use), under the
    registry's lock, with numba's threads set to ``threads``."""
    with _LOCK:
        if threads is not None:
            numba.set_num_threads(max(1, min(threads, _max_threads())))
        yield [(i, _engine(model_id, i, key, setup)) for i in parts]


def op_configure(model_id: str, parts: list[int], key: str, setup: tuple, attrs: dict) -> None:
    """Set attributes of this worker's engines ``key`` (the Laplace engine's ``exact``)."""
    with partition_engines(model_id, parts, key, setup) as engines:
        for _, engine in engines:
            for name, value in attrs.items():
                setattr(engine, name, value)


def op_evaluate(
    model_id: str,
    parts: list[int],
    key: str,
    setup: tuple,
    params: np.ndarray,
    order: int,
    threads: int,
) -> tuple[float, np.ndarray | None, np.ndarray | None]:
    """This worker's sums of the log-likelihood, gradient and Hessian over its partitions."""
    ll, grad, hess = 0.0, None, None
    with _LOCK:
        numba.set_num_threads(max(1, min(threads, _max_threads())))
        for i in parts:
            ev = _engine(model_id, i, key, setup)(params, order)
            ll += ev.loglik
            if ev.gradient is not None:
                grad = ev.gradient.copy() if grad is None else grad + ev.gradient
            if ev.hessian is not None:
                hess = ev.hessian.copy() if hess is None else hess + ev.hessian
    return ll, grad, hess


def op_adopt(model_id: str, parts: list[int], key: str, setup: tuple, source: str) -> None:
    """Warm-start engine ``key`` from engine ``source`` (the coarse fit's modes)."""
    with _LOCK:
        for i in parts:
            target = _aghq_engine(model_id, i, key, setup)
            coarse = _MODELS[model_id][i].engines[source]
            assert isinstance(coarse, AGHQEngine)
            target.warm_start(coarse)


def _top_labels(design: ModelDesign | MultilevelDesign) -> np.ndarray:
    """The labels of a partition's top-level clusters, in its engines' order: the one
    group's, or a nested design's top factor's (a partition holds whole clusters)."""
    if isinstance(design, MultilevelDesign):
        return design.factors[design.order[0]].labels
    assert design.group is not None
    return design.group.labels


def op_clusters(
    model_id: str,
    parts: list[int],
    key: str,
    setup: tuple,
    params: np.ndarray,
    what: str,
    threads: int,
) -> list[tuple]:
    """Per cluster, with its labels: ``contributions`` (log-likelihood and score) or the
    posterior ``means`` or ``modes`` of ``u`` with their covariances."""
    out = []
    with _LOCK:
        numba.set_num_threads(max(1, min(threads, _max_threads())))
        for i in parts:
            engine = _cluster_engine(model_id, i, key, setup)
            labels = _top_labels(_MODELS[model_id][i].design)
            if what == "contributions":
                c = engine.contributions(params)
                out.append((labels, c.loglik, c.score))
            else:
                (post,) = engine.posterior(params, what).values()
                out.append((labels, post.mean, post.cov))
    return out


def op_cluster_scores(
    model_id: str,
    parts: list[int],
    key: str,
    setup: tuple,
    params: np.ndarray,
    variable: str,
    threads: int,
) -> list[dict]:
    """Per partition the clusters' scores summed by the value of ``variable`` (a ``vce``
    cluster variable), with its missing values and whether it splits a cluster."""
    out: list[dict] = []
    with _LOCK:
        numba.set_num_threads(max(1, min(threads, _max_threads())))
        for i in parts:
            part = _MODELS[model_id][i]
            assert part.carried is not None
            values = part.carried[variable]
            n_missing = int(values.isna().sum())
            design = part.design
            first = values.to_numpy()[design.starts[:-1]]
            splits = bool(n_missing == 0 and np.any(values.to_numpy() != first[design.group_codes]))
            if n_missing or splits:
                out.append({"missing": n_missing, "splits": splits})
                continue
            score = _cluster_engine(model_id, i, key, setup).contributions(params).score
            codes, levels = pd.factorize(pd.Series(first), sort=True)
            sums = np.zeros((len(levels), score.shape[1]))
            np.add.at(sums, codes, score)
            out.append({"missing": 0, "splits": False, "levels": np.asarray(levels), "sums": sums})
    return out


def op_cross_products(model_id: str, parts: list[int]) -> list[tuple[np.ndarray, CrossProducts]]:
    """Per partition its clusters' labels and REML cross-products."""
    with _LOCK:
        designs = [_MODELS[model_id][i].design for i in parts]
        return [(d.group.labels, CrossProducts(d)) for d in designs]


def op_release(model_id: str) -> int:
    """Forget a model's designs and engines on this worker; how many partitions it held."""
    with _LOCK:
        return len(_MODELS.pop(model_id, {}))
