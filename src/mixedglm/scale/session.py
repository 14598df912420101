"""The Dask client of a fit: the user's, a scheduler's address, or a LocalCluster of ours.

An existing :class:`distributed.Client` (the current one) is used as it is and left open; with
``scheduler`` a client connects to that address and disconnects at the end; otherwise a
:class:`distributed.LocalCluster` with ``workers`` worker processes is started and closed
when the fit is done.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster

from mixedglm.errors import MixedGLMError

DEFAULT_WORKERS = 2
CONNECT_TIMEOUT = "20s"


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MixedGLMError(f"{name} must be a positive integer, not {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise MixedGLMError(f"{name} must be a positive integer, not {value!r}") from None
    if number < 1:
        raise MixedGLMError(f"{name} must be a positive integer, not {value!r}")
    return number


@contextmanager
def dask_client(
    scheduler: str | None = None,
    workers: int | None = None,
    memory_limit: str | None = None,
) -> Iterator[Client]:
    """The client to fit with (see the module's docstring); ours are closed on exit."""
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except OSError as err:
            raise MixedGLMError(
                f"cannot connect to the Dask scheduler at '{scheduler}': {err}"
            ) from err
        try:
            yield client
        finally:
            client.close()
        return
    current: Client | None
    try:
        current = Client.current()
    except ValueError:
        current = None
    if current is not None:
        yield current
        return
    n = DEFAULT_WORKERS if workers is None else _count(workers, "workers")
    threads = max(1, (os.cpu_count() or 1) // n)
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=threads,
        processes=True,
        memory_limit=memory_limit or "auto",
        dashboard_address=None,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
