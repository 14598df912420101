"""The vectorised one-factor quadrature (``run_clusters_vectorised``) against the compiled
kernel (``run_clusters``): time per evaluation and largest differences, on the issue's model
(papers, ``sample10 == 1``, ``topq ~ nauthors + female + (1 | id)``, 7-point mvaghermite).

    .venv/bin/python benchmarks/bench_vectorised.py          # 37,391 rows
    .venv/bin/python benchmarks/bench_vectorised.py --full   # all 374,334 rows

A first fit on an empty cache, which runs on the mirror: ``bench_first_fit.py``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("MIXEDGLM_KERNELS", "compiled")  # the fit that yields the inputs

from mixedglm import glmm
from mixedglm.datasets import load_dataset
from mixedglm.engines.aghq.chunk import run_clusters
from mixedglm.engines.aghq.cluster import State
from mixedglm.engines.aghq.vectorised import run_clusters_vectorised


def captured_inputs(full: bool) -> tuple[dict, State]:
    """The inputs the fitted engine passes to ``run_clusters`` at orders 0, 1 and 2."""
    data = load_dataset("papers")
    if not full:
        data = data[data["sample10"] == 1].reset_index(drop=True)
    res = glmm("topq ~ nauthors + female + (1 | id)", data, "binomial", quiet=True)
    engine = res.engine
    inputs = {}

    def capture(fam, d, g, fl, st, n_par):
        inputs[fl.order] = (fam, d, g, fl, n_par)
        return run_clusters(fam, d, g, fl, st, n_par)

    engine._clusters = capture
    for order in (0, 1, 2):
        engine.cluster_terms(res.params_all, order)
    print(f"{engine.arrays.n_obs} rows, {engine.arrays.n_clusters} clusters")
    return inputs, engine._state


def timed(run, inputs: tuple, state: State, reps: int) -> tuple[float, object, State]:
    """Best time of ``reps`` calls ``run(fam, d, g, fl, state copy, n_par)``, the last
    output and state."""
    fam, d, g, fl, n_par = inputs
    best = np.inf
    for _ in range(reps):
        st = State(state.modes.copy(), state.grid_m.copy(), state.grid_r.copy())
        start = time.perf_counter()
        out = run(fam, d, g, fl, st, n_par)
        best = min(best, time.perf_counter() - start)
    return best, out, st


def evaluations(full: bool, reps: int) -> None:
    inputs, state = captured_inputs(full)
    print("order warm  compiled  vectorised   max |difference|: ll, grad, hess, post, state")
    for warm in (True, False):
        for order in (0, 1, 2):
            fam, d, g, fl, n_par = inputs[order]
            case = (fam, d, g, fl._replace(warm=warm), n_par)
            t_ref, ref, st_ref = timed(run_clusters, case, state, reps)
            t_vec, vec, st_vec = timed(run_clusters_vectorised, case, state, reps)
            assert np.array_equal(ref.status, vec.status)
            diffs = [
                ref.ll - vec.ll,
                ref.grad - vec.grad,
                ref.hess.sum(axis=0) - vec.hess.sum(axis=0),
                np.concatenate(
                    [(ref.post_mean - vec.post_mean).ravel(), (ref.post_cov - vec.post_cov).ravel()]
                ),
                np.concatenate([(a - b).ravel() for a, b in zip(st_ref, st_vec, strict=True)]),
            ]
            text = " ".join(f"{np.max(np.abs(v), initial=0.0):.1e}" for v in diffs)
            print(f"{order:>5} {warm!s:<5} {1e3 * t_ref:7.1f} ms {1e3 * t_vec:8.1f} ms   {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="all 374,334 rows of papers")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    evaluations(args.full, args.reps)


if __name__ == "__main__":
    main()
