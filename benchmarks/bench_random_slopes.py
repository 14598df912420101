"""Benchmark: the seed's random-slope logit (``melogit topq ... || id: careerstage``).

Fits the model with independent random effects on ``_cons`` and ``careerstage`` by 7 x 7 = 49
point mean-variance AGHQ, on the 10% sample of `papers` (37,391 papers in 1,413 authors) and
on all of it (374,334 papers in 14,129 authors), and prints estimation times, Newton
iterations and peak memory. With ``--lme4`` (and R with lme4 installed) it also times
``glmer`` (Laplace, lme4's only option for a vector random effect) on the 10% sample. The
numba kernels are compiled (or loaded from their cache) by a warm-up fit first.

Run: ``.venv/bin/python benchmarks/bench_random_slopes.py [--lme4] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numba

import mixedglm as mg
from mixedglm.datasets import load_dataset

os.environ.setdefault("MIXEDGLM_KERNELS", "compiled")  # compiled kernels, even when cold

FIXED = "topq ~ nauthors + npages + nrefs + jifperc + careerstage + female + usa + socialscience"
FORMULA = f"{FIXED} + (1 + careerstage || id)"
R_SCRIPT = """
suppressPackageStartupMessages(library(lme4))
d <- read.csv("{path}")
t <- system.time(m <- glmer(topq ~ nauthors + npages + nrefs + jifperc + careerstage + female +
  usa + socialscience + (1 | id) + (0 + careerstage | id), data = d, family = binomial))
cat(sprintf("%.2f %.4f\\n", t[["elapsed"]], as.numeric(logLik(m))))
"""


def _fit(data, label: str) -> None:
    start = time.perf_counter()
    res = mg.glmm(FORMULA, data, nagq=7, nolog=True, quiet=True)
    wall = time.perf_counter() - start
    print(f"{label}: {res.nobs:,} papers, {res.design.group.n_groups:,} authors")
    print(f"  log likelihood      : {res.loglik:.4f}  (converged: {res.converged})")
    print(f"  Newton iterations   : {res.iterations}")
    print(f"  estimation time_s   : {res.time_s:.3f} s   (whole call {wall:.3f} s)")
    for vc in res.varcomp():
        print(f"  {vc.name:<20}: {vc.estimate:.6f} ({vc.se:.6f})")


def _lme4(sample) -> None:
    if shutil.which("Rscript") is None:
        print("lme4: Rscript not found, not timed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample10.csv"
        sample.to_csv(path, index=False)
        script = Path(tmp) / "fit.R"
        script.write_text(R_SCRIPT.format(path=path))
        out = subprocess.run(["Rscript", str(script)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(f"lme4: failed: {out.stderr.strip()[-300:]}")
        return
    elapsed, loglik = out.stdout.split()[-2:]
    print(f"lme4 glmer (Laplace) on the 10% sample: {float(elapsed):.1f} s, loglik {loglik}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--lme4", action="store_true", help="also time lme4 (needs R)")
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    data = load_dataset("papers")
    sample = data[data["sample10"] == 1]
    mg.glmm(FORMULA, sample.iloc[:2000], nagq=7, nolog=True, quiet=True)  # warm-up
    print(f"threads: {numba.get_num_threads()}")
    _fit(sample, "10% sample (sample10 == 1)")
    _fit(data, "all of papers")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mb:.0f} MB (process, numba/LLVM included)")
    if args.lme4:
        _lme4(sample)


if __name__ == "__main__":
    main()
