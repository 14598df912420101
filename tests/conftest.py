"""Shared fixtures."""

from __future__ import annotations

import pandas as pd
import pytest

from refdata import load_reference_data


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long tests (marked ``slow``: mostly a family's kernels compiling for a minute)
    first, each group in its collected order: with two pytest-xdist workers stealing work,
    a minute-long test started last leaves the other worker idle at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def contraception() -> pd.DataFrame:
    return load_reference_data("contraception")
