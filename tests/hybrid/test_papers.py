"""The seed's hybrid model on the bundled papers data: the demo's output in the seed's
layout, and the within effects against the conditional fixed-effects logit."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from mixedglm.datasets import load_dataset
from mixedglm.demo import hybrid_demo
from mixedglm.optim import newton_maximize

pytestmark = pytest.mark.slow  # the seed's hybrid fit on all 374,334 papers

USE = ["nauthors", "npages", "nrefs", "jifperc", "careerstage"]
SEED = Path(__file__).parent.parent / "report" / "seed_output.txt"


@pytest.fixture(scope="module")
def papers():
    return load_dataset("papers")


@pytest.fixture(scope="module")
def demo(papers):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        res = hybrid_demo(papers)
    return res, out.getvalue()


def _seed_block() -> list[str]:
    lines = [line.rstrip() for line in SEED.read_text().splitlines()]
    i = lines.index("Hybrid model. Family: binomial. Link: logit.")
    j = next(k for k in range(i, len(lines)) if lines[k].startswith("Level 1:"))
    return lines[i : j + 1]


def test_demo_prints_the_seeds_third_analysis(demo):
    res, text = demo
    lines = text.splitlines()
    assert lines[:5] == [
        "",
        "Hybrid Model for highly ranked (top quartile) paper",
        "",
        ". xthybrid topq female usa socialscience, use(nauthors npages nrefs jifperc "
        "careerstage) ///",
        ">         family(binomial) link(logit) clusterid(id) star",
    ]
    seed = _seed_block()
    ours = lines[5 : 5 + len(seed)]
    # the same lines, labels and widths; the numbers are those of the simulated data
    assert [len(line) for line in ours] == [len(line) for line in seed]
    assert [line[:23] for line in ours] == [line[:23] for line in seed]
    assert ours[-1] == "Level 1: 374334 units. Level 2: 14129 units."
    assert lines[5 + len(seed)].startswith("(estimation took ")
    assert res.converged
    assert res.n_groups == 14129


def test_within_effects_are_close_to_the_conditional_logit(papers, demo):
    """Within effects of a logit hybrid model approximate, not equal, the conditional
    (fixed-effects) logit estimates. Tolerance: a quarter of the conditional estimates'
    standard errors and 1 % of their size (measured: at most 0.15 SE and 0.3 %)."""
    conditional = pytest.importorskip("mixedglm.engines.conditional")
    res, _ = demo
    data = papers.sort_values("id", kind="stable")
    X = np.ascontiguousarray(data[USE].to_numpy(dtype=float))
    y = data["topq"].to_numpy(dtype=float)
    codes = data["id"].to_numpy()
    starts = np.r_[0, np.flatnonzero(codes[1:] != codes[:-1]) + 1, len(codes)].astype(np.int64)
    beta, ev, opt = newton_maximize(
        lambda b, order: conditional.clogit_evaluate(b, X, y, starts, order), np.zeros(len(USE))
    )
    assert opt.converged
    se = np.sqrt(np.diag(np.linalg.inv(-ev.hessian)))
    within = res.params[[f"W__{v}" for v in USE]].to_numpy()
    np.testing.assert_array_less(np.abs(within - beta), 0.25 * se)
    np.testing.assert_allclose(within, beta, rtol=0.01)
    # ... while the between effects are far from them: the random-effects assumption fails
    assert res.tests().loc["joint", "p"] < 1e-10
