"""Shared by the Dask tests (tests/scale): a fit's JSON equals the in-memory one; small
data for the conditional models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special


def same_document(mine: dict, memory: dict, workers: int = 2) -> None:
    """A Dask fit's JSON is the in-memory one (floats to 1e-6 relative) with ``engine``,
    ``partitions`` and ``workers`` added; the time taken and the sample's signature (the
    rows have no global labels on Dask: ``dask:`` rows and hashes, or None) aside."""
    mine, memory = dict(mine), dict(memory)
    assert mine.pop("engine") == "dask"
    assert mine.pop("partitions") >= 1
    assert mine.pop("workers") == workers
    for doc in (mine, memory):
        doc.pop("time_s")
    if mine.get("sample") is None or str(mine["sample"]).startswith("dask:"):
        memory.pop("sample", None)
        mine.pop("sample", None)
    _same(mine, memory, "")


def _same(a, b, path: str) -> None:
    if isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys(), path
        for key in b:
            _same(a[key], b[key], f"{path}.{key}")
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{k}]")
    elif isinstance(b, float) and isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-10, nan_ok=True), path
    else:
        assert a == b, path


def parquet_parts(data: pd.DataFrame, tmp_path, parts: int = 3) -> tuple[str, str]:
    """``data`` as one Parquet file and as a directory of ``parts`` files (every
    ``parts``-th row in each): their paths."""
    whole = tmp_path / "all.parquet"
    data.to_parquet(whole)
    folder = tmp_path / "parts"
    folder.mkdir()
    for k in range(parts):
        data.iloc[k::parts].to_parquet(folder / f"part-{k}.parquet")
    return str(whole), str(folder)


def simulate_conditional(kind: str, seed: int = 1, n_groups: int = 150) -> pd.DataFrame:
    """Groups of 1 to 8 rows (some without information), a text covariate with a rare
    level, a column collinear with others and one constant within groups, missing values
    (also of the group), rows in random order."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, n_groups)
    g = np.repeat(np.arange(n_groups), sizes)
    n = g.size
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    region = rng.choice(["north", "south", "east"], n)
    region[rng.choice(n, 6, replace=False)] = "west"
    gc = rng.normal(size=n_groups)[g]
    expo = rng.uniform(0.5, 2.0, n)
    eta = rng.normal(size=n_groups)[g] + 0.6 * x1 - 0.4 * x2 + 0.3 * (region == "south")
    if kind == "logit":
        y = rng.binomial(1, special.expit(eta))
    else:
        y = rng.poisson(np.exp(eta - 0.5) * expo)
    data = pd.DataFrame(
        {
            "y": y.astype(float),
            "x1": x1,
            "x2": x2,
            "x3": 2 * x1 - x2,
            "gc": gc,
            "region": region,
            "g": [f"c{k:03d}" for k in g],
            "w": (1 + np.arange(n_groups) % 3)[g],
            "county": (np.arange(n_groups) // 10)[g],
            "expo": expo,
        }
    )
    data.loc[rng.choice(n, 5, replace=False), "x1"] = np.nan
    data.loc[rng.choice(n, 3, replace=False), "g"] = None
    return data.sample(frac=1.0, random_state=seed).reset_index(drop=True)
