"""The data side of a Dask fit, on the client: read, restrict, shuffle once, agree globally.

Steps: the model's variables are checked against the Dask DataFrame's columns (the in-memory
messages); rows are restricted (``subset``) and only the model's columns kept; one shuffle on
the grouping variable puts every cluster whole in one partition; one pass counts the missing
values and collects the distinct values of the variables that become dummies (and of an
ordinal outcome); each partition then builds its design on its worker with those levels, and
the columns to omit for collinearity are decided on the summed ``X'X``.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.utils import format_time
from distributed import Client
from distributed.diagnostics.progressbar import TextProgressBar

from mixedglm.design.build import GroupInfo, ModelDesign, _formula_variables, _require_columns
from mixedglm.design.checks import check_offset_options, check_outcome_extent, combine_extents
from mixedglm.design.collinear import find_collinear_gram
from mixedglm.design.missing import dropped_note, missing_notes, no_rows_left
from mixedglm.design.weights import check_weight_counts, weight_roles
from mixedglm.errors import DataError, FormulaError, SubsetError
from mixedglm.families import Family
from mixedglm.families.ordinal import ordinal_outcome
from mixedglm.formula import ParsedFormula
from mixedglm.formula.idioms import Idioms, apply_idioms
from mixedglm.scale import partition as part
from mixedglm.scale.partition import DesignSpec


@dataclass(frozen=True)
class DistributedDesign(ModelDesign):
    """The global design's names and counts; its rows stay on the workers (``n_rows``)."""

    n_rows: int = 0

    @property
    def n_obs(self) -> int:
        return self.n_rows


@dataclass
class DistributedData:
    """A model's data on the cluster: where each partition's design lives, the global
    design, the sums behind the start values, and the lazy shuffled frame."""

    client: Client
    model_id: str
    spec: DesignSpec
    placement: dict[str, list[int]]
    threads: dict[str, int]
    design: DistributedDesign
    sums: dict
    lazy: dd.DataFrame
    n_partitions: int
    timings: dict = field(default_factory=dict)

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def release(self) -> None:
        """Forget the designs and engines on the workers."""
        self.client.run(part.op_release, self.model_id)


def as_dask_frame(data: object, npartitions: int | None = None) -> dd.DataFrame:
    """A Dask DataFrame from a Dask DataFrame, a pandas one, or a directory / glob / file of
    Parquet (or CSV) files."""
    if isinstance(data, dd.DataFrame):
        return data
    if isinstance(data, pd.DataFrame):
        return dd.from_pandas(data, npartitions=npartitions or 4, sort=False)
    if not isinstance(data, str | os.PathLike):
        raise DataError(
            "with engine='dask' the data must be a Dask or pandas DataFrame, or a directory "
            f"or glob of Parquet files, not {type(data).__name__}"
        )
    text = str(data)
    path = Path(text)
    if path.is_dir():
        files = sorted(glob.glob(os.path.join(text, "*.parquet")))
        if not files:
            raise DataError(f"directory '{text}' holds no .parquet files")
        return dd.read_parquet(files)
    files = sorted(glob.glob(text))
    if not files:
        raise DataError(f"no file matches '{text}'")
    if all(f.lower().endswith((".csv", ".csv.gz")) for f in files):
        return dd.read_csv(files)
    if all(f.lower().endswith(".parquet") for f in files):
        return dd.read_parquet(files)
    raise DataError(f"'{text}' must name Parquet (.parquet) or CSV (.csv) files")


def _idiom_data(frame: pd.DataFrame, parsed: ParsedFormula, options: dict) -> pd.DataFrame:
    return apply_idioms(parsed, frame, **options).data


def with_idioms(
    ddf: dd.DataFrame,
    parsed: ParsedFormula,
    *,
    offset: str | None = None,
    trials: str | None = None,
    allow_cbind: bool = True,
) -> tuple[dd.DataFrame, Idioms]:
    """``cbind()`` and ``offset()`` in the formula, as in memory: the new formula and names
    from the columns (the frame's meta), the derived columns made per partition."""
    options: dict[str, Any] = {"offset": offset, "trials": trials, "allow_cbind": allow_cbind}
    idioms = apply_idioms(parsed, ddf._meta, **options)
    if idioms.data is ddf._meta:
        return ddf, idioms
    return ddf.map_partitions(_idiom_data, parsed, options, meta=idioms.data), idioms


def _is_text(dtype: np.dtype | pd.api.extensions.ExtensionDtype) -> bool:
    return pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)


def level_columns(parsed: ParsedFormula, meta: pd.DataFrame, variables: list[str]) -> list[str]:
    """The variables that formulaic turns into dummies: text, categoricals and ``C(x)``."""
    exprs = [parsed.fixed] + [t.expr for t in parsed.random]
    out = []
    for name in variables:
        dtype = meta[name].dtype
        wrapped = [re.search(rf"C\(\s*{re.escape(name)}\s*[,)]", e) for e in exprs]
        if _is_text(dtype) or isinstance(dtype, pd.CategoricalDtype):
            out.append(name)
        elif any(wrapped):
            rest = " ".join(re.sub(rf"C\(\s*{re.escape(name)}\s*(,[^)]*)?\)", "", e) for e in exprs)
            if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", rest):
                raise FormulaError(
                    f"variable '{name}' is used both as a number and inside C(): on Dask the "
                    "levels of C() are agreed over all partitions by converting the column; "
                    f"make a copy of '{name}' for one of the two uses"
                )
            out.append(name)
    return out


def _levels(name: str, found: list[tuple[str, tuple]]) -> tuple:
    """Global levels of one variable from the partitions' distinct values."""
    if any(kind == "categories" for kind, _ in found):
        seen: dict = {}
        for _, values in found:
            seen.update(dict.fromkeys(values))
        return tuple(seen)
    distinct = {v for _, vs in found for v in vs}
    try:
        return tuple(sorted(distinct))
    except TypeError as err:
        raise DataError(f"variable '{name}' mixes values that cannot be ordered: {err}") from err


def _outcome(name: str, found: list[tuple]) -> tuple[tuple, tuple, list[str]]:
    """An ordinal outcome's categories (for the family, for coding) and notes."""
    observed = [v for o in found if o is not None for v in o[2]]
    cats = next((o[1] for o in found if o is not None and o[0] == "categories"), None)
    if cats is not None:
        column = pd.Series(pd.Categorical(list(dict.fromkeys(observed)), categories=list(cats)))
        _, categories, notes = ordinal_outcome(column, name)
        return categories, tuple(cats), notes
    unique = np.unique(np.asarray(observed, dtype=float))
    _, categories, notes = ordinal_outcome(pd.Series(unique), name)
    return categories, tuple(unique), notes


class _StageBar(TextProgressBar):
    """Dask's text progress bar on standard error with the stage's name (standard output
    keeps the iteration log, identical to the in-memory fit's)."""

    def __init__(self, futures: list, stage: str) -> None:
        self.stage = stage
        super().__init__(futures, interval="200ms")

    def _draw_bar(self, remaining: int, all: int, **kwargs) -> None:
        frac = (1 - remaining / all) if all else 1.0
        bar = "#" * int(self.width * frac)
        sys.stderr.write(
            f"\r{self.stage:<8} [{bar:<{self.width}}] | {int(100 * frac)}% | "
            f"{format_time(self.elapsed)}"
        )
        sys.stderr.flush()

    def _draw_stop(self, **kwargs) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def _progress(futures: list, show: bool, stage: str) -> None:
    if show and futures:
        _StageBar(futures, stage)


def shuffle_by(
    client: Client,
    ddf: dd.DataFrame,
    group: str,
    columns: list[str],
    subset: str | None,
    show_progress: bool,
) -> tuple[list, dd.DataFrame, float]:
    """Restrict the rows (``subset``) and columns, shuffle once on ``group`` so that every
    cluster lies whole in one partition, and compute it on the workers: the partitions'
    futures, the lazy shuffled frame (for results computed later) and the seconds taken."""
    meta = ddf._meta
    restricted = ddf.map_partitions(part.restrict, subset, columns, meta=meta[columns])
    shuffled = restricted.shuffle(on=group.split(":") if ":" in group else group)
    t0 = time.perf_counter()
    futures = client.compute(shuffled.to_delayed())
    _progress(futures, show_progress, "shuffle")
    client.gather(client.map(len, futures))  # wait for the shuffle (and read) to finish
    return futures, shuffled, time.perf_counter() - t0


def map_gather(client: Client, func, futures: list, show_progress: bool, stage: str, **kw) -> list:
    """``func`` on every partition (its future), with a progress bar; the results."""
    mapped = client.map(func, futures, **kw)
    _progress(mapped, show_progress, stage)
    return client.gather(mapped)


def build_on_workers(
    client: Client, op, futures: list, spec: object, show_progress: bool
) -> tuple[str, dict[str, list[int]], list[dict]]:
    """Run ``op(frame, spec, model_id, index)`` on every partition, which keeps its state in
    its worker's memory: the model id, which partitions each worker holds, and the results
    of the partitions that kept any rows (``op`` returns ``None`` for an empty one)."""
    model_id = uuid.uuid4().hex
    builds = [client.submit(op, f, spec, model_id, i, pure=False) for i, f in enumerate(futures)]
    _progress(builds, show_progress, "design")
    try:
        built = client.gather(builds)
    except BaseException:
        client.run(part.op_release, model_id)  # no state left behind on the workers
        raise
    who = client.who_has(builds)
    placement: dict[str, list[int]] = {}
    for fut, b in zip(builds, built, strict=True):
        if b is not None:
            placement.setdefault(sorted(who[fut.key])[0], []).append(b["index"])
    return model_id, placement, [b for b in built if b is not None]


def worker_threads(client: Client, placement: dict[str, list[int]]) -> dict[str, int]:
    """The threads of each worker holding partitions (the numba kernels' threads)."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return {w: int(workers[w]["nthreads"]) for w in placement}


def on_holders(client: Client, placement: dict[str, list[int]], op, model_id: str, *args) -> list:
    """``op(model_id, partitions, *args)`` on every worker holding partitions of a model,
    pinned to it; the per-partition lists it returns, concatenated in worker order."""
    futures = {
        w: client.submit(
            op, model_id, ids, *args, workers=[w], allow_other_workers=False, pure=False
        )
        for w, ids in placement.items()
    }
    return [s for w in sorted(futures) for s in futures[w].result()]


def total_missing(stats: list[dict], columns: list[str]) -> dict[str, int]:
    """Missing values per variable, summed over the partitions' ``missing`` counts."""
    return {c: sum(int(s["missing"][c]) for s in stats) for c in columns}


@dataclass
class Agreed:
    """The data agreed over all partitions before the designs are built: the spec with the
    global levels, the partitions' futures, the lazy shuffled frame, the family (an ordinal
    outcome's categories), the notes, the rows read and kept, the seconds taken."""

    spec: DesignSpec
    futures: list
    lazy: dd.DataFrame
    family: Family
    notes: list[str]
    rows: int
    kept: int
    t_shuffle: float
    t0: float


def model_columns(
    parsed: ParsedFormula,
    meta: pd.DataFrame,
    groups: list[str],
    where: dict[str, str],
    *,
    offset: str | None,
    exposure: str | None,
    trials: str | None,
) -> tuple[list[str], list[str], list[str], list[str]]:
    """The model's variables, checked against the data (``where``: each one's role in the
    messages): all of them, those of the fixed part, of the random part, and the offset,
    exposure and trials variables."""
    fixed_vars = _formula_variables(parsed.fixed, meta, "fixed part")
    random_vars = []
    for term in parsed.random:
        random_vars += _formula_variables(term.expr, meta, f"random-effect term {term.text}")
    check_offset_options(offset, exposure)
    extra = [v for v in (offset, exposure, trials) if v is not None]
    for role, name in (("offset", offset), ("exposure", exposure), ("trials", trials)):
        if name is not None:
            where[name] = f"{role} variable"
    wanted = list(dict.fromkeys([parsed.response, *fixed_vars, *random_vars, *groups, *extra]))
    _require_columns(wanted, meta, where)
    return wanted, fixed_vars, random_vars, extra


def agree(
    client: Client,
    ddf: dd.DataFrame,
    parsed: ParsedFormula,
    family: Family,
    *,
    group: str,
    where: dict[str, str],
    offset: str | None,
    exposure: str | None,
    trials: str | None,
    subset: str | None,
    show_progress: bool,
    partitioned: list | None = None,
    group_columns: tuple[str, ...] = (),
    carried: tuple[str, ...] = (),
    weights: tuple[str | None, str | None, str | None] = (None, None, None),
) -> Agreed:
    """Check the variables, shuffle once on ``group`` (every cluster of it whole in one
    partition; ``a:b`` shuffles on both columns) and agree on the levels and the outcome's
    categories; ``group_columns``: a multilevel model's grouping variables (``group`` by
    default); ``rows`` are those left after its first dropping (see
    :func:`~mixedglm.scale.partition.partition_stats`); ``carried``: columns kept with
    the rows and ``weights`` the weight variables (see
    :class:`~mixedglm.scale.partition.DesignSpec`), checked as in memory."""
    meta = ddf._meta
    groups = list(group_columns or (group,))
    wanted, fixed_vars, random_vars, extra = model_columns(
        parsed, meta, groups, where, offset=offset, exposure=exposure, trials=trials
    )
    level_cols = level_columns(
        parsed, meta, [v for v in dict.fromkeys(fixed_vars + random_vars) if v not in extra]
    )
    spec = DesignSpec(
        parsed, family, tuple(wanted), group, offset, exposure, trials,
        carried=tuple(carried), weights=weights,
    )  # fmt: skip

    t0 = time.perf_counter()
    if partitioned is None:
        columns = list(dict.fromkeys([*wanted, *carried]))
        futures, shuffled, t_shuffle = shuffle_by(
            client, ddf, group, columns, subset, show_progress
        )
    else:
        futures, shuffled, t_shuffle = partitioned, ddf, 0.0
    t0 += t_shuffle

    # a multilevel design drops the rows missing a grouping or random-effect variable first
    first = tuple(dict.fromkeys([*group_columns, *random_vars])) if group_columns else ()
    stats = map_gather(
        client, part.partition_stats, futures, show_progress, "levels",
        spec=spec, level_columns=level_cols, first=first,
    )  # fmt: skip
    rows = sum(s["rows"] for s in stats)
    if rows == 0:
        raise SubsetError(f"no observations satisfy the condition '{subset}'")
    check_weight_counts(weight_roles(*weights), [s["weights"] for s in stats])
    missing = total_missing(stats, wanted)
    kept = sum(s["kept"] for s in stats)
    if kept == 0:
        raise no_rows_left(rows, missing)
    levels = agreed_levels(stats, level_cols)
    dropped_first = sum(s["first"][0] for s in stats)
    notes = []
    if dropped_first:
        counts = total_missing([{"missing": s["first"][1]} for s in stats], list(first))
        detail = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        notes.append(dropped_note(dropped_first, f"missing values ({detail})"))
    notes += missing_notes(missing, rows - dropped_first - kept)
    outcome_categories = None
    fam = family
    if family.is_ordinal:
        categories, outcome_categories, outcome_notes = _outcome(
            parsed.response, [s["outcome"] for s in stats if s["kept"]]
        )
        fam = family.with_categories(categories)
        notes += outcome_notes
    else:
        notes += outcome_note(meta, parsed.response)
    spec = replace(spec, levels=levels, outcome_categories=outcome_categories)
    return Agreed(spec, futures, shuffled, fam, notes, rows - dropped_first, kept, t_shuffle, t0)


def build_agreed(
    client: Client, op, agreed: Agreed, show_progress: bool
) -> tuple[str, dict[str, list[int]], list[dict]]:
    """Build the partitions' designs with ``op`` (see :func:`build_on_workers`) and decide
    the columns omitted for collinearity on the summed ``X'X`` (``agreed``'s spec and notes
    updated; its futures released)."""
    model_id, placement, done = build_on_workers(
        client, op, agreed.futures, agreed.spec, show_progress
    )
    agreed.futures = []
    gram = sum(b["gram"] for b in done)
    names = done[0]["names"]
    dropped = tuple(names[j] for j in find_collinear_gram(gram))
    agreed.notes += [f"note: {n} omitted because of collinearity" for n in dropped]
    agreed.spec = replace(agreed.spec, dropped=dropped)
    return model_id, placement, done


def distribute(
    client: Client, ddf: dd.DataFrame, parsed: ParsedFormula, family: Family, **options: Any
) -> DistributedData:
    """Shuffle, agree and build: the model's designs on the workers (module docstring).

    ``options``: :func:`agree`'s ``offset``, ``exposure``, ``trials``, ``subset``,
    ``show_progress`` and ``partitioned``: the futures of ``ddf``'s partitions already on the
    workers with every cluster whole in one partition (and ``subset`` applied), so that no
    shuffle is needed (the hybrid model's decomposed data).
    """
    meta = ddf._meta
    if parsed.response not in meta.columns:
        raise DataError(f"outcome '{parsed.response}' not found in the data")
    groups = parsed.groups
    if len(groups) != 1:
        raise FormulaError(
            "engine='dask' fits models with one grouping variable or nested ones (their "
            "top-level clusters are independent): crossed grouping factors do not split into "
            "independent clusters, so their likelihood cannot be summed partition by "
            "partition; fit them in memory"
            if groups
            else "the formula has no random-effect term: add one such as (1 | group)"
        )
    group = groups[0]
    where = {group: "grouping variable"}
    agreed = agree(client, ddf, parsed, family, group=group, where=where, **options)
    show = bool(options.get("show_progress"))
    model_id, placement, done = build_agreed(client, part.op_build, agreed, show)
    spec, fam, notes, shuffled = agreed.spec, agreed.family, agreed.notes, agreed.lazy
    try:
        data = _finalize(client, model_id, spec, placement, done[0]["header"], fam, notes, shuffled)
    except BaseException:
        client.run(part.op_release, model_id)  # no design left behind on the workers
        raise
    data.design = replace(data.design, n_dropped_missing=agreed.rows - agreed.kept)
    data.timings = {"shuffle": agreed.t_shuffle, "design": time.perf_counter() - agreed.t0}
    return data


def agreed_levels(stats: list[dict], columns: list[str]) -> tuple[tuple[str, tuple], ...]:
    """The global levels of the variables that become dummies, from the partitions that
    kept rows."""
    return tuple((c, _levels(c, [s["values"][c] for s in stats if s["kept"]])) for c in columns)


def outcome_note(meta: pd.DataFrame, response: str) -> list[str]:
    """The in-memory note about a two-category outcome's 0/1 coding."""
    col = meta[response]
    if isinstance(col.dtype, pd.CategoricalDtype) and len(col.cat.categories) == 2:
        cats = list(col.cat.categories)
        return [f"note: outcome {response} coded 0 = {cats[0]}, 1 = {cats[1]}"]
    return []


def _finalize(
    client: Client,
    model_id: str,
    spec: DesignSpec,
    placement: dict[str, list[int]],
    header: ModelDesign,
    family: Family,
    notes: list[str],
    lazy: dd.DataFrame,
) -> DistributedData:
    threads = worker_threads(client, placement)
    sums = on_holders(client, placement, part.op_finalize, model_id, spec)
    labels = np.concatenate([s["labels"] for s in sums])
    sizes = np.concatenate([s["sizes"] for s in sums])
    order = np.argsort(labels, kind="stable")
    ginfo = GroupInfo(spec.group, labels[order], sizes[order])
    if ginfo.n_groups < 2:
        raise DataError(
            f"grouping variable '{spec.group}' has a single group in the estimation sample: a "
            "random-effects model needs at least two groups"
        )
    check_slopes(header.z_names, sums, f"group of '{spec.group}'")
    header = part.drop_columns(header, spec.dropped, family.is_ordinal)
    design = design_header(header, sums, family, notes, group=ginfo)
    return DistributedData(
        client,
        model_id,
        spec,
        placement,
        threads,
        design,
        totals(sums, family),
        lazy,
        lazy.npartitions,
    )


def check_slopes(names: tuple[str, ...], sums: list[dict], where: str) -> None:
    """A random slope constant within every cluster (``where``: ``group of 'g'``) is an
    error, from the partitions' ``z_within`` and ``z_max`` (the in-memory check)."""
    within = np.max([s["z_within"] for s in sums], axis=0)
    zmax = np.max([s["z_max"] for s in sums], axis=0)
    for j, name in enumerate(names):
        if name != "_cons" and within[j] <= 1e-12 * max(1.0, float(zmax[j])):
            raise DataError(
                f"random slope on '{name}' cannot be estimated: '{name}' is constant within "
                f"every {where}"
            )


def design_header(
    header: ModelDesign, sums: list[dict], family: Family, notes: list[str], **fields: Any
) -> DistributedDesign:
    """The global design without rows from a partition's header and the partitions'
    summaries (:func:`~mixedglm.scale.partition.summary`); ``fields`` override."""
    n = int(sum(s["n"] for s in sums))
    empty = np.zeros(0)
    return DistributedDesign(
        **{
            **{f: getattr(header, f) for f in ModelDesign.__dataclass_fields__},
            "y": empty,
            "trials": empty,
            "offset": empty,
            "X": np.zeros((0, len(header.x_names))),
            # one row whose squares are the mean squares of all the rows: the random
            # effects' scales (fit_glmm's start values and boundary check)
            "Z": np.sqrt(np.sum([s["zsq"] for s in sums], axis=0) / n)[None, :],
            "group_codes": np.zeros(0, dtype=np.int64),
            "starts": np.zeros(1, dtype=np.int64),
            "row_index": pd.RangeIndex(0),
            "source_positions": None,
            "notes": tuple(notes),
            "n_dropped_missing": 0,
            "categories": family.categories,
            **fields,
        },
        n_rows=n,
    )


def totals(sums: list[dict], family: Family) -> dict:
    """The partitions' sums behind the pooled GLM's start values, added, and the estimation
    sample's signature (its rows and the sum of their hashes: ``sample`` in the JSON)."""
    n = int(sum(s["n"] for s in sums))
    return {
        "n": n,
        "zsq": np.sum([s["zsq"] for s in sums], axis=0),
        "ones": np.all([s["ones"] for s in sums], axis=0),
        "sums": np.sum([s["sums"] for s in sums], axis=0),
        "counts": np.sum([s["counts"] for s in sums], axis=0) if family.is_ordinal else None,
        "outcome": combine_extents([s["outcome"] for s in sums]),
        "sample": f"dask:{n}:{sum(s['sample'] for s in sums) % 2**64:016x}",
        "weighted": None
        if sums[0]["weighted"] is None
        else np.sum([s["weighted"] for s in sums], axis=0),
    }


def check_distributed_outcome(sums: dict, design: ModelDesign, family: Family) -> None:
    """The in-memory refusal of an outcome with nothing to model, from the partitions'
    added :func:`~mixedglm.design.checks.outcome_extent`."""
    check_outcome_extent(sums["outcome"], design.response, family.name, design.binomial_trials)
