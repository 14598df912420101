"""Which implementation evaluates a one-factor model's clusters: the compiled kernel
(:func:`~mixedglm.engines.aghq.chunk.run_clusters`) or its NumPy mirror
(:func:`~mixedglm.engines.aghq.vectorised.run_clusters_vectorised`, one random effect per
cluster).

The compiled kernel costs about 15 s of compilation the first time a family is fitted on a
machine (afterwards it loads from the cache in a twentieth of a second); the mirror needs
only the family's small row kernels (under a second to compile) but each evaluation costs
several times more. ``MIXEDGLM_KERNELS`` chooses:

* ``auto`` (the default): the compiled kernel when it is compiled in this process or in the
  cache, or when the model is large enough for its compilation to pay (rows times
  quadrature points above :data:`MIRROR_MAX_WORK`); otherwise the mirror, while a separate
  low-priority process compiles the kernel into the cache (once per family and process;
  it finishes even after this one has ended): the fits that follow, in this session once
  it is done or in the next, run compiled;
* ``compiled`` or ``numpy``: always that one (random slopes: always the compiled kernel;
  ``numpy`` starts no compilation).

Both give the same estimates to rounding (the mirror runs the same algorithm: the tests
compare every family, rule and order).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from mixedglm.engines.aghq.chunk import compile_in_background, compiled, run_clusters
from mixedglm.engines.aghq.cluster import Data, Flags, Grid, Out, State
from mixedglm.engines.aghq.vectorised import run_clusters_vectorised
from mixedglm.errors import OptionError

KERNELS_ENV = "MIXEDGLM_KERNELS"
SETTINGS = ("auto", "compiled", "numpy")
MIRROR_MAX_WORK = 5_000_000  # rows x points (all of papers at 12 points: 4.5 million)

Clusters = Callable[[object, Data, Grid, Flags, State, int], Out]


def kernels_setting() -> str:
    """``MIXEDGLM_KERNELS`` checked: ``auto`` (also when unset), ``compiled`` or ``numpy``."""
    value = os.environ.get(KERNELS_ENV, "").strip().lower() or "auto"
    if value not in SETTINGS:
        raise OptionError(
            f"{KERNELS_ENV}={value!r} is not a kernel setting: use auto, compiled or numpy"
        )
    return value


def choose(fam: object, d: Data, g: Grid, fl: Flags, st: State, n_par: int) -> Clusters:
    """The implementation for a model whose first evaluation has these arguments."""
    setting = kernels_setting()
    if g.nodes.shape[1] != 1 or setting == "compiled":
        return run_clusters
    if setting == "numpy":
        return run_clusters_vectorised
    if compiled(fam, d, g, fl, st, n_par):
        return run_clusters
    if d.y.shape[0] * g.nodes.shape[0] > MIRROR_MAX_WORK:
        return run_clusters
    compile_in_background(fam, d, g, fl, st, n_par)
    return run_clusters_vectorised
