"""Benchmark: the seed's random-effects logit (``xtlogit topq ..., re``, 12 points) on `papers`.

Prints, for the 12-point mean-variance AGHQ fit of 374,334 papers in 14,129 authors: the
estimation time (``time_s``: model arrays to covariance matrix, start values included), the
wall time of the whole call (reading the bundled file excluded, building the design
included), Newton iterations, the process's peak resident memory, and in the same run the
time of a pooled logit (no random effects) fitted on the same arrays by the same Newton code,
with the ratio between the two. The numba kernels are compiled (or loaded from their cache)
by a warm-up fit on 2,000 rows first, so the times exclude compilation.

Run: ``.venv/bin/python benchmarks/bench_glmm.py [--threads N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numba

import mixedglm as mg
from mixedglm.datasets import load_dataset
from mixedglm.engines.glm import GLMObjective
from mixedglm.optim import newton_maximize

os.environ.setdefault("MIXEDGLM_KERNELS", "compiled")  # compiled kernels, even when cold

FORMULA = (
    "topq ~ nauthors + npages + nrefs + jifperc + careerstage + female + usa + socialscience"
    " + (1 | id)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    data = load_dataset("papers")
    mg.glmm(FORMULA, data.iloc[:2000], nagq=12, nolog=True, quiet=True)  # warm-up
    walls, estimations = [], []
    res = None
    for _ in range(args.repeat):
        start = time.perf_counter()
        res = mg.glmm(FORMULA, data, nagq=12, nolog=True, quiet=True)
        walls.append(time.perf_counter() - start)
        estimations.append(res.time_s)
    assert res is not None
    arrays = res.design.cluster_arrays()
    pooled = GLMObjective(arrays.X, arrays.y, arrays.trials, arrays.offset, res.family)
    pooled_times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        newton_maximize(pooled, pooled.start())
        pooled_times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("xtlogit topq ..., re (intpoints 12) on papers")
    print(f"  observations / clusters : {res.nobs:,} / {res.design.group.n_groups:,}")
    print(f"  threads                 : {numba.get_num_threads()}")
    print(f"  log likelihood          : {res.loglik:.4f}  (converged: {res.converged})")
    print(f"  Newton iterations       : {res.iterations}")
    print(f"  estimation time_s       : best {min(estimations):.3f} s of {args.repeat}")
    print(f"  whole call (with design): best {min(walls):.3f} s")
    print(f"  pooled logit, same code : best {min(pooled_times):.3f} s")
    print(f"  ratio RE / pooled       : {min(estimations) / min(pooled_times):.1f}")
    print(f"  peak resident memory    : {peak_mb:.0f} MB (process, numba/LLVM included)")


if __name__ == "__main__":
    main()
