"""Plots of fitted models (matplotlib, the ``plot`` extra).

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (so it
works with any backend, including Agg on a server, and leaves no global state behind):
save it with ``fig.savefig("file.png")``; Jupyter displays it.

* :func:`plot_random_effects`: a caterpillar plot of the predicted random effects, sorted,
  with +-1.96 posterior SD, one panel per random effect of the grouping factor.
* :func:`plot_coefficients`: the fixed effects with their confidence intervals.
* :func:`plot_hybrid`: a hybrid model's within and between effects side by side.
* :func:`plot_compare`: the coefficients of several models on common rows.
* :func:`plot_margins`: average marginal effects or predictive margins with their intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from mixedglm.errors import MixedGLMError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "plot_coefficients",
    "plot_compare",
    "plot_hybrid",
    "plot_margins",
    "plot_random_effects",
]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _new_figure(width: float, height: float) -> Figure:
    """A Figure with an Agg canvas, not registered with pyplot."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # matplotlib is an optional dependency
        raise MixedGLMError("plots need matplotlib: pip install 'mixedglm[plot]'") from err
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _crit(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 200.0))


# -- random effects --------------------------------------------------------------------------


def plot_random_effects(
    res: Any, kind: str = "means", level: float = 95.0, sort: bool = True
) -> Figure:
    """Caterpillar plot: each cluster's predicted random effect with a ``level``% interval
    (+-1.96 posterior SD at 95%), sorted by the prediction, one panel per random effect.

    ``kind="means"`` uses the posterior means and SDs (Stata's ``predict, reffects
    reses``), ``kind="modes"`` the conditional modes (lme4's ``ranef``).
    """
    glmm = getattr(res, "glmm", res)  # a hybrid model plots its mixed model's effects
    if not hasattr(glmm, "random_effects"):
        raise MixedGLMError(
            f"a {type(res).__name__} has no random effects to plot (conditional fixed-effects "
            "models estimate none)"
        )
    frame = glmm.random_effects(kind=kind, se=True)
    effects = [c for c in frame.columns if not str(c).startswith("se(")]
    group = frame.index.name or "group"
    crit = _crit(level)
    fig = _new_figure(4.2 * len(effects), 4.5)
    axes = fig.subplots(1, len(effects), squeeze=False)[0]
    for ax, name in zip(axes, effects, strict=True):
        est = frame[name].to_numpy(dtype=float)
        half = crit * frame[f"se({name})"].to_numpy(dtype=float)
        order = np.argsort(est, kind="stable") if sort else np.arange(est.size)
        rank = np.arange(est.size)
        lw = 1.2 if est.size <= 60 else 0.4
        ax.hlines(rank, (est - half)[order], (est + half)[order], color="0.6", lw=lw)
        ax.plot(est[order], rank, "o", color=_COLORS[0], ms=3 if est.size <= 200 else 1)
        ax.axvline(0.0, color="0.2", lw=0.8, ls="--")
        ax.set_title(f"{group}: {name}")
        ax.set_xlabel(f"predicted random effect ({level:g}% interval)")
        if est.size <= 40:
            ax.set_yticks(rank, [str(v) for v in frame.index.to_numpy()[order]])
            ax.set_ylabel(str(group))
        else:
            ax.set_ylabel(f"{group} (rank, {est.size:,} clusters)")
    return fig


# -- coefficients -----------------------------------------------------------------------------


def _level(res: Any, level: float | None) -> float:
    """``level``, or the fit's own confidence level."""
    return float(level if level is not None else getattr(res, "level", 95.0))


def _coef_frame(res: Any, level: float | None, eform: bool) -> pd.DataFrame:
    level = _level(res, level)
    params = res.params.astype(float)
    ci = res.conf_int(level)
    frame = pd.DataFrame(
        {"estimate": params, "lower": ci.iloc[:, 0].astype(float), "upper": ci.iloc[:, 1]}
    )
    if eform:
        frame = pd.DataFrame(np.exp(frame.to_numpy()), index=frame.index, columns=frame.columns)
    return frame


def _dot_panel(ax: Any, frame: pd.DataFrame, color: str, offset: float, label: str | None):
    y = np.arange(len(frame))[::-1] + offset
    est = frame["estimate"].to_numpy(dtype=float)
    ax.hlines(y, frame["lower"].to_numpy(dtype=float), frame["upper"].to_numpy(), color=color)
    ax.plot(est, y, "o", color=color, label=label)


def plot_coefficients(
    res: Any,
    eform: bool = False,
    level: float | None = None,
    drop: Sequence[str] = ("_cons",),
) -> Figure:
    """The fixed effects with their confidence intervals (``level``%, the fit's by default);
    ``eform=True`` plots ``exp(b)`` (odds ratios, incidence-rate ratios) against 1 on a log
    axis. The terms in ``drop`` (the constant by default) are left out."""
    if not isinstance(eform, bool | np.bool_):
        raise MixedGLMError(f"eform must be True or False in a plot, not {eform!r}")
    frame = _coef_frame(res, level, eform)
    frame = frame.loc[[t for t in frame.index if t not in set(drop)]]
    if frame.empty:
        raise MixedGLMError("no coefficients left to plot (all are in drop=)")
    fig = _new_figure(6.0, 1.2 + 0.35 * len(frame))
    ax = fig.subplots()
    _dot_panel(ax, frame, _COLORS[0], 0.0, None)
    _finish_coefficient_axes(ax, list(frame.index), eform, _level(res, level))
    return fig


def _finish_coefficient_axes(ax: Any, terms: list[str], eform: bool, level: float) -> None:
    ax.set_yticks(np.arange(len(terms))[::-1], terms)
    ax.axvline(1.0 if eform else 0.0, color="0.2", lw=0.8, ls="--")
    if eform:
        ax.set_xscale("log")
    what = "exp(coefficient)" if eform else "coefficient"
    ax.set_xlabel(f"{what} ({float(level):g}% confidence interval)")


# -- hybrid models ---------------------------------------------------------------------------------


def plot_hybrid(res: Any, level: float | None = None) -> Figure:
    """A hybrid (or CRE) model's within (``W__x``) and between (``B__x``) effects of each
    decomposed variable side by side with their confidence intervals; for a CRE model the
    between effect is ``W__x + D__x`` (with its delta-method interval). Where the two differ
    the random-effects assumption fails for that variable (the p-value of the Wald test of
    equality is printed beside each variable)."""
    dec = res.decomposition
    level = float(level if level is not None else res.glmm.level)
    crit = _crit(level)
    params, cov = res.params, res.cov_params
    rows = []
    tests = res.tests()
    for term in dec.terms:
        if term.within not in params.index or term.between not in params.index:
            continue
        w = float(params[term.within])
        sw = math.sqrt(float(cov.loc[term.within, term.within]))
        if dec.cre:  # between = within + difference
            names = [term.within, term.between]
            b = w + float(params[term.between])
            sb = math.sqrt(float(cov.loc[names, names].to_numpy().sum()))
        else:
            b = float(params[term.between])
            sb = math.sqrt(float(cov.loc[term.between, term.between]))
        p = float(tests.loc[term.name, "p"]) if term.name in tests.index else math.nan
        rows.append((term.name, w, sw, b, sb, p))
    if not rows:
        raise MixedGLMError("the hybrid model has no decomposed variable to plot")
    fig = _new_figure(6.5, 1.4 + 0.55 * len(rows))
    ax = fig.subplots()
    for k, (label, color, off) in enumerate(
        (("within (W__)", _COLORS[0], 0.15), ("between (B__)", _COLORS[1], -0.15))
    ):
        est = np.array([r[1 + 2 * k] for r in rows])
        se = np.array([r[2 + 2 * k] for r in rows])
        frame = pd.DataFrame({"estimate": est, "lower": est - crit * se, "upper": est + crit * se})
        _dot_panel(ax, frame, color, off, label)
    labels = [f"{r[0]}\n(p = {r[5]:.3f})" if math.isfinite(r[5]) else r[0] for r in rows]
    _finish_coefficient_axes(ax, labels, False, level)
    ax.set_title(f"Within and between effects ({res.model_name})")
    ax.legend(loc="best", fontsize="small")
    return fig


# -- several models --------------------------------------------------------------------------------


def plot_compare(
    results: Sequence[Any],
    names: Sequence[str] | None = None,
    *,
    eform: bool = False,
    level: float | None = None,
    drop: Sequence[str] = ("_cons",),
    rename: Mapping[str, str] | None = None,
) -> Figure:
    """The coefficients of several models on common rows (dodged, one colour per model),
    with confidence intervals; ``rename`` maps names so that rows line up (e.g.
    ``{"W__x": "x"}`` for a hybrid model's within effect beside a fixed-effects model's)."""
    results = list(results)
    if not results:
        raise MixedGLMError("plot_compare() needs at least one model")
    names = list(names) if names is not None else [f"model{k + 1}" for k in range(len(results))]
    if len(names) != len(results):
        raise MixedGLMError(f"plot_compare(): {len(results)} models but {len(names)} names")
    mapping = dict(rename or {})
    frames = []
    for res in results:
        frame = _coef_frame(res, level, eform)
        frame.index = [mapping.get(str(t), str(t)) for t in frame.index]
        frames.append(frame.loc[[t for t in frame.index if t not in set(drop)]])
    terms: list[str] = []
    for frame in frames:
        terms += [t for t in frame.index if t not in terms]
    if not terms:
        raise MixedGLMError("no coefficients left to plot (all are in drop=)")
    fig = _new_figure(6.5, 1.4 + 0.25 * len(terms) * max(2, len(results)) / 2)
    ax = fig.subplots()
    width = 0.7 / len(results)
    for k, (frame, name) in enumerate(zip(frames, names, strict=True)):
        full = frame.reindex(terms)
        offset = (len(results) - 1) / 2 * width - k * width
        _dot_panel(ax, full, _COLORS[k % len(_COLORS)], offset, name)
    _finish_coefficient_axes(ax, terms, eform, _level(results[0], level))
    ax.legend(loc="best", fontsize="small")
    return fig


# -- margins ---------------------------------------------------------------------------------


def plot_margins(frame: pd.DataFrame, title: str | None = None) -> Figure:
    """The rows of a ``margins()`` frame (``estimate``, ``ci_low``, ``ci_high``) as points
    with their intervals, one row per effect or margin (the index, joined when it has
    several levels), against 0 for marginal effects."""
    if frame.empty:
        raise MixedGLMError("margins() returned no rows to plot")
    labels = [
        " ".join(str(v) for v in key) if isinstance(key, tuple) else str(key) for key in frame.index
    ]
    dots = pd.DataFrame(
        {"estimate": frame["estimate"], "lower": frame["ci_low"], "upper": frame["ci_high"]}
    )
    fig = _new_figure(6.0, 1.2 + 0.35 * len(dots))
    ax = fig.subplots()
    _dot_panel(ax, dots, _COLORS[0], 0.0, None)
    ax.set_yticks(np.arange(len(labels))[::-1], labels)
    if np.any(dots["lower"] < 0) and np.any(dots["upper"] > 0):
        ax.axvline(0.0, color="0.2", lw=0.8, ls="--")
    ax.set_xlabel("margin (with confidence interval)")
    if title:
        ax.set_title(title)
    return fig
