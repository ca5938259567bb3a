"""The tune stage's search: a bad `search:` block is one line naming the field; the search is
seeded, cross-validates on the training split only and reports every candidate."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlci import contract
from mlci.config import load_params, parse_params
from mlci.errors import UserError
from mlci.pipeline import tune
from tests.helpers import EXAMPLE_PARAMS, EXAMPLE_RAW

BASE = yaml.safe_load(EXAMPLE_PARAMS.read_text())
SEARCH = {
    "method": "grid",
    "folds": 3,
    "estimators": {
        "logistic_regression": {"max_iter": 1000, "C": [0.001, 1.0]},
        "random_forest": {"n_estimators": [10], "max_depth": [2]},
    },
}


def params_with(search: dict | None, tmp_path: Path) -> Path:
    raw = copy.deepcopy(BASE)
    raw["search"] = search
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"estimators": {"xgboost": {}}}, "search.estimators.xgboost"),
        ({"estimators": {"ridge": {}}}, "search.estimators.ridge"),  # a regression estimator
        ({"estimators": {"logistic_regression": {"Cc": [1.0]}}}, "logistic_regression.Cc"),
        ({"estimators": {"logistic_regression": {"C": [-1.0]}}}, "logistic_regression.C"),
        ({"estimators": {"logistic_regression": {"C": []}}}, "logistic_regression.C"),
        (
            {"estimators": {"logistic_regression": {"C": {"normal": [0, 1]}}}},
            "logistic_regression.C",
        ),
        ({"estimators": {"logistic_regression": {"C": {"log_uniform": [0, 1]}}}}, "C.log_uniform"),
        ({"estimators": {"logistic_regression": {"C": {"uniform": [2, 1]}}}}, "C.uniform"),
        ({"estimators": {"random_forest": {"max_depth": {"int_uniform": [1.5, 3]}}}}, "max_depth"),
        ({"estimators": {"logistic_regression": {"random_state": [1]}}}, "random_state"),
        (
            {"method": "grid", "estimators": {"logistic_regression": {"C": {"uniform": [1, 2]}}}},
            "C",
        ),
        ({"method": "bayes"}, "search.method"),
        ({"folds": 1}, "search.folds"),
        ({"metric": "r2"}, "search.metric"),
        ({"estimators": {}}, "search.estimators"),
        ({"n_iter": 5}, "search.n_iter"),
    ],
)
def test_a_bad_search_block_is_one_line_naming_the_field(
    change: dict, named: str, tmp_path: Path
) -> None:
    with pytest.raises(UserError) as err:
        load_params(params_with({**SEARCH, "method": "random", **change}, tmp_path), estimator=True)
    message = str(err.value)
    assert named in message, message
    assert "Traceback" not in message


def test_search_key_must_be_present_for_dvc(tmp_path: Path) -> None:
    raw = copy.deepcopy(BASE)
    raw.pop("search")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match="search: required key is missing"):
        load_params(path, estimator=True)


def test_no_search_block_means_the_fixed_estimator() -> None:
    assert parse_params(BASE).search is None


def train_split() -> tuple[pd.DataFrame, pd.Series]:
    from project import cleaning

    df, _ = cleaning.clean_raw(pd.read_csv(EXAMPLE_RAW))
    df = df.dropna(subset=contract.spec().feature_names)
    return contract.features_and_target(df.sample(200, random_state=0))


def test_the_grid_search_reports_every_candidate_and_picks_the_best(tmp_path: Path) -> None:
    params = load_params(params_with(SEARCH, tmp_path), estimator=True)
    X, y = train_split()
    choice, table, fit_seconds = tune.search(params, X, y)
    candidates = table["candidates"]
    assert len(candidates) == 3 and fit_seconds > 0
    # C=0.001 barely learns: the tiny grid has a clear loser, and the chosen one leads the table
    assert candidates[0]["mean"] == max(c["mean"] for c in candidates)
    assert (choice["estimator"], choice["params"]) == (
        candidates[0]["estimator"],
        candidates[0]["params"],
    )
    assert candidates[-1]["params"] == {"max_iter": 1000, "C": 0.001}
    assert all(0 <= c["std"] < 1 for c in candidates)
    assert choice["metric"] == "f1_macro" and choice["folds"] == 3
    # seeded: the same inputs give the same table
    assert tune.search(params, X, y)[1] == table


@pytest.mark.parametrize("method", ["random", "halving"])
def test_random_and_halving_sample_distributions(method: str, tmp_path: Path) -> None:
    search = {
        "method": method,
        "candidates": 4,
        "folds": 3,
        "metric": "log_loss",
        "estimators": {"logistic_regression": {"C": {"log_uniform": [0.01, 100]}}},
    }
    params = load_params(params_with(search, tmp_path), estimator=True)
    choice, table, _ = tune.search(params, *train_split())
    cs = [c["params"]["C"] for c in table["candidates"]]
    assert len(set(cs)) == 4 and all(0.01 <= c <= 100 for c in cs)
    # log loss: lower is better, reported as itself (not scikit-learn's negated score)
    assert choice["cv_mean"] == min(c["mean"] for c in table["candidates"]) > 0


def test_tune_without_a_search_imports_no_scikit_learn() -> None:
    """The stage without a search records train.estimator in no time: nothing heavy imported."""
    import subprocess
    import sys

    probe = "import sys, mlci.pipeline.tune; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
