"""The estimators `train.estimator.name` may choose, by task and name.

Its own module, below both config (which checks hyperparameters before any stage runs) and the
train stage (which builds the pipeline), so neither imports the other.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge

ESTIMATORS: dict[str, dict[str, type[BaseEstimator]]] = {
    "classification": {
        "logistic_regression": LogisticRegression,
        "random_forest": RandomForestClassifier,
        "hist_gradient_boosting": HistGradientBoostingClassifier,
    },
    "regression": {
        "ridge": Ridge,
        "random_forest": RandomForestRegressor,
        "hist_gradient_boosting": HistGradientBoostingRegressor,
    },
}
BASELINE = {"classification": DummyClassifier, "regression": DummyRegressor}


def estimator_class(name: str, task: str = "classification") -> type[BaseEstimator]:
    return ESTIMATORS[task][name]


def build_estimator(name: str, task: str, params: dict, seed: int) -> BaseEstimator:
    """The configured estimator; ``seed`` goes to ``random_state`` where the estimator has one
    (Ridge's default solver is deterministic and takes none that matters)."""
    cls = estimator_class(name, task)
    if "random_state" in cls().get_params():
        return cls(**params, random_state=seed)
    return cls(**params)


def build_baseline(strategy: str, task: str, seed: int) -> BaseEstimator:
    if task == "regression":
        return DummyRegressor(strategy=strategy)
    return DummyClassifier(strategy=strategy, random_state=seed)
