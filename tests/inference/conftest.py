"""Fixtures of the inference tests: a small simulated panel (fits take well under a second)."""

from __future__ import annotations

import pandas as pd
import pytest

from inference_data import fit, simulate_logit


@pytest.fixture(scope="session")
def panel() -> pd.DataFrame:
    return simulate_logit()


@pytest.fixture(scope="session")
def ri_fit(panel):
    return fit("y ~ x + d + (1 | g)", panel, nagq=12)
