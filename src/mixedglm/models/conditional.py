"""Conditional fixed-effects logit and Poisson models: Stata's ``xtlogit, fe`` / ``clogit``
and ``xtpoisson, fe``.

``clogit()`` and ``xtpoisson_fe()`` chain the stages and do no mathematics themselves:
data (:mod:`mixedglm.data`) -> formula (:mod:`mixedglm.formula`) -> design
(:func:`~mixedglm.design.build.build_design`, without random effects) -> rows sorted by group
-> Stata's data handling (:func:`~mixedglm.design.within.prepare_within`: uninformative groups,
covariates without within-group variance or collinear) -> the exact conditional likelihood
(:mod:`mixedglm.engines.conditional`) maximised by Newton-Raphson
(:func:`~mixedglm.optim.newton_maximize`) -> observed-information covariance ->
:class:`~mixedglm.results.conditional.ConditionalResults`.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
from formulaic import model_matrix

from mixedglm.data import DataSource, apply_subset, check_engine, load_data
from mixedglm.design.build import GroupInfo, ModelDesign, build_design, readable_name
from mixedglm.design.checks import conditional_separation_notes, separation_suspected
from mixedglm.design.missing import dropped_note
from mixedglm.design.weights import group_weight_vector
from mixedglm.design.within import WithinDesign, prepare_within
from mixedglm.engines.conditional import clogit_evaluate, cpoisson_evaluate
from mixedglm.engines.conditional_contrib import (
    conditional_contributions,
    weighted_conditional_objective,
)
from mixedglm.errors import DataError, FormulaError, MixedGLMError
from mixedglm.families import Family
from mixedglm.formula import ParsedFormula, parse_formula
from mixedglm.formula.idioms import apply_idioms
from mixedglm.formula.parse import _split_top_level
from mixedglm.inference import NOT_DEFINITE_NOTE, covariance_from_hessian
from mixedglm.inference.robust import parse_vce
from mixedglm.models.vce import robust_cov
from mixedglm.optim import Evaluation, OptSummary, newton_maximize
from mixedglm.options import FitOptions, check_level, check_maxiter
from mixedglm.results.conditional import ConditionalResults, stata_note_lines
from mixedglm.results.tables import factor_parts

__all__ = ["GTOL", "clogit", "fit_conditional", "request_fields", "warm_up", "xtpoisson_fe"]

# Convergence on the scaled gradient g'(-H)^-1 g, which is the squared distance to the
# maximum in standard-error units (to second order). The GLMM default of 1e-9 leaves the
# estimates up to ~3e-5 SE short of it; 1e-14 puts them within 1e-7 SE, so the estimates, SEs
# and log-likelihood match survival::clogit's to better than 1e-6 relative. Newton converges
# quadratically here (the conditional log-likelihoods are concave), so this costs at most one
# iteration more.
GTOL = 1e-14

_COMMAND = {"logit": "clogit", "poisson": "xtpoisson_fe"}


@dataclass(frozen=True)
class _OutcomeCheckedLater(Family):
    """The family for :func:`build_design`: the plain base checks no outcome there;
    :func:`prepare_within` checks it with messages about the conditional models."""


def _design_family(kind: str) -> Family:
    if kind == "logit":
        return _OutcomeCheckedLater("bernoulli", "logit")
    return _OutcomeCheckedLater("poisson", "log")


def stata_term_name(name: str) -> str:
    """A covariate as Stata names it in notes: ``C(female)[1]`` -> ``1.female``."""
    parts = factor_parts(name)
    if parts is None:
        return name
    factor, level = parts
    try:
        number = float(level)
    except ValueError:
        return name
    return f"{int(number)}.{factor}" if number.is_integer() else name


def _fixed_terms(parsed: ParsedFormula, command: str) -> tuple[str, bool]:
    """The fixed part without intercept terms, and whether the formula asked for one.

    The design is always built with formulaic's intercept, so that factors get Stata's
    reduced coding (a base level), and the constant is dropped afterwards.
    """
    if parsed.random:
        raise FormulaError(
            f"{command}() takes no random-effect terms ('{parsed.random[0].text}'): the group "
            f"effects are conditioned away; name the group with group='{parsed.random[0].group}'"
        )
    kept: list[str] = []
    explicit = False
    for raw in _split_top_level(parsed.fixed):
        term = raw.replace(" ", "")
        if term in ("1", "+1"):
            explicit = True
        elif term not in ("0", "-1", "+0"):
            kept.append(raw.strip())
    if not kept:
        raise FormulaError(
            f"the formula '{parsed.text}' has no covariates: a fixed-effects model needs at "
            "least one (its constant is conditioned away with the group effects)"
        )
    return " + ".join(kept).replace("+ -", "-"), explicit


def _full_matrix(design: ModelDesign, rows: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The design matrix with every column of the formula, constant last.

    :func:`build_design` omits columns collinear in the raw data (with the constant). A
    conditional model judges collinearity after the group effects are removed, and reports a
    column constant within groups as such, so such columns are rebuilt and handed on.
    """
    if not design.omitted:
        return design.X, list(design.x_names)
    mm = model_matrix(design.fixed_spec, rows)
    names = [readable_name(str(c)) for c in mm.columns]
    X = np.asarray(mm, dtype=float)
    order = [names.index(n) for n in design.all_x_names]
    return np.ascontiguousarray(X[:, order]), list(design.all_x_names)


def _group_codes(frame: pd.DataFrame, group: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (sorted labels) and the labels of the group variable."""
    codes, labels = pd.factorize(frame[group], sort=True)
    return codes.astype(np.int64), np.asarray(labels)


def _check_group(data: pd.DataFrame, group: str | None, command: str) -> str:
    if group is None or not str(group).strip():
        raise MixedGLMError(
            f"{command}() needs the group variable whose effects are conditioned away, e.g. "
            "group='id' (Stata's i() or group(); --group on the command line)"
        )
    group = str(group).strip()
    if group not in data.columns:
        close = difflib.get_close_matches(group, [str(c) for c in data.columns], n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise DataError(f"group variable '{group}' not found in the data{hint}")
    return group


def request_fields(
    kind: str,
    parsed: ParsedFormula,
    offset: str | None,
    exposure: str | None,
    eform: bool,
    level: float,
) -> dict:
    """The fields of the conditional results that echo the command (in memory and on Dask)."""
    return {
        "kind": kind,
        "formula": parsed.text,
        "offset_name": offset,
        "exposure_name": exposure,
        "eform": eform,
        "level": level,
    }


def fit_conditional(
    within: WithinDesign,
    y: np.ndarray,
    X: np.ndarray,
    offset: np.ndarray | None,
    *,
    maxiter: int = 100,
    log: Callable[[str], None] | None = None,
    group_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, Evaluation, OptSummary, float, np.ndarray, bool]:
    """Maximise the conditional likelihood on prepared arrays (rows sorted by group).

    Returns ``(beta, evaluation, opt_summary, loglik_0, cov, hessian_ok)``: ``loglik_0`` is
    the log-likelihood at ``beta = 0`` (the LR test's reference, Stata's ``e(ll_0)``).
    """
    Xk = within.take_X(X)
    yk = within.take_rows(y)
    off = within.take_rows(offset) if offset is not None else None
    starts = within.starts
    if within.kind == "logit":

        def objective(beta: np.ndarray, order: int) -> Evaluation:
            return clogit_evaluate(beta, Xk, yk, starts, order, offset=off)

    else:

        def objective(beta: np.ndarray, order: int) -> Evaluation:
            return cpoisson_evaluate(beta, Xk, yk, off, starts, order)

    if group_weights is not None:  # frequency weights of the groups (kept groups' order)
        objective = weighted_conditional_objective(within.kind, Xk, yk, starts, off, group_weights)

    return maximize_conditional(objective, Xk.shape[1], maxiter=maxiter, log=log)


def maximize_conditional(
    objective: Callable[[np.ndarray, int], Evaluation],
    p: int,
    *,
    maxiter: int,
    log: Callable[[str], None] | None,
) -> tuple[np.ndarray, Evaluation, OptSummary, float, np.ndarray, bool]:
    """Newton from ``beta = 0`` on a conditional log-likelihood (in memory, or summed over
    Dask workers) and the observed-information covariance; see :func:`fit_conditional`."""
    beta, ev, opt = newton_maximize(objective, np.zeros(p), gtol=GTOL, maxiter=maxiter, log=log)
    loglik_0 = opt.history[0].loglik  # iteration 0 is at beta = 0
    assert ev.hessian is not None
    cov, ok = covariance_from_hessian(ev.hessian)
    return beta, ev, opt, float(loglik_0), cov, ok


def _fit(
    kind: Literal["logit", "poisson"],
    formula: str,
    data: DataSource,
    group: str | None,
    *,
    subset: str | None,
    offset: str | None,
    exposure: str | None,
    eform: bool,
    level: float,
    maxiter: int,
    nolog: bool,
    quiet: bool,
    vce: str | None = None,
    group_weights: str | None = None,
    engine: str = "memory",
    scheduler: str | None = None,
    workers: int | None = None,
) -> ConditionalResults:
    command = _COMMAND[kind]
    parse_vce(vce)
    if group_weights is not None and parse_vce(vce) is not None:
        raise MixedGLMError("vce= robust or cluster is not available with group_weights=")
    level, maxiter = check_level(level), check_maxiter(maxiter)
    if check_engine(engine, data):
        from mixedglm.models.dask_conditional import fit_conditional_on_dask  # Dask if asked

        opts = FitOptions(
            subset=subset, offset=offset, exposure=exposure, level=level, maxiter=maxiter,
            nolog=nolog, quiet=quiet, vce=vce, scheduler=scheduler, workers=workers,
        )  # fmt: skip
        return fit_conditional_on_dask(
            kind, formula, data, group, opts, eform=eform, group_weights=group_weights
        )
    parsed = parse_formula(formula)
    frame = apply_subset(load_data(data), subset)
    idioms = apply_idioms(parsed, frame, offset=offset, allow_cbind=False)
    parsed, frame, offset = idioms.formula, idioms.data, idioms.offset
    fixed, explicit_constant = _fixed_terms(parsed, command)
    group = _check_group(frame, group, command)
    notes: list[str] = []
    if explicit_constant:
        notes.append(
            f"note: the constant is conditioned away with the effects of {group}; "
            "dropped from the formula."
        )
    missing_group = frame[group].isna().to_numpy()
    if missing_group.all():
        raise DataError(f"group variable '{group}' is missing in every observation")
    if missing_group.any():
        reason = f"missing values of the group variable {group}"
        notes.append(dropped_note(int(missing_group.sum()), reason))
        frame = frame.loc[~missing_group]
    design = build_design(
        replace(parsed, fixed=fixed),
        frame,
        _design_family(kind),
        offset=offset,
        exposure=exposure,
        require_group=False,
    )
    assert design.source_positions is not None
    rows = frame.iloc[design.source_positions]
    X, names = _full_matrix(design, rows)
    dropped_notes = {f"note: {n} omitted because of collinearity" for n, _ in design.omitted}
    notes += [n for n in design.notes if n not in dropped_notes]
    covariates = [j for j, n in enumerate(names) if n != "_cons"]  # the constant goes
    X = X[:, covariates]
    names = [names[j] for j in covariates]
    codes, labels = _group_codes(rows, group)
    order = np.argsort(codes, kind="stable")
    codes, X = codes[order], np.ascontiguousarray(X[order])
    y = design.y[order]
    off = design.offset[order] if (offset or exposure) else None

    t0 = time.perf_counter()
    within = prepare_within(
        y, X, [stata_term_name(n) for n in names], codes, kind, outcome=design.response
    )
    notes += within.notes
    log = print if not (nolog or quiet) else None
    if not quiet:
        for note in notes:
            print("\n".join(stata_note_lines(note)))
    gw = None
    if group_weights is not None:
        if group_weights not in rows.columns:
            raise DataError(f"group weight variable '{group_weights}' not found in the data")
        kept_rows = within.take_rows(np.arange(len(y)))
        values = rows[group_weights].iloc[order].iloc[kept_rows].reset_index(drop=True)
        row_codes = np.repeat(np.arange(within.n_groups), np.diff(within.starts))
        gw = group_weight_vector(values, row_codes, within.starts, group_weights, group)
    beta, ev, opt, loglik_0, cov, ok = fit_conditional(
        within, y, X, off, maxiter=maxiter, log=log, group_weights=gw
    )
    vce_info = None
    if parse_vce(vce) is not None:
        contrib = conditional_contributions(
            kind,
            beta,
            within.take_X(X),
            within.take_rows(y),
            within.starts,
            within.take_rows(off) if off is not None else None,
        )
        kept = within.take_rows(np.arange(len(y)))
        row_codes = np.repeat(np.arange(within.n_groups), np.diff(within.starts))
        out = robust_cov(cov, contrib.score, row_codes, group, vce, rows.iloc[order], kept)
        assert out is not None
        cov, vce_info = out
    elapsed = time.perf_counter() - t0
    if log:
        log("")
    kept_names = [stata_term_name(names[j]) for j in within.columns]
    se = np.sqrt(np.abs(np.diag(cov))) if cov.size else np.zeros(0)
    if separation_suspected(within.take_X(X), kept_names, beta, se):
        found = conditional_separation_notes(
            within.take_rows(y), within.take_X(X), within.starts, kept_names, kind
        )
        notes += found
        if not quiet:
            for note in found:
                print(note)
    if not ok:
        notes.append(NOT_DEFINITE_NOTE)
    opt.warn_if_not_converged(stacklevel=3)
    sizes = np.diff(within.starts)
    return ConditionalResults(
        **request_fields(kind, parsed, offset, exposure, eform, level),
        response=design.response,
        group=GroupInfo(group, labels[within.group_codes], sizes),
        names=tuple(names[j] for j in within.columns),
        all_names=tuple(names),
        omitted=tuple((names[c.index], c.reason) for c in within.omitted),
        params_array=beta,
        cov_array=cov,
        loglik=float(ev.loglik),
        loglik_0=loglik_0,
        opt=opt,
        time_s=elapsed,
        notes=tuple(notes),
        n_obs_dropped=within.n_obs_dropped,
        n_groups_dropped=within.n_groups_dropped,
        multiple_positive=within.multiple_positive,
        hessian_ok=ok,
        value_labels=design.value_labels,
        vce=vce_info,
    )


def clogit(
    formula: str,
    data: DataSource,
    group: str | None = None,
    *,
    subset: str | None = None,
    offset: str | None = None,
    or_: bool = False,
    level: float = 95.0,
    maxiter: int = 100,
    nolog: bool = False,
    quiet: bool = False,
    vce: str | None = None,
    group_weights: str | None = None,
    engine: str = "memory",
    scheduler: str | None = None,
    workers: int | None = None,
) -> ConditionalResults:
    """Conditional (fixed-effects) logistic regression: Stata's ``xtlogit, fe`` / ``clogit``.

    Parameters
    ----------
    formula
        ``"y ~ x1 + x2 + C(f)"`` with a 0/1 outcome; no constant (it is conditioned away
        with the group effects: an explicit ``1`` is dropped with a note) and no
        random-effect terms.
    data
        A DataFrame, a path to a CSV/Parquet/Stata file, or a bundled dataset name.
    group
        The grouping variable whose effects are conditioned away (required).
    subset
        A condition selecting the estimation sample, as Stata's ``if``.
    offset
        A column added to the linear predictor with coefficient 1.
    or_
        Report odds ratios (Stata's ``or``; ``or`` itself is a Python keyword).
    level
        Confidence level in percent.
    maxiter, nolog, quiet
        Newton iterations allowed; no iteration log; no notes either.
    vce
        ``"oim"`` (default), ``"robust"`` (clustered on ``group``, as Stata) or ``"cluster
        VAR"`` (VAR's clusters must contain the groups): sandwich standard errors.
    group_weights
        A variable constant within groups: frequency weights of the groups (a group of
        weight 2 counts twice), as Stata's weights with ``clogit``.
    engine, scheduler, workers
        ``"dask"`` fits on a Dask cluster (implied by a Dask DataFrame; ``data`` may then be
        a directory or glob of Parquet files), as :func:`mixedglm.glmm` (``docs/scale.md``).
    """
    return _fit(
        "logit",
        formula,
        data,
        group,
        subset=subset,
        offset=offset,
        exposure=None,
        eform=or_,
        level=level,
        maxiter=maxiter,
        nolog=nolog,
        quiet=quiet,
        vce=vce,
        group_weights=group_weights,
        engine=engine,
        scheduler=scheduler,
        workers=workers,
    )


def xtpoisson_fe(
    formula: str,
    data: DataSource,
    group: str | None = None,
    *,
    subset: str | None = None,
    offset: str | None = None,
    exposure: str | None = None,
    irr: bool = False,
    level: float = 95.0,
    maxiter: int = 100,
    nolog: bool = False,
    quiet: bool = False,
    vce: str | None = None,
    group_weights: str | None = None,
    engine: str = "memory",
    scheduler: str | None = None,
    workers: int | None = None,
) -> ConditionalResults:
    """Conditional fixed-effects Poisson regression: Stata's ``xtpoisson, fe``.

    The counts of a group are multinomial given their total; groups with one observation
    or only zero counts are dropped with Stata's notes. ``exposure`` adds the log of a
    positive column to the linear predictor, ``offset`` a column; ``irr`` reports
    incidence-rate ratios. The other arguments (``engine="dask"`` too) are those of
    :func:`clogit`.
    """
    return _fit(
        "poisson",
        formula,
        data,
        group,
        subset=subset,
        offset=offset,
        exposure=exposure,
        eform=irr,
        level=level,
        maxiter=maxiter,
        nolog=nolog,
        quiet=quiet,
        vce=vce,
        group_weights=group_weights,
        engine=engine,
        scheduler=scheduler,
        workers=workers,
    )


def warm_up() -> float:
    """Load the compiled conditional-likelihood kernels (the logit's serial and threaded
    ones, Poisson's serial one) by evaluating a small problem; numba keeps them in its
    on-disk cache, and loading them takes a few tenths of a second once per process.
    Returns the seconds taken."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    # one group of 200 rows with 100 events reaches the threaded kernel's threshold
    X = rng.normal(size=(208, 2))
    y = np.r_[np.tile([1.0, 0.0], 100), np.tile([1.0, 0.0], 4)]
    starts = np.array([0, 200, 204, 208], dtype=np.int64)
    for order in (0, 1, 2):
        clogit_evaluate(np.zeros(2), X, y, starts, order)
        cpoisson_evaluate(np.zeros(2), X, y, None, starts, order)
    return time.perf_counter() - t0
