"""Benchmark: a linear mixed model with crossed factors shaped like lme4's ``InstEval``.

Simulated Gaussian data: 73,421 rows, 2,972 students x 1,128 lecturers (crossed) and 28
department x service levels, ``y ~ service + (1 | s) + (1 | d) + (1 | dept:service)``
(lme4's ``lmer(y ~ service + (1|s) + (1|d) + (1|dept:service), InstEval)``). Printed: the
wall time of the ML and the REML fit (each a second call; the first loads numba's cache),
the criterion's evaluations and the estimated SDs.

Run: ``.venv/bin/python benchmarks/bench_lmm.py``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

import mixedglm as mg

os.environ.setdefault("MIXEDGLM_KERNELS", "compiled")  # compiled kernels, even when cold

FORMULA = "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)"


def simulate(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 73421
    s, d = rng.integers(0, 2972, n), rng.integers(0, 1128, n)
    dept, service = d % 14, rng.integers(0, 2, n)
    y = 3.2 + 0.1 * service + rng.normal(0, 0.32, 2972)[s] + rng.normal(0, 0.52, 1128)[d]
    y += rng.normal(0, 0.25, 28)[dept * 2 + service] + rng.normal(0, 1.18, n)
    return pd.DataFrame({"y": y, "s": s, "d": d, "dept": dept, "service": service})


def main() -> None:
    data = simulate()
    small = data.iloc[:2000]
    for reml in (False, True):
        mg.glmm(FORMULA, small, family="gaussian", reml=reml, quiet=True, nolog=True)
        t0 = time.perf_counter()
        res = mg.glmm(FORMULA, data, family="gaussian", reml=reml, quiet=True, nolog=True)
        took = time.perf_counter() - t0
        sd = res.sd()
        sds = ", ".join(f"{g} {v:.4f}" for g, v in zip(sd["group"], sd["estimate"], strict=True))
        print(
            f"{'REML' if reml else 'ML  '}: {took:6.2f} s, {res.opt.evaluations} evaluations, "
            f"log likelihood {res.loglik:.4f}; SDs: {sds}"
        )


if __name__ == "__main__":
    main()
