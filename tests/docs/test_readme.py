"""The README's (and the documentation's) Python code blocks run, so they cannot rot.

Every ```python block of a page runs in order in one namespace, in a temporary directory
holding the CSV files the examples name. To stay quick the bundled ``papers`` data are
replaced by their first 200 authors (about 5,000 papers) while the blocks run; ``df``,
``data`` and ``newdata``, which the examples use as placeholders for the reader's data, are
set beforehand (a negative-binomial panel, the mmmec data, a few papers).
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedglm.datasets as datasets
from mixedglm.datasets.papers import load_papers

from refdata import REFERENCE, load_reference_data

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
FILES = ("salamanders.csv", "cake.csv", "wine.csv", "mmmec.csv")


def python_blocks(page: Path) -> list[str]:
    return _BLOCK.findall(page.read_text())


def _small_papers() -> pd.DataFrame:
    data = load_papers()
    return data.loc[data["id"] <= 200].reset_index(drop=True)


def _placeholders(papers: pd.DataFrame) -> dict:
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(40), 10)
    x = rng.normal(size=g.size)
    mu = np.exp(0.5 + 0.3 * x + rng.normal(0, 0.5, 40)[g])
    count = rng.negative_binomial(2.0, 2.0 / (2.0 + mu))
    return {
        "df": pd.DataFrame({"count": count, "x": x, "g": g}),
        "data": load_reference_data("mmmec"),
        "newdata": papers.iloc[:20].copy(),
    }


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_code_blocks_run(page, tmp_path, monkeypatch):
    for name in FILES:
        shutil.copy(REFERENCE / "data" / name, tmp_path / name)
    (tmp_path / "tests").symlink_to(ROOT / "tests")  # the examples' tests/reference/data/...
    monkeypatch.chdir(tmp_path)
    small = _small_papers()
    monkeypatch.setitem(datasets._LOADERS, "papers", lambda: small.copy())
    namespace = {"__name__": "readme", **_placeholders(small)}
    for k, block in enumerate(python_blocks(page)):
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exec(compile(block, f"{page.name} block {k + 1}", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"{page.name}, block {k + 1} fails:\n{block}") from err
