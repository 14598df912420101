"""The Dask tests' cluster: two in-process workers of one thread each (small and quick),
shuffling with tasks; one per test module."""

from __future__ import annotations

import logging

import dask
import pytest
from distributed import Client, LocalCluster


@pytest.fixture(scope="module")
def client():
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with (
        dask.config.set({"dataframe.shuffle.method": "tasks"}),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c
