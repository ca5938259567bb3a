"""The search on a real Dask cluster (MLCI_DASK_SCHEDULER) gives the local run's answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlci import cluster
from mlci.config import load_params
from mlci.errors import UserError
from mlci.pipeline import tune
from tests.unit.test_search import params_with, train_split

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scheduler() -> str:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address=None,
        processes=True,
    ) as local:
        yield local.scheduler_address


def test_the_search_on_a_local_cluster_equals_the_local_run(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = {
        "method": "random",
        "candidates": 4,
        "folds": 3,
        "estimators": {
            "logistic_regression": {"max_iter": 1000, "C": {"log_uniform": [0.001, 10]}},
            "random_forest": {"n_estimators": [10, 20], "max_depth": [2, 4]},
        },
    }
    params = load_params(params_with(search, tmp_path), estimator=True)
    X, y = train_split()
    monkeypatch.delenv(cluster.SCHEDULER_ENV, raising=False)
    local = tune.search(params, X, y)
    monkeypatch.setenv(cluster.SCHEDULER_ENV, scheduler)
    with distributed.Client(scheduler) as watcher:
        executed = lambda dask_worker: dask_worker.state.executed_count  # noqa: E731
        before = sum(watcher.run(executed).values())
        remote = tune.search(params, X, y)
        # the fits really ran on the workers: 4 candidates x 3 folds at least
        ran = sum(watcher.run(executed).values()) - before
    assert ran >= 12
    assert remote[0] == local[0]  # the chosen estimator, hyperparameters, CV mean and spread
    assert remote[1] == local[1]  # every candidate's scores


def test_an_unreachable_scheduler_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")
    params = load_params(
        params_with({"folds": 3, "estimators": {"logistic_regression": {}}}, tmp_path),
        estimator=True,
    )
    monkeypatch.setenv(cluster.SCHEDULER_ENV, "tcp://127.0.0.1:9")
    with pytest.raises(UserError, match="cannot reach the scheduler"):
        tune.search(params, *train_split())
