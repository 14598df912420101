"""Value labels: the bundled papers data print as the seed; labelled categoricals from .dta
and Parquet keep their labels in every table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.datasets import load_dataset
from mixedglm.labels import level_label, set_value_labels, value_labels


def test_papers_carry_stata_value_labels():
    data = load_dataset("papers")
    labels = value_labels(data)
    assert labels["female"] == {"0": "Male", "1": "Female"}
    assert labels["usa"] == labels["socialscience"] == {"0": "No", "1": "Yes"}
    assert data["female"].dtype.kind == "i"  # still a 0/1 number, as in Stata
    assert value_labels(data.loc[data["sample10"] == 1], ["usa"]) == {"usa": labels["usa"]}


def test_level_label():
    labels = {"female": {"0": "Male", "1": "Female"}}
    assert level_label("female", "1", labels) == "Female"
    assert level_label("female", "1.0", labels) == "Female"
    assert level_label("female", "2", labels) == "2"
    assert level_label("usa", "1", labels) == "1"


@pytest.fixture(scope="module")
def labelled(panel):
    data = panel.copy()
    set_value_labels(data, {"f": {0: "Public", 1: "Private"}})
    return data


def test_labels_in_glmm_tables(labelled):
    res = mg.glmm("y ~ x + C(f) + (1 | g)", labelled, nolog=True, quiet=True)
    text = str(res.summary())
    assert "           f |" in text or "f |" in text
    assert "Private  |" in text
    assert "Private" in res.summary().as_html() and "Private" in res.summary().as_markdown()
    assert "Private" in res.summary().as_latex()
    assert "Private" in str(res.summary(style="xt"))
    assert list(res.params.index)[1] == "C(f)[1]"  # the names stay Stata's 1.f


def test_labels_in_conditional_tables(labelled):
    rng = np.random.default_rng(0)
    data = labelled.assign(f=rng.integers(0, 2, len(labelled)))
    set_value_labels(data, {"f": {0: "Public", 1: "Private"}})
    res = mg.clogit("y ~ x + C(f)", data, group="g", quiet=True)
    assert "Private  |" in str(res.summary())
    assert "Private" in res._repr_html_()


def _categorical(data: pd.DataFrame) -> pd.DataFrame:
    return data.assign(f=pd.Categorical.from_codes(data["f"], ["Public", "Private"]))


def test_stata_file_labels_in_tables(labelled, tmp_path):
    path = tmp_path / "panel.dta"
    data = labelled.astype({"f": "int8", "g": "int32"})
    data.attrs = {}
    data.to_stata(path, write_index=False, value_labels={"f": {0: "Public", 1: "Private"}})
    res = mg.glmm("y ~ x + f + (1 | g)", str(path), nolog=True, quiet=True)
    assert "Private  |" in str(res.summary())
    assert "f[Private]" in mg.compare([res]).to_frame().index.get_level_values("term")


def test_parquet_labels_in_tables(labelled, tmp_path):
    numeric, categorical = tmp_path / "numeric.parquet", tmp_path / "categorical.parquet"
    labelled.to_parquet(numeric)
    _categorical(labelled).to_parquet(categorical)
    res = mg.glmm("y ~ x + C(f) + (1 | g)", str(numeric), nolog=True, quiet=True)
    assert "Private  |" in str(res.summary())
    res = mg.glmm("y ~ x + f + (1 | g)", str(categorical), nolog=True, quiet=True)
    assert "Private  |" in str(res.summary())
    assert "f[Private]" in res.params.index
