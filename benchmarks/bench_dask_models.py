"""Benchmark: ``clogit``, ``xtpoisson_fe`` and ``hybrid`` on Dask against the in-memory fits.

The data are ``--scale`` copies of the bundled ``papers`` in ``--files`` Parquet files, every
author's papers spread over all the files (see ``bench_dask.py``). For each model prints the
wall time in memory (reading the files included) and on a LocalCluster of ``--workers``
processes (reading, shuffle and design included; the cluster's start and the workers' first
compilation, done by a small warm-up fit, excluded), and the largest relative differences of
the estimates and standard errors and the log-likelihood difference.

Run: ``.venv/bin/python benchmarks/bench_dask_models.py --scale 1 --files 8 --workers 2``
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from distributed import Client, LocalCluster

import mixedglm as mg
from bench_dask import write_copies
from mixedglm.datasets import load_dataset

os.environ.setdefault("MIXEDGLM_KERNELS", "compiled")  # compiled kernels, even when cold

MODELS = {
    "clogit": (mg.clogit, "topq ~ nauthors + npages + nrefs + jifperc", {"group": "id"}),
    "xtpoisson_fe": (mg.xtpoisson_fe, "nrefs ~ nauthors + npages + jifperc", {"group": "id"}),
    "hybrid": (
        mg.hybrid,
        "jifperc ~ nauthors npages nrefs",
        {"cluster": "id", "nagq": 3},
    ),
}


def _estimates(res) -> tuple[np.ndarray, np.ndarray, float]:
    fit = getattr(res, "glmm", res)
    params = getattr(fit, "params_all", None)
    params = fit.params_array if params is None else params
    return np.asarray(params), np.asarray(fit.bse), float(fit.loglik)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warm = load_dataset("papers").iloc[:3000]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = write_copies(folder, args.scale, args.files)
        print(f"papers x{args.scale}: {rows:,} rows in {args.files} Parquet files")
        threads = max(1, (os.cpu_count() or 1) // args.workers)
        with (
            LocalCluster(
                n_workers=args.workers, threads_per_worker=threads, dashboard_address=None
            ) as cluster,
            Client(cluster),
        ):
            for name in args.models:
                fit, formula, options = MODELS[name]
                fit(formula, warm, quiet=True, **options)
                fit(formula, warm, quiet=True, engine="dask", **options)
                t0 = time.perf_counter()
                mem = fit(formula, pd.read_parquet(folder), quiet=True, **options)
                wall_mem = time.perf_counter() - t0
                t0 = time.perf_counter()
                res = fit(formula, str(folder), quiet=True, engine="dask", **options)
                wall = time.perf_counter() - t0
                (b0, s0, l0), (b1, s1, l1) = _estimates(mem), _estimates(res)
                rel = np.max(np.abs(b1 - b0) / np.maximum(np.abs(b0), 1e-300))
                se = np.max(np.abs(s1 - s0) / s0)
                print(
                    f"  {name:<13}: in memory {wall_mem:6.1f} s, Dask {wall:6.1f} s "
                    f"(ratio {wall / wall_mem:.2f}); max rel. diff estimates {rel:.1e}, "
                    f"SEs {se:.1e}; loglik diff {abs(l1 - l0):.1e}"
                )


if __name__ == "__main__":
    main()
