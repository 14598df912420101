"""Shared fixtures. The suite runs the one-factor models on the compiled kernels
(``MIXEDGLM_KERNELS=compiled``, set before any fit and inherited by the processes the tests
start): which implementation ``auto`` takes depends on what the cache holds, so it would
vary with the order of the tests; ``tests/engines/test_kernel_choice.py`` tests ``auto`` and
the NumPy mirror themselves."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from refdata import load_reference_data

os.environ.setdefault("MIXEDGLM_KERNELS", "compiled")


@pytest.fixture(scope="session")
def contraception() -> pd.DataFrame:
    return load_reference_data("contraception")
