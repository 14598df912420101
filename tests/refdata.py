"""Loaders of the reference results (tests/reference/*.json) and their data sets."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

REFERENCE = Path(__file__).parent / "reference"


def load_reference(name: str) -> dict:
    """A reference result from tests/reference (made by the R scripts in reference/r)."""
    return json.loads((REFERENCE / f"{name}.json").read_text())


def load_reference_data(name: str) -> pd.DataFrame:
    """A reference data set (tests/reference/data/<name>.csv)."""
    return pd.read_csv(REFERENCE / "data" / f"{name}.csv")
