"""Benchmark: the seed's 12-point random-effects logit on Dask against the in-memory fit.

The data are ``--scale`` copies of the bundled ``papers`` (374,334 papers, 14,129 authors;
copy ``k`` has its author ids shifted so that every copy's authors are new clusters), written
as ``--files`` Parquet files with every author's papers spread over all the files (so the
shuffle has to bring each cluster together). Prints the wall time of the in-memory fit
(reading the Parquet files included) and of the fit on a LocalCluster of ``--workers``
processes limited to ``--memory`` each (reading, shuffle and design included; the cluster's
start and the workers' first compilation of the kernels, done by a small warm-up fit,
excluded), their ratio, how the Dask time splits into shuffle (with reading), design (level
pass, build, collinearity), maps (the evaluations' round trips, worker compute included) and
reduce (the client's sums), the peak resident memory of each worker, and the largest relative
difference between the two fits' estimates and standard errors.

Run (the figures in the issue's closing note):
``.venv/bin/python benchmarks/bench_dask.py --scale 10 --files 16 --workers 2 --memory 4GB``
``.venv/bin/python benchmarks/bench_dask.py --scale 30 --files 16 --workers 2 --memory 3GB
--no-memory-fit`` (30x: 11 million rows; no in-memory fit, each worker limited to 3 GB).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from distributed import Client, LocalCluster

import mixedglm as mg
from mixedglm.datasets import load_dataset

os.environ.setdefault("MIXEDGLM_KERNELS", "compiled")  # compiled kernels, even when cold

FORMULA = (
    "topq ~ nauthors + npages + nrefs + jifperc + careerstage + female + usa + socialscience"
    " + (1 | id)"
)


def write_copies(folder: Path, scale: int, files: int) -> int:
    """``scale`` copies of papers in ``files`` Parquet files; returns the number of rows."""
    papers = load_dataset("papers")
    shift = int(papers["id"].max()) + 1
    rows = 0
    for f in range(files):
        part = papers.iloc[f::files]
        chunk = pd.concat(
            [part.assign(id=part["id"] + k * shift) for k in range(scale)], ignore_index=True
        )
        chunk.to_parquet(folder / f"papers-{f:02d}.parquet", index=False)
        rows += len(chunk)
    return rows


def _peak_mb() -> float:
    """This process's peak resident memory (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker_peak_mb() -> float:
    """A worker's peak resident memory since :func:`_reset_peak` (MB): Linux's ``VmHWM``
    (``ru_maxrss`` would carry the parent's peak over the worker's fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) / 1024
    return _peak_mb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory", default="4GB", help="memory limit per worker")
    parser.add_argument("--nagq", type=int, default=12)
    parser.add_argument("--no-memory-fit", action="store_true", help="skip the in-memory fit")
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        rows = write_copies(folder, args.scale, args.files)
        print(f"papers x{args.scale}: {rows:,} rows in {args.files} Parquet files")
        print(f"  writing the files       : {time.perf_counter() - t0:.1f} s")
        mem = None
        if not args.no_memory_fit:
            mg.glmm(FORMULA, load_dataset("papers").iloc[:2000], nagq=args.nagq, nolog=True)
            t0 = time.perf_counter()
            data = pd.read_parquet(folder)
            mem = mg.glmm(FORMULA, data, nagq=args.nagq, nolog=True, quiet=True)
            wall_mem = time.perf_counter() - t0
            del data
            print(f"  in memory               : {wall_mem:.1f} s (estimation {mem.time_s:.1f} s)")
            print(f"  in memory, peak RSS     : {_peak_mb():.0f} MB (this process)")
        threads = max(1, (os.cpu_count() or 1) // args.workers)
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=threads,
                memory_limit=args.memory,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            warm = load_dataset("papers").iloc[:3000]
            mg.glmm(FORMULA, warm, nagq=args.nagq, nolog=True, quiet=True, engine="dask")
            client.run(_reset_peak)
            t0 = time.perf_counter()
            res = mg.glmm(
                FORMULA, str(folder), nagq=args.nagq, nolog=True, quiet=True, engine="dask"
            )
            wall = time.perf_counter() - t0
            peaks = client.run(_worker_peak_mb)
        t = res.timings
        print(f"  Dask, {args.workers} workers x {threads} threads, {args.memory} each:")
        print(f"    whole call            : {wall:.1f} s ({res.n_partitions} partitions)")
        print(f"    shuffle (with read)   : {t['shuffle']:.1f} s")
        print(f"    design                : {t['design']:.1f} s")
        print(f"    maps ({t['maps']} evaluations) : {t['map']:.1f} s")
        print(f"    reduce (client sums)  : {t['reduce'] * 1e3:.1f} ms")
        for w, mb in sorted(peaks.items()):
            print(f"    peak RSS of {w:<22}: {mb:.0f} MB")
        print(f"    log likelihood        : {res.loglik:.4f} ({res.iterations} iterations)")
        if mem is not None:
            rel = np.max(np.abs(res.params_all - mem.params_all) / np.abs(mem.params_all))
            se = np.max(np.abs(res.bse - mem.bse) / mem.bse)
            print(f"  ratio Dask / in memory  : {wall / wall_mem:.2f}")
            print(f"  max relative difference : estimates {rel:.1e}, fixed-effect SEs {se:.1e}")
            print(f"  log-likelihood diff     : {abs(res.loglik - mem.loglik):.1e}")


def _reset_peak() -> None:
    """Linux: reset the process's peak RSS so that the warm-up fit does not count."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


if __name__ == "__main__":
    main()
