"""The bundled ``papers`` dataset: exact shape of the Schunk & Perales data, reproducibility,
and the within/between structure the simulation is meant to carry."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mixedglm.datasets import dataset_names, load_dataset
from mixedglm.datasets.papers import (
    COLUMNS,
    PAPRBEST_BETA,
    load_papers,
    main,
    simulate_papers,
)

COVARIATES = ["nauthors", "npages", "nrefs", "jifperc", "careerstage"]


@pytest.fixture(scope="module")
def papers() -> pd.DataFrame:
    return load_dataset("papers")


@pytest.fixture(scope="module")
def sizes(papers: pd.DataFrame) -> np.ndarray:
    return np.bincount(papers["id"].to_numpy())[1:]


def _group_start(ids: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])


def test_registry() -> None:
    assert "papers" in dataset_names()
    with pytest.raises(ValueError, match=r"'nope'.*'papers'"):
        load_dataset("nope")


def test_loads_without_pyarrow() -> None:
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from mixedglm.datasets import load_dataset\n"
        "assert len(load_dataset('papers')) == 374_334\n"
        "assert 'pyarrow' not in sys.modules or sys.modules['pyarrow'] is None"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_columns_and_dtypes(papers: pd.DataFrame) -> None:
    assert list(papers.columns) == list(COLUMNS)
    for c in COLUMNS:
        expected = np.float64 if c == "jifperc" else np.int64
        assert papers[c].dtype == expected, c
    assert not papers.isna().any().any()


def test_shape(papers: pd.DataFrame, sizes: np.ndarray) -> None:
    ids = papers["id"].to_numpy()
    assert len(papers) == 374_334
    assert np.all(np.diff(ids) >= 0)
    assert ids[0] == 1 and ids[-1] == 14_129 and sizes.size == 14_129
    assert sizes.min() == 1 and sizes.max() == 683
    assert round(sizes.mean(), 1) == 26.5
    assert (sizes == 1).sum() == 799


def test_paprbest_one_per_author(papers: pd.DataFrame, sizes: np.ndarray) -> None:
    best = np.bincount(papers["id"], weights=papers["paprbest"])[1:]
    assert np.all(best == 1)
    # a conditional logit keeps exactly the seed's 373,535 papers in 13,330 groups
    multi = sizes >= 2
    assert multi.sum() == 13_330 and sizes[multi].sum() == 373_535


def test_author_level_columns_constant(papers: pd.DataFrame) -> None:
    ids = papers["id"].to_numpy()
    same_author = ids[1:] == ids[:-1]
    for c in ("female", "usa", "socialscience", "sample10"):
        v = papers[c].to_numpy()
        assert set(np.unique(v)) == {0, 1}, c
        assert np.all(v[1:][same_author] == v[:-1][same_author]), c


def test_sample10(papers: pd.DataFrame) -> None:
    s = papers[papers["sample10"] == 1]
    assert len(s) == 37_391
    assert s["id"].nunique() == 1_413


def test_value_ranges(papers: pd.DataFrame) -> None:
    for c in ("topq", "paprbest"):
        assert set(np.unique(papers[c])) == {0, 1}, c
    assert papers["nauthors"].between(1, 20).all()
    assert papers["npages"].between(5, 60).all()
    assert papers["nrefs"].between(0, 200).all()
    jif = papers["jifperc"].to_numpy()
    assert np.all((jif >= 0) & (jif <= 100))
    assert np.array_equal(np.rint(jif * 100) / 100, jif)  # two decimals exactly
    cs = papers["careerstage"].to_numpy()
    ids = papers["id"].to_numpy()
    assert cs.min() == 0 and cs.max() <= 45
    assert np.all(np.diff(cs)[ids[1:] == ids[:-1]] >= 0)  # rises with paper order
    means = papers[COVARIATES].mean()
    assert 2 < means["nauthors"] < 4
    assert 30 < means["nrefs"] < 50


def test_topq_share(papers: pd.DataFrame) -> None:
    assert 0.29 < papers["topq"].mean() < 0.31


def test_simulation_reproduces_shipped_file(papers: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(simulate_papers(), papers, check_exact=True)


def test_cli_writes_identical_file(tmp_path, papers: pd.DataFrame) -> None:
    out = tmp_path / "papers.npz"
    main(["--out", str(out)])
    pd.testing.assert_frame_equal(load_papers(out), papers, check_exact=True)


def test_other_seed_keeps_shape(papers: pd.DataFrame) -> None:
    df = simulate_papers(seed=7)
    sizes = np.bincount(df["id"])[1:]
    assert len(df) == 374_334 and sizes.size == 14_129
    assert sizes.max() == 683 and (sizes == 1).sum() == 799
    assert df.loc[df["sample10"] == 1, "id"].nunique() == 1_413
    assert (df["sample10"] == 1).sum() == 37_391
    assert not df.equals(papers)


def _logit_newton(y: np.ndarray, X: np.ndarray, steps: int = 8) -> np.ndarray:
    """Maximum-likelihood logit by Newton's method (pooled, no random effects)."""
    beta = np.zeros(X.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(X @ beta)))
        hess = (X * (p * (1 - p))[:, None]).T @ X
        beta += np.linalg.solve(hess, X.T @ (y - p))
    return beta


def test_topq_within_differs_from_between(papers: pd.DataFrame) -> None:
    """Pooled hybrid logit: the within (W__) and between (B__) effects differ as in the seed."""
    ids = papers["id"].to_numpy()
    counts = np.bincount(ids)
    cols = [np.ones(len(papers))]
    for c in COVARIATES:
        x = papers[c].to_numpy(float)
        xbar = (np.bincount(ids, weights=x) / np.maximum(counts, 1))[ids]
        cols += [x - xbar, xbar]
    cols += [papers[c].to_numpy(float) for c in ("female", "usa", "socialscience")]
    beta = _logit_newton(papers["topq"].to_numpy(float), np.column_stack(cols))
    within = dict(zip(COVARIATES, beta[1:11:2], strict=True))
    between = dict(zip(COVARIATES, beta[2:11:2], strict=True))
    # careerstage: clearly negative within authors, about zero between them (-.053 vs -.006)
    assert within["careerstage"] < -0.03
    assert abs(between["careerstage"]) < 0.015
    assert within["careerstage"] - between["careerstage"] < -0.025
    # nauthors: within > between (.082 vs .021); npages, jifperc: between > within
    assert within["nauthors"] - between["nauthors"] > 0.03
    assert between["npages"] - within["npages"] > 0.01
    assert between["jifperc"] > within["jifperc"] > 0.03
    female, usa = beta[11], beta[12]
    assert female < 0 < usa


def test_paprbest_follows_conditional_logit(papers: pd.DataFrame, sizes: np.ndarray) -> None:
    """Conditional logit by Newton: estimates near the true (seed's FE) coefficients."""
    keep = (sizes >= 2)[papers["id"].to_numpy() - 1]
    X = papers.loc[keep, COVARIATES].to_numpy(float)
    y = papers.loc[keep, "paprbest"].to_numpy(float)
    _, g = np.unique(papers.loc[keep, "id"].to_numpy(), return_inverse=True)
    beta = np.zeros(X.shape[1])
    for _ in range(8):
        s = X @ beta
        e = np.exp(s - np.maximum.reduceat(s, _group_start(g))[g])
        p = e / np.bincount(g, weights=e)[g]
        xm = np.column_stack([np.bincount(g, weights=p * x) for x in X.T])
        xc = X - xm[g]
        beta += np.linalg.solve((xc * p[:, None]).T @ xc, X.T @ y - xm.sum(0))
    true = np.array([PAPRBEST_BETA[c] for c in COVARIATES])
    np.testing.assert_allclose(beta, true, atol=0.01)
    assert beta[3] == pytest.approx(true[3], abs=0.003)  # jifperc, the sharpest estimate
