"""Benchmark: crossed random effects by the joint Laplace approximation (lme4's glmer, nAGQ=1).

Simulated binary data: 200,000 rows, 4,000 subjects x 400 items (50 items per subject, each
item seen by 500 subjects), ``y ~ x1 + x2 + x3 + (1 | subject) + (1 | item)``. Printed: the
wall time of the whole ``mg.glmm`` call (a second call; the first loads numba's cache), the
Newton iterations and function evaluations, and in the same run a pooled logit of the same
data by statsmodels (``sm.Logit``) and the ratio of the two (target: <= 20).

Run: ``.venv/bin/python benchmarks/bench_crossed.py [--rows N] [--subjects S] [--items I]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import mixedglm as mg

FORMULA = "y ~ x1 + x2 + x3 + (1 | subject) + (1 | item)"


def simulate(rows: int, subjects: int, items: int, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    per = rows // subjects
    subject = np.repeat(np.arange(subjects), per)
    item = np.concatenate([rng.choice(items, per, replace=False) for _ in range(subjects)])
    n = subject.size
    x1 = rng.normal(size=n)
    x2 = rng.binomial(1, 0.4, n).astype(float)
    x3 = rng.normal(size=subjects)[subject]
    eta = -0.3 + 0.5 * x1 - 0.4 * x2 + 0.3 * x3
    eta += rng.normal(0, 1.0, subjects)[subject] + rng.normal(0, 0.6, items)[item]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "x3": x3, "subject": subject, "item": item})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--subjects", type=int, default=4_000)
    parser.add_argument("--items", type=int, default=400)
    args = parser.parse_args()
    data = simulate(args.rows, args.subjects, args.items)
    small = simulate(4_000, 200, 40)
    mg.glmm(FORMULA, small, nolog=True, quiet=True)  # loads the compiled kernels

    t0 = time.perf_counter()
    res = mg.glmm(FORMULA, data, nolog=True, quiet=True)
    t_mixed = time.perf_counter() - t0

    import statsmodels.api as sm

    X = sm.add_constant(data[["x1", "x2", "x3"]].to_numpy())
    t0 = time.perf_counter()
    pooled = sm.Logit(data["y"].to_numpy(), X).fit(disp=False)
    t_pooled = time.perf_counter() - t0

    print(f"crossed Laplace: {args.rows:,} rows, {args.subjects:,} subjects x {args.items:,} items")
    print(
        f"  mixedglm glmm()         {t_mixed:8.2f} s  ({res.iterations} Newton iterations,"
        f" {res.opt.evaluations} evaluations, log likelihood {res.loglik:.4f})"
    )
    print(f"  statsmodels Logit       {t_pooled:8.2f} s  (pooled, log likelihood {pooled.llf:.4f})")
    print(f"  ratio                   {t_mixed / t_pooled:8.1f} x  (target <= 20)")
    print(res.sd().to_string())


if __name__ == "__main__":
    main()
