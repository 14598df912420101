"""A new user's first fit: wall time with an empty compilation cache, per family.

Each case runs in a fresh Python process whose numba cache is an empty temporary folder
(``NUMBA_CACHE_DIR``), so everything the fit needs is compiled or, for one-factor models
(``MIXEDGLM_KERNELS=auto``, the default), runs on the NumPy mirror of the quadrature kernel
while a background process compiles that kernel; then, once that has finished, the same
command again with the cache filled (a second session, on the compiled kernel). Prints one
line per case, with the background compilation's wall time.

    .venv/bin/python benchmarks/bench_first_fit.py            # every family
    .venv/bin/python benchmarks/bench_first_fit.py --only logit
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GUIMMUN_CSV = str(Path(__file__).resolve().parents[1] / "tests/reference/data/guimmun.csv")
GUIMMUN = (
    "immun ~ kid2p + mom25p + C(ord) + C(ethn) + C(momEd) + C(husEd) + momWork + rural"
    " + pcInd81 + (1 | comm/mom)"
)

CASES = {
    # the command: a 37,000-row random-intercept logit on the bundled papers data
    "logit": ("papers", "topq ~ nauthors + female + (1 | id)", "binomial", "sample10 == 1"),
    "probit": ("papers", "topq ~ nauthors + female + (1 | id)", "binomial probit", "sample10 == 1"),
    "poisson": ("papers", "nrefs ~ nauthors + female + (1 | id)", "poisson", "sample10 == 1"),
    "gaussian": ("papers", "jifperc ~ nauthors + female + (1 | id)", "gaussian", "sample10 == 1"),
    "nbinomial": ("papers", "nrefs ~ nauthors + female + (1 | id)", "nbinomial", "sample10 == 1"),
    "gamma": ("papers", "npages ~ nauthors + female + (1 | id)", "gamma", "sample10 == 1"),
    "ordinal": ("papers", "band ~ nauthors + female + (1 | id)", "ologit", "sample10 == 1"),
    # three levels by nested adaptive quadrature (7 points per level): guImmun
    "nested": (GUIMMUN_CSV, GUIMMUN, "binomial", "kid2p == kid2p"),
}

SCRIPT = """
import sys, time
t0 = time.perf_counter()
import mixedglm as mg
from mixedglm.datasets import load_dataset
if sys.argv[1].endswith(".csv"):
    import pandas as pd
    data = pd.read_csv(sys.argv[1])
else:
    data = load_dataset(sys.argv[1])
    data["band"] = (data["jifperc"] // 25).clip(upper=3)  # a 4-category ordinal outcome
t1 = time.perf_counter()
family, _, link = sys.argv[3].partition(" ")
res = mg.glmm(sys.argv[2], data, family=family, link=link or None, subset=sys.argv[4],
              quiet=True)
t2 = time.perf_counter()
from mixedglm import compile_cache
pids = [str(p.pid) for p in compile_cache._launched.values() if p is not None]
print(f"{t1 - t0:.2f} {t2 - t1:.2f} {res.time_s:.2f} {res.loglik:.6f}", *pids)
"""


def run(case: tuple[str, str, str, str], cache: str) -> tuple[list[float], list[int]]:
    """Wall, import, fit and estimation times and the log likelihood; the background
    compilations' process ids."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, MIXEDGLM_KERNELS="auto")
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *case], env=env, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - start
    imp, fit, est, ll, *pids = out.stdout.split()
    return [wall, float(imp), float(fit), float(est), float(ll)], [int(p) for p in pids]


def wait_for(pids: list[int]) -> float:
    """Seconds until the processes ``pids`` (not children of this one) have ended."""
    start = time.perf_counter()
    for pid in pids:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="cases to run")
    args = parser.parse_args()
    head = f"{'case':<10} {'cold wall':>10} {'cold fit':>9} {'warm wall':>10} {'warm fit':>9}"
    print(f"{head} {'background':>11}")
    for name in args.only or CASES:
        with tempfile.TemporaryDirectory() as cache:
            cold, pids = run(CASES[name], cache)
            more = wait_for(pids)  # the compiled kernel in the cache: the next session's
            warm, _ = run(CASES[name], cache)
        extra = f"{cold[0] + more:>10.1f}s" if pids else f"{'-':>11}"
        line = f"{cold[0]:>9.1f}s {cold[2]:>8.1f}s {warm[0]:>9.1f}s {warm[2]:>8.1f}s {extra}"
        print(f"{name:<10} {line}")


if __name__ == "__main__":
    main()
