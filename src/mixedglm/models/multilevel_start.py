"""Start values of a fit with several grouping factors: the pooled GLM's coefficients and
variance parameters from a grid of scalings of SD 0.5 per random-effect column (scalings
1, 0.5, 2, 0.25, logged and chosen in Stata's order).

Nested factors (in memory or on Dask) evaluate all four nodes, from the smallest scaling up,
so that each mode search starts from the modes of the nearest scaling (from 2.0 after 0.5 it
took several times longer); the best node's modes start the fit.

Crossed factors go from the largest scaling down, stopping at the first node that lowers
the log likelihood (the best along the ray found as by all four where it rises then falls),
then take one EM step on the variance parameters from the best
(:mod:`mixedglm.engines.laplace_start`), kept where its log likelihood is higher. The first
node's modes are found loosely
(:attr:`~mixedglm.engines.laplace_joint.JointLaplaceEngine.loose`: they serve the EM step
or the next node's search; on the crossed benchmark 5 factorisations instead of 7). A node
after the first is only compared: its PIRLS stops once it is clearly below the best
(:meth:`~mixedglm.engines.laplace_joint.JointLaplaceEngine.loglik_above`; logged as "<"
that bound). Starting from the EM step of the first node alone (2 factorisations fewer on
the benchmark) took up to twice the Newton iterations where the SDs are small (0.3 and 0.3:
8 instead of 4).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mixedglm.design.multilevel import MultilevelDesign
from mixedglm.engines.laplace_joint import JointLaplaceEngine
from mixedglm.engines.laplace_start import em_step
from mixedglm.errors import MixedGLMError

SCALINGS = (1.0, 0.5, 2.0, 0.25)  # of SD 0.5 per column, in Stata's order


def start_values(
    engine: Any,
    design: MultilevelDesign,
    scales: list[np.ndarray],
    beta0: np.ndarray,
    aux0: np.ndarray,
    log: Callable[[str], None] | None,
) -> np.ndarray:
    """The start of the Laplace fit from the pooled GLM's ``beta0`` and ``aux0`` (the
    engine left at the start's modes)."""
    thetas = [f.structure.start(s) for f, s in zip(design.factors, scales, strict=True)]
    theta0 = np.concatenate(thetas)
    if log:
        log("")
        log("Refining starting values (Laplace):")
        log("")
    candidates = [np.concatenate([beta0, theta0 * f, aux0]) for f in SCALINGS]
    if isinstance(engine, JointLaplaceEngine) and not design.nested:
        return _crossed_start(engine, candidates, log)
    lls: dict[int, float] = {}
    modes: dict[int, Any] = {}
    for node in sorted(range(len(SCALINGS)), key=lambda k: SCALINGS[k]):
        lls[node] = engine.loglik(candidates[node])
        u = engine.u  # in memory an array; on Dask the partitions' modes (already copies)
        modes[node] = u.copy() if isinstance(u, np.ndarray) else u
    best = _best_node(lls, {}, log)
    engine.u = modes[best]
    return candidates[best]


def _crossed_start(
    engine: JointLaplaceEngine, candidates: list[np.ndarray], log: Callable[[str], None] | None
) -> np.ndarray:
    """The nodes from the largest scaling down, stopping at the first that lowers the log
    likelihood (the best along the ray found as by all four where it rises then falls),
    then the EM step from the best, kept where its log likelihood is higher."""
    lls: dict[int, float] = {}
    modes: dict[int, Any] = {}
    states: dict[int, Any] = {}
    exact: dict[int, bool] = {}  # False: the node stopped below the best (loglik_above)
    for node in sorted(range(len(SCALINGS)), key=lambda k: -SCALINGS[k]):
        finite = [ll for ll in lls.values() if np.isfinite(ll)]
        if finite:  # only compared: its PIRLS stops once clearly below
            lls[node], exact[node] = engine.loglik_above(candidates[node], max(finite))
        elif not lls:  # the first node's modes serve the EM step or the next node
            engine.loose = True
            try:
                lls[node], exact[node] = engine.loglik(candidates[node]), True
            finally:
                engine.loose = False
        else:
            lls[node], exact[node] = engine.loglik(candidates[node]), True
        modes[node] = engine.u.copy()
        states[node] = engine.remembered()
        if any(lls[node] < ll for ll in finite):
            break
    best = _best_node(lls, exact, log)
    # the best node's PIRLS state recalled: its posterior costs no factorisation, and the
    # EM step's evaluation, where kept, is Newton's first (the engine remembers it)
    engine.u = modes[best]
    engine.recall(states[best])
    refined = em_step(engine, candidates[best])
    ll = engine.loglik(refined)
    if log:
        log(f"{'EM step:':<14} log likelihood = {ll:.8g}")
    if np.isfinite(ll) and ll > lls[best]:
        return refined
    engine.u = modes[best]
    # the node's state where its modes were found tightly; the first's found again
    engine.recall(states[best] if best != int(np.argmax(SCALINGS)) else None)
    return candidates[best]


def _best_node(
    lls: dict[int, float], exact: dict[int, bool], log: Callable[[str], None] | None
) -> int:
    """The node of the highest finite log likelihood (an error where none is finite); the
    nodes logged in Stata's order (``exact[node]`` False: logged as "<" its bound)."""
    best = None
    for node in sorted(lls):
        if log:
            sign = "=" if exact.get(node, True) else "<"
            log(f"{f'Grid node {node}:':<14} log likelihood {sign} {lls[node]:.8g}")
        if np.isfinite(lls[node]) and (best is None or lls[node] > lls[best]):
            best = node
    if best is None:
        raise MixedGLMError("the log likelihood is not finite at any starting value")
    return best
