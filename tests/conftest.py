"""Shared fixtures."""

from __future__ import annotations

import pandas as pd
import pytest

from refdata import load_reference_data


@pytest.fixture(scope="session")
def contraception() -> pd.DataFrame:
    return load_reference_data("contraception")
