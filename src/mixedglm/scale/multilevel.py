"""Nested models on Dask, the data side: whole top-level clusters per partition.

The rows are shuffled once on the top-level factor (``comm`` in ``(1 | comm/mom)``), so that
every top-level cluster, and with it every unit of the lower levels, lies whole in one
partition. The fixed effects' factor levels are agreed over all partitions as for one
grouping factor (:func:`~mixedglm.scale.frame.agree`); each partition then builds its
in-memory :class:`~mixedglm.design.multilevel.MultilevelDesign` with its own (local) codes of
the grouping factors. The client collects each factor's units (their key values, sizes and
random-effect scales) and puts them in the in-memory order (sorted by the factor's columns):
the group summary, the random effects' labels and the order of the levels (by their global
numbers of units, as :func:`~mixedglm.design.multilevel.nesting_order`) are the in-memory
ones. Nesting the formula does not write (``(1 | school) + (1 | class)``) is decided first on
the estimation sample, as in memory (:func:`data_top_factor`). Crossed factors are refused:
they do not split into independent clusters. After the fit, :func:`design_for` rebuilds a
partition's design for the lazy random effects and predictions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from itertools import pairwise

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client

from mixedglm.design.multilevel import (
    FactorDesign,
    MultilevelDesign,
    _display_names,
    build_multilevel_design,
)
from mixedglm.errors import DataError, FormulaError
from mixedglm.families import Family
from mixedglm.formula import ParsedFormula
from mixedglm.scale import frame as fr
from mixedglm.scale import partition as part
from mixedglm.scale.partition import DesignSpec


@dataclass(frozen=True)
class NestedSpec(DesignSpec):
    """A partition's recipe for a nested design: ``cov`` as given to ``glmm()``, ``order``
    the factors from the top (decided on the client from the global numbers of units)."""

    cov: object = None
    order: tuple[int, ...] = ()


@dataclass(frozen=True)
class CountedFactor(FactorDesign):
    """A factor without rows: its global labels and the observations per level."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def sizes(self) -> np.ndarray:
        return self.counts


@dataclass
class NestedData:
    """A nested model's data on the cluster: the distributed data (engines, sums), the
    global design without rows, each factor's random-effect scales."""

    data: fr.DistributedData
    design: MultilevelDesign
    scales: list[np.ndarray]


def crossed_message(groups: tuple[str, ...]) -> str:
    """Why crossed factors are refused on Dask, and what to do."""
    return (
        f"engine='dask' fits nested grouping factors (written as nested, (1 | a/b) or "
        f"(1 | a) + (1 | a:b), or nested in the data); {', '.join(groups)} are crossed: "
        "crossed random effects do not split into independent clusters, so their "
        "likelihood cannot be summed partition by partition; fit them in memory"
    )


def top_factor(parsed: ParsedFormula) -> str | None:
    """The top-level factor of a formula whose nesting is written: each factor's columns
    lie in the next finer one's (``comm`` < ``comm:mom`` < ``comm:mom:kid``); ``None``
    when it is not (the factors may still be nested in the data: :func:`data_top_factor`)."""
    groups = parsed.groups
    if not groups:
        raise FormulaError("the formula has no random-effect term: add one such as (1 | group)")
    cols = [set(g.split(":")) for g in groups]
    chain = sorted(range(len(groups)), key=lambda k: (len(cols[k]), k))
    if any(not cols[a] < cols[b] for a, b in pairwise(chain)):
        return None
    return groups[chain[0]]


def data_top_factor(groups: tuple[str, ...], kept: dd.DataFrame) -> str:
    """The top-level factor of factors nested in the data (``(1 | school) + (1 | class)``
    with every class in one school), as the in-memory check
    (:func:`~mixedglm.design.multilevel.nesting_order`) decides on the estimation sample
    ``kept``: sorted by their numbers of levels, each factor's levels each occur with one
    level of the next coarser factor (as many distinct pairs as levels of the finer one).
    One pass counts the distinct values of every factor's and every pair's columns;
    crossed factors are refused (:func:`crossed_message`)."""
    cols = [tuple(sorted(set(g.split(":")))) for g in groups]
    keys = sorted({*cols, *(tuple(sorted({*a, *b})) for a in cols for b in cols if a != b)})
    counts = dict(zip(keys, dask.compute(*(_n_distinct(kept, k) for k in keys)), strict=True))
    n_levels = [counts[c] for c in cols]
    chain = sorted(range(len(groups)), key=lambda k: (n_levels[k], k))
    for outer, inner in pairwise(chain):
        if counts[tuple(sorted({*cols[inner], *cols[outer]}))] != n_levels[inner]:
            raise FormulaError(crossed_message(groups))
    return groups[chain[0]]


def _n_distinct(kept: dd.DataFrame, columns: tuple[str, ...]) -> object:
    """The number of distinct rows of ``columns`` (lazy)."""
    return kept[list(columns)].drop_duplicates().shape[0]


# -- the worker side ---------------------------------------------------------------------------
def _build(frame: pd.DataFrame, spec: NestedSpec, options: dict) -> tuple:
    """A partition's multilevel design and each factor's units' key values (local order)."""
    design = build_multilevel_design(
        spec.formula, frame, spec.family, cov=spec.cov, offset=spec.offset,
        exposure=spec.exposure, trials=spec.trials, part=options,
    )  # fmt: skip
    assert design.base.source_positions is not None
    rows = frame.iloc[design.base.source_positions]
    keys = []
    for f in design.factors:
        first = np.unique(f.codes, return_index=True)[1]
        keys.append(rows[list(f.columns)].iloc[first].reset_index(drop=True))
    return design, keys


def op_build(frame: pd.DataFrame, spec: NestedSpec, model_id: str, index: int) -> dict | None:
    """Build partition ``index``'s nested design, keep it in this worker; return its
    ``X'X``, header and the factors' units (their keys and header factors)."""
    made, gram = part.build_partition(frame, spec, True, _build)
    if made is None:
        return None
    design, keys = made
    part.keep(model_id, index, design)
    out = part.built(index, gram, design.base, spec.family)
    out["keys"] = keys
    out["factors"] = [replace(f, codes=f.codes[:0], Z=f.Z[:0]) for f in design.factors]
    return out


def op_finalize(model_id: str, parts: list[int], spec: NestedSpec) -> list[dict]:
    """Drop the globally collinear columns and set the global order of the levels; the
    partitions' summaries (the base design's, then per factor sizes, scales and the
    within-level spread of the random-effect columns)."""
    out = []
    for i in parts:
        design = finalized(part.kept(model_id, i), spec)
        part.keep(model_id, i, design)
        summary = part.summary(design.base, spec.family)
        summary["index"] = i
        summary["factors"] = [_factor_summary(f) for f in design.factors]
        out.append(summary)
    return out


def finalized(design: MultilevelDesign, spec: NestedSpec) -> MultilevelDesign:
    """A partition's design as fitted: without the globally collinear columns, the factors
    in the global order from the top (and Stata's names in that order)."""
    base = part.drop_columns(design.base, spec.dropped, spec.family.is_ordinal)
    display = tuple(_display_names(list(design.factors), True, spec.order))
    return replace(design, base=base, nested=True, order=spec.order, display=display)


def design_for(frame: pd.DataFrame, spec: NestedSpec) -> MultilevelDesign | None:
    """A partition's final design (for the lazy random effects and predictions)."""
    made, _ = part.build_partition(frame, spec, False, _build)
    return None if made is None else finalized(made[0], spec)


def _factor_summary(f: FactorDesign) -> dict:
    sizes = f.sizes
    means = np.stack([np.bincount(f.codes, weights=c, minlength=f.n_levels) for c in f.Z.T], 1)
    within = np.abs(f.Z - (means / sizes[:, None])[f.codes])
    return {
        "n": f.codes.shape[0],
        "sizes": sizes,
        "zsq": np.sum(f.Z**2, axis=0),
        "z_within": np.max(within, axis=0),
        "z_max": np.max(np.abs(f.Z), axis=0),
    }


# -- the client side ---------------------------------------------------------------------------
def distribute_nested(
    client: Client,
    ddf: dd.DataFrame,
    parsed: ParsedFormula,
    family: Family,
    *,
    cov: object,
    offset: str | None,
    exposure: str | None,
    trials: str | None,
    subset: str | None,
    show_progress: bool,
) -> NestedData:
    """Shuffle on the top-level factor, agree, build: the nested designs on the workers."""
    if parsed.response not in ddf._meta.columns:
        raise DataError(f"outcome '{parsed.response}' not found in the data")
    top = top_factor(parsed)
    columns = tuple(dict.fromkeys(c for t in parsed.random for c in t.factors))
    where = {c: f"grouping variable in {t.text}" for t in parsed.random for c in t.factors}
    if top is None:  # nesting not written: decided on the estimation sample
        wanted = fr.model_columns(
            parsed, ddf._meta, list(columns), dict(where), offset=offset, exposure=exposure,
            trials=trials,
        )[0]  # fmt: skip
        kept = ddf.map_partitions(part.restrict, subset, wanted, meta=ddf._meta[wanted])
        top = data_top_factor(parsed.groups, kept.dropna())
    agreed = fr.agree(
        client, ddf, parsed, family, group=top, where=where, offset=offset, exposure=exposure,
        trials=trials, subset=subset, show_progress=show_progress, group_columns=columns,
    )  # fmt: skip
    agreed.spec = NestedSpec(**vars(agreed.spec), cov=cov)
    model_id, placement, done = fr.build_agreed(client, op_build, agreed, show_progress)
    try:
        nested = _finalize(client, model_id, agreed, placement, done)
    except BaseException:
        client.run(part.op_release, model_id)  # no design left behind on the workers
        raise
    nested.data.timings = {"shuffle": agreed.t_shuffle, "design": time.perf_counter() - agreed.t0}
    return nested


def _global_units(done: list[dict], k: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Factor ``k``'s labels in the in-memory order (sorted by its columns) and the
    permutation from the partitions' units (partition order) to it."""
    keys = pd.concat([b["keys"][k] for b in done], ignore_index=True)
    order = keys.sort_values(list(keys.columns), kind="stable").index.to_numpy()
    keys = keys.iloc[order]
    if keys.shape[1] == 1:
        labels = keys.iloc[:, 0].to_numpy()
    else:
        rows = keys.itertuples(index=False, name=None)
        labels = np.array([":".join(str(v) for v in r) for r in rows], dtype=object)
    if labels.shape[0] < 2:
        raise DataError(
            f"grouping factor '{name}' has a single level in the estimation sample: a "
            "random effect needs at least two"
        )
    return labels, order


def _finalize(
    client: Client,
    model_id: str,
    agreed: fr.Agreed,
    placement: dict[str, list[int]],
    done: list[dict],
) -> NestedData:
    done = sorted(done, key=lambda b: b["index"])
    headers: list[FactorDesign] = done[0]["factors"]
    units = [_global_units(done, k, f.name) for k, f in enumerate(headers)]
    n_levels = [u[0].shape[0] for u in units]
    order = tuple(sorted(range(len(headers)), key=lambda k: (n_levels[k], k)))
    assert isinstance(agreed.spec, NestedSpec)
    spec = replace(agreed.spec, order=order)
    sums = sorted(
        fr.on_holders(client, placement, op_finalize, model_id, spec), key=lambda s: s["index"]
    )
    factors: list[FactorDesign] = []
    scales = []
    for k, f in enumerate(headers):
        per = [s["factors"][k] for s in sums]
        fr.check_slopes(f.structure.columns, per, f"level of '{f.name}'")
        labels, perm = units[k]
        counts = np.concatenate([s["sizes"] for s in per])[perm]
        factors.append(_counted(f, labels, counts))
        n = sum(s["n"] for s in per)
        scales.append(np.sqrt(np.sum([s["zsq"] for s in per], axis=0) / n))
    fam = agreed.family
    header = part.drop_columns(done[0]["header"], spec.dropped, fam.is_ordinal)
    base = fr.design_header(header, sums, fam, agreed.notes, group=None)
    base = replace(base, n_dropped_missing=agreed.rows - agreed.kept)
    display = _display_names(factors, True, order)
    design = MultilevelDesign(base, tuple(factors), True, order, tuple(display))
    data = fr.DistributedData(
        client,
        model_id,
        spec,
        placement,
        fr.worker_threads(client, placement),
        base,
        fr.totals(sums, fam),
        agreed.lazy,
        agreed.lazy.npartitions,
    )
    return NestedData(data, design, scales)


def _counted(f: FactorDesign, labels: np.ndarray, counts: np.ndarray) -> CountedFactor:
    return CountedFactor(f.name, f.codes, labels, f.Z, f.structure, f.terms, f.specs, counts=counts)
