"""`make adopt`'s default search block, per task and table (pure: no pipeline run)."""

from __future__ import annotations

from types import SimpleNamespace

import yaml

from mlci.adopt import configure
from mlci.config import parse_params
from tests.helpers import EXAMPLE_PARAMS


def plan(task: str, rows: int, counts: dict[str, int] | None = None) -> SimpleNamespace:
    return SimpleNamespace(task=task, rows=rows, class_counts=counts or {}, features=[], fmt="csv")


def adopted(p: SimpleNamespace) -> dict:
    text = configure.edit_params(EXAMPLE_PARAMS.read_text(), p, "data/raw/t.csv", [])
    assert "#  method: random" not in text  # the example's commented search is replaced
    return yaml.safe_load(text)


def test_regression_gets_a_ridge_log_grid_and_a_forest() -> None:
    raw = adopted(plan("regression", 200))
    search = raw["search"]
    assert search["method"] == "grid" and search["folds"] == 5
    assert search["estimators"]["ridge"]["alpha"] == [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
    assert "random_forest" in search["estimators"]
    assert parse_params(raw).search is not None  # a block the config accepts


def test_an_imbalanced_target_searches_class_weights_with_fewer_folds() -> None:
    search = adopted(plan("classification", 200, {"no": 194, "yes": 6}))["search"]
    assert search["folds"] == 4  # 6 positives, 4 or 5 of them in the training split
    for space in search["estimators"].values():
        assert space["class_weight"] == [None, "balanced"]


def test_a_balanced_target_has_no_class_weights_and_a_large_table_boosts() -> None:
    search = adopted(plan("classification", 100_000, {"a": 50_000, "b": 50_000}))["search"]
    assert set(search["estimators"]) == {"logistic_regression", "hist_gradient_boosting"}
    assert all("class_weight" not in s for s in search["estimators"].values())
