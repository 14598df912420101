"""Benchmark: nested three-level models by adaptive quadrature (the default) and Laplace.

1. guImmun (2,159 kids in 1,595 mothers in 161 communities, 16 fixed effects),
   ``(1 | comm/mom)``: the whole ``mg.glmm`` call with Laplace, mvaghermite 7 and 12 points.
2. Simulated binary data: ``--scale`` 1 = 1,000,000 rows in 100,000 level-2 units in 1,000
   level-3 units (10 rows per unit), ``y ~ x1 + x2 + (1 | top/mid)``, at 0.1x and 1x: time
   and peak memory of the call (memory from ``tracemalloc``), by ``--method`` (mvaghermite
   with 7 points per level by default, or laplace).

Run: ``.venv/bin/python benchmarks/bench_nested.py [--scales 0.1 1] [--method laplace]``.
The first call of each kind compiles (or loads) the kernels and is not timed.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

import mixedglm as mg

GUIMMUN = (
    "immun ~ kid2p + mom25p + C(ord) + C(ethn) + C(momEd) + C(husEd) + momWork + rural"
    " + pcInd81 + (1 | comm/mom)"
)
DATA = Path(__file__).resolve().parents[1] / "tests" / "reference" / "data" / "guimmun.csv"


def simulate(scale: float, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_top = int(1_000 * scale)
    n_mid = int(100_000 * scale)
    mid = np.repeat(np.arange(n_mid), 10)
    top = (np.arange(n_mid) // (n_mid // n_top))[mid]
    n = mid.size
    x1 = rng.normal(size=n)
    x2 = rng.binomial(1, 0.5, n).astype(float)
    eta = -0.2 + 0.5 * x1 - 0.3 * x2
    eta += rng.normal(0, 0.7, n_top)[top] + rng.normal(0, 0.9, n_mid)[mid]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "top": top, "mid": mid})


def _load() -> str:
    try:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "load average unknown"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--method", default="mvaghermite")
    parser.add_argument("--nagq", type=int, default=7)
    parser.add_argument("--skip-guimmun", action="store_true")
    args = parser.parse_args()
    print(_load())
    if not args.skip_guimmun:
        gi = pd.read_csv(DATA)
        for method, nagq in (("laplace", None), ("mvaghermite", 7), ("mvaghermite", 12)):
            mg.glmm(GUIMMUN, gi, method=method, nagq=nagq, nolog=True, quiet=True)  # compile
            t0 = time.perf_counter()
            res = mg.glmm(GUIMMUN, gi, method=method, nagq=nagq, nolog=True, quiet=True)
            print(
                f"guImmun (1 | comm/mom), {res.rule.describe()}: "
                f"{time.perf_counter() - t0:.2f} s ({res.iterations} iterations, "
                f"log likelihood {res.loglik:.6f})"
            )
    nagq = None if args.method == "laplace" else args.nagq
    small = simulate(0.01)
    mg.glmm("y ~ x1 + x2 + (1 | top/mid)", small, method=args.method, nagq=nagq, nolog=True)
    for scale in args.scales:
        data = simulate(scale)
        tracemalloc.start()
        t0 = time.perf_counter()
        res = mg.glmm(
            "y ~ x1 + x2 + (1 | top/mid)", data, method=args.method, nagq=nagq, nolog=True,
            quiet=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(
            f"simulated x{scale:g}, {res.rule.describe()}: {len(data):,} rows, "
            f"{data['mid'].nunique():,} level-2 in {data['top'].nunique():,} level-3 units: "
            f"{elapsed:.2f} s, peak {peak:.0f} MiB ({res.iterations} iterations, "
            f"log likelihood {res.loglik:.4f}); {_load()}"
        )
        print(res.sd()[["group", "estimate", "se"]].to_string())


if __name__ == "__main__":
    main()
