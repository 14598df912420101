"""``clogit()`` and ``xtpoisson_fe()`` on Dask: the in-memory fit, each evaluation summed
over the workers.

The rows are shuffled once on the group variable (:func:`~mixedglm.scale.frame.shuffle_by`),
the factor levels agreed, and each partition builds and keeps its within-group design
(:mod:`mixedglm.scale.conditional`). The client decides what needs all the groups (Stata's
notes about uninformative groups, the omitted covariates) and runs the in-memory Newton
(:func:`~mixedglm.models.conditional.maximize_conditional`) on a
:class:`~mixedglm.engines.dask_engine.DaskEngine`: one map over the workers and one sum per
step, so the iteration log is the in-memory one. Robust standard errors sum the per-group
scores (gathered once) into the sandwich.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd

from mixedglm.design.build import GroupInfo, _formula_variables, _require_columns
from mixedglm.design.checks import pair_separation_notes, separation_suspected
from mixedglm.design.missing import dropped_note, missing_notes, no_rows_left
from mixedglm.design.within import add_counts, informative_notes, select_columns
from mixedglm.engines.dask_engine import DaskEngine
from mixedglm.errors import DataError, SubsetError
from mixedglm.formula import parse_formula
from mixedglm.inference import NOT_DEFINITE_NOTE
from mixedglm.inference.robust import VCEInfo, parse_vce, sandwich
from mixedglm.models.conditional import (
    _COMMAND,
    _check_group,
    _design_family,
    _fixed_terms,
    maximize_conditional,
    request_fields,
    stata_term_name,
)
from mixedglm.options import FitOptions
from mixedglm.results.conditional import stata_note_lines
from mixedglm.results.dask_conditional import DaskConditionalResults
from mixedglm.scale import conditional as cond
from mixedglm.scale import partition as part
from mixedglm.scale.frame import (
    DistributedData,
    agreed_levels,
    as_dask_frame,
    build_on_workers,
    level_columns,
    map_gather,
    on_holders,
    outcome_note,
    shuffle_by,
    total_missing,
    with_idioms,
    worker_threads,
)
from mixedglm.scale.partition import DesignSpec
from mixedglm.scale.session import dask_client

MAX_PAIRS = 500_000  # the separation check's limit, as in memory


def _carried(meta: pd.DataFrame, vce: str | None, group: str, weights: str | None):
    """The ``vce`` cluster variable (unless it is the group) and the group weights, checked
    against the data's columns with the in-memory messages."""
    choice = parse_vce(vce)
    cluster = choice[1] if choice is not None and choice[1] not in (None, group) else None
    if cluster is not None and cluster not in meta.columns:
        raise DataError(f"cluster variable '{cluster}' not found in the data")
    if weights is not None and weights not in meta.columns:
        raise DataError(f"group weight variable '{weights}' not found in the data")
    return cluster


def _robust(cov, engine, beta, vce, group, fin, order) -> tuple[np.ndarray, VCEInfo]:
    """The sandwich from the per-group scores (gathered once, in label order)."""
    kind, variable = parse_vce(vce)  # type: ignore[misc]
    scores = engine.contributions(beta).score
    if variable is None or variable == group:
        out, g = sandwich(cov, scores)
        return out, VCEInfo(kind, group, g)
    n_missing = sum(f["cluster_missing"] for f in fin)
    if n_missing:
        raise DataError(
            f"cluster variable '{variable}' is missing in {n_missing} observation"
            f"{'s' if n_missing != 1 else ''} of the estimation sample"
        )
    values = np.concatenate([f["cluster"] for f in fin])[order]
    codes, _ = pd.factorize(pd.Series(values), sort=True)
    out, g = sandwich(cov, scores, codes.astype(np.int64))
    return out, VCEInfo(kind, variable, g)


def _separation(client, dist, kept_names, reach, beta, se) -> list[str]:
    """The in-memory separation check: suspected from the columns' reach, confirmed on the
    pairs of events and non-events gathered from the partitions (up to ``MAX_PAIRS``)."""
    if not separation_suspected(reach[None, :], kept_names, beta, se):
        return []
    pairs = on_holders(client, dist.placement, cond.op_pairs, dist.model_id, MAX_PAIRS)
    if any(p is None for p in pairs) or sum(int((p[1] != 0).sum()) for p in pairs) > MAX_PAIRS:
        return []
    rows = np.vstack([p[0] for p in pairs])
    return pair_separation_notes(rows, np.concatenate([p[1] for p in pairs]), kept_names)


def fit_conditional_on_dask(
    kind: str,
    formula: str,
    data: object,
    group: str | None,
    opts: FitOptions,
    *,
    eform: bool,
    group_weights: str | None,
) -> DaskConditionalResults:
    """``clogit()`` / ``xtpoisson_fe()`` with ``engine="dask"``: read, shuffle, agree,
    build on the workers, fit on the client, release."""
    command = _COMMAND[kind]
    log, quiet, exposure, subset = opts.log, opts.quiet, opts.exposure, opts.subset
    with dask_client(opts.scheduler, opts.workers) as client:
        ddf, idioms = with_idioms(
            as_dask_frame(data), parse_formula(formula), offset=opts.offset, allow_cbind=False
        )
        parsed, offset = idioms.formula, idioms.offset
        fixed, explicit_constant = _fixed_terms(parsed, command)
        meta = ddf._meta
        group = _check_group(meta, group, command)
        cluster = _carried(meta, opts.vce, group, group_weights)
        parsed = replace(parsed, fixed=fixed)
        where = {n: f"{r} variable" for r, n in (("offset", offset), ("exposure", exposure)) if n}
        variables = _formula_variables(fixed, meta, "fixed part")
        wanted = list(dict.fromkeys([parsed.response, *variables, *where]))
        _require_columns(wanted, meta, where)
        levels_of = level_columns(parsed, meta, [v for v in variables if v not in where])
        spec = cond.ConditionalSpec(
            DesignSpec(parsed, _design_family(kind), tuple(wanted), group, offset, exposure),
            kind,
            cluster,
            group_weights,
        )
        columns = list(dict.fromkeys([*wanted, group, *(c for c in (cluster, group_weights) if c)]))
        futures, shuffled, t_shuffle = shuffle_by(
            client, ddf, group, columns, subset, log is not None
        )
        stats = map_gather(
            client, cond.group_stats, futures, log is not None, "levels",
            spec=spec, level_columns=levels_of,
        )  # fmt: skip
        notes = _sample_notes(stats, wanted, group, subset, explicit_constant, meta, parsed)
        spec = replace(spec, design=replace(spec.design, levels=agreed_levels(stats, levels_of)))
        model_id, placement, done = build_on_workers(
            client, cond.op_build, futures, spec, log is not None
        )
        del futures
        try:
            res = _fit(client, model_id, placement, done, spec, notes, opts)
        finally:
            client.run(part.op_release, model_id)
        n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
    if log:
        log("")
    late, timings = res.pop("late_notes"), res.pop("timings")
    for note in late:
        if not quiet:
            print(note)
    return DaskConditionalResults(
        **request_fields(kind, parsed, offset, exposure, eform, opts.level),
        n_partitions=shuffled.npartitions,
        n_workers=n_workers,
        timings={"shuffle": t_shuffle, **timings},
        **res,
    )


def _sample_notes(stats, wanted, group, subset, explicit_constant, meta, parsed) -> list[str]:
    """The in-memory notes about the estimation sample, from the partitions' counts."""
    no_group = sum(s["no_group"] for s in stats)
    rows = sum(s["rows"] for s in stats)
    if rows + no_group == 0:
        raise SubsetError(f"no observations satisfy the condition '{subset}'")
    if rows == 0:
        raise DataError(f"group variable '{group}' is missing in every observation")
    notes: list[str] = []
    if explicit_constant:
        notes.append(
            f"note: the constant is conditioned away with the effects of {group}; "
            "dropped from the formula."
        )
    if no_group:
        notes.append(dropped_note(no_group, f"missing values of the group variable {group}"))
    missing = total_missing(stats, wanted)
    kept = sum(s["kept"] for s in stats)
    if kept == 0:
        raise no_rows_left(rows, missing)
    return notes + missing_notes(missing, rows - kept) + outcome_note(meta, parsed.response)


def _fit(client, model_id, placement, done, spec, notes, opts: FitOptions) -> dict:
    """Decide the groups and columns, maximise, and the results' fields."""
    quiet, vce = opts.quiet, opts.vce
    kind, group = spec.kind, spec.design.group
    names = done[0]["names"]
    stata_names = [stata_term_name(n) for n in names]
    counts = add_counts([b["counts"] for b in done])
    notes = notes + informative_notes(counts, kind, done[0]["response"])
    varies = np.any([b["varies"] for b in done], axis=0)
    candidates = np.flatnonzero(varies)
    gram = sum(b["gram"] for b in done)[np.ix_(candidates, candidates)]
    columns, omitted, column_notes = select_columns(stata_names, varies, gram, kind)
    notes += column_notes
    if not quiet:
        for note in notes:
            print("\n".join(stata_note_lines(note)))
    fin = on_holders(client, placement, cond.op_finalize, model_id, columns, spec)
    labels = np.concatenate([f["labels"] for f in fin])
    sizes = np.concatenate([f["sizes"] for f in fin])
    order = np.argsort(labels, kind="stable")
    dist = DistributedData(
        client, model_id, spec.design, placement, worker_threads(client, placement),
        None, {}, None, 0,  # type: ignore[arg-type]
    )  # fmt: skip
    engine = DaskEngine(dist, "conditional", (cond.conditional_engine,), len(columns))
    t0 = time.perf_counter()
    beta, ev, opt, loglik_0, cov, ok = maximize_conditional(
        engine, len(columns), maxiter=opts.maxiter, log=opts.log
    )
    vce_info = None
    if parse_vce(vce) is not None:
        cov, vce_info = _robust(cov, engine, beta, vce, group, fin, order)
    elapsed = time.perf_counter() - t0
    kept_names = [stata_names[j] for j in columns]
    se = np.sqrt(np.abs(np.diag(cov))) if cov.size else np.zeros(0)
    reach = np.max([f["reach"] for f in fin], axis=0)
    late = _separation(client, dist, kept_names, reach, beta, se)
    all_notes = notes + late + ([] if ok else [NOT_DEFINITE_NOTE])
    opt.warn_if_not_converged(stacklevel=4)
    n_rows = sum(b["rows"] for b in done)
    return {
        "response": done[0]["response"],
        "group": GroupInfo(group, labels[order], sizes[order]),
        "names": tuple(names[j] for j in columns),
        "all_names": tuple(names),
        "omitted": tuple((names[c.index], c.reason) for c in omitted),
        "params_array": beta,
        "cov_array": cov,
        "loglik": float(ev.loglik),
        "loglik_0": loglik_0,
        "opt": opt,
        "time_s": elapsed,
        "notes": tuple(all_notes),
        "n_obs_dropped": int(n_rows - sizes.sum()),
        "n_groups_dropped": _groups_dropped(counts, kind),
        "multiple_positive": counts["multiple"],
        "hessian_ok": ok,
        "value_labels": done[0]["value_labels"],
        "vce": vce_info,
        "late_notes": late,
        "timings": dist.timings,
    }


def _groups_dropped(counts: dict, kind: str) -> int:
    if kind == "logit":
        return counts["same"][0]
    return counts["single"][0] + counts["zero"][0]
