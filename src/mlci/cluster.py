"""Where heavy work runs: here, or on a Dask cluster when ``MLCI_DASK_SCHEDULER`` names one.

The search's cross-validation fits go through joblib; inside :func:`joblib_backend` with a
scheduler address they run on the cluster through joblib's Dask backend, with no other change.
Batch scoring asks :func:`client` for the same cluster. Without the variable nothing here
imports Dask (an optional dependency: ``pip install 'mlci[dask]'``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mlci.errors import UserError

SCHEDULER_ENV = "MLCI_DASK_SCHEDULER"  # e.g. tcp://dask-scheduler:8786
CONNECT_TIMEOUT = "30s"


def scheduler_address() -> str | None:
    return os.environ.get(SCHEDULER_ENV, "").strip() or None


@contextmanager
def client(address: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` connected to ``address`` (default: the environment's), or
    ``None`` when no cluster is configured."""
    address = address or scheduler_address()
    if address is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise UserError(
            f"{SCHEDULER_ENV} is set but Dask is not installed: install the dask extra "
            "(uv sync --extra dask, or pip install 'mlci[dask]')"
        ) from None
    try:
        c = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except OSError as err:
        raise UserError(f"{SCHEDULER_ENV}={address}: cannot reach the scheduler ({err})") from None
    try:
        yield c
    finally:
        c.close()


@contextmanager
def joblib_backend(address: str | None = None) -> Iterator[int]:
    """joblib's Dask backend on the cluster, or the default backend here. Yields the ``n_jobs``
    to pass to scikit-learn: every worker thread on a cluster, one process here (machines
    running CI are shared; set ``MLCI_SEARCH_JOBS`` to use more)."""
    with client(address) as c:
        if c is None:
            yield _local_jobs()
            return
        import joblib

        with joblib.parallel_config(backend="dask", client=c):
            yield -1


def _local_jobs() -> int:
    raw = os.environ.get("MLCI_SEARCH_JOBS", "1")
    try:
        return int(raw)
    except ValueError:
        raise UserError(
            f"MLCI_SEARCH_JOBS={raw!r}: expected a whole number (-1: all cores)"
        ) from None
