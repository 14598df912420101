"""A new user's first fit: wall time with an empty compilation cache, per family.

Each case runs in a fresh Python process whose numba cache is an empty temporary folder
(``NUMBA_CACHE_DIR``), so everything the fit needs is compiled; then the same command again
with that cache filled (a second session). Prints one line per case.

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
print(f"{t1 - t0:.2f} {t2 - t1:.2f} {res.time_s:.2f} {res.loglik:.6f}")
"""


def run(case: tuple[str, str, str, str], cache: str) -> list[float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *case], env=env, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - start
    imp, fit, est, ll = (float(v) for v in out.stdout.split())
    return [wall, imp, fit, est, ll]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="cases to run")
    args = parser.parse_args()
    print(f"{'case':<10} {'cold wall':>10} {'cold fit':>9} {'warm wall':>10} {'warm fit':>9}")
    for name in args.only or CASES:
        with tempfile.TemporaryDirectory() as cache:
            cold = run(CASES[name], cache)
            warm = run(CASES[name], cache)
        print(f"{name:<10} {cold[0]:>9.1f}s {cold[2]:>8.1f}s {warm[0]:>9.1f}s {warm[2]:>8.1f}s")


if __name__ == "__main__":
    main()
