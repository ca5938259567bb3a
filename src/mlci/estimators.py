"""The one estimator registry: which estimators and baselines each task has, by name.

``train.estimator.name``, ``train.baseline`` and every candidate of ``search.estimators`` are
checked against these names (mlci.config) and built from them (the tune and train stages).
The names are plain data, importable without scikit-learn (params.yaml is checked on every
stage's start); the classes are imported only when one is built.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> "module:Class", per task.
ESTIMATORS: dict[str, dict[str, str]] = {
    "classification": {
        "logistic_regression": "sklearn.linear_model:LogisticRegression",
        "random_forest": "sklearn.ensemble:RandomForestClassifier",
        "hist_gradient_boosting": "sklearn.ensemble:HistGradientBoostingClassifier",
    },
    "regression": {
        "ridge": "sklearn.linear_model:Ridge",
        "random_forest": "sklearn.ensemble:RandomForestRegressor",
        "hist_gradient_boosting": "sklearn.ensemble:HistGradientBoostingRegressor",
    },
}
# The Dummy{Classifier,Regressor} strategies a model must beat; the first is the default.
BASELINES: dict[str, tuple[str, ...]] = {
    "classification": ("prior", "most_frequent", "stratified", "uniform"),
    "regression": ("mean", "median"),
}
ALL_NAMES = tuple(sorted({n for names in ESTIMATORS.values() for n in names}))


def names(task: str) -> list[str]:
    return list(ESTIMATORS[task])


def estimator_class(name: str, task: str = "classification") -> type[Any]:
    module, cls = ESTIMATORS[task][name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_estimator(name: str, task: str, params: dict, seed: int) -> Any:
    """The configured estimator; ``seed`` goes to ``random_state`` where the estimator has one
    (Ridge's default solver is deterministic and takes none that matters)."""
    cls = estimator_class(name, task)
    if "random_state" in cls().get_params():
        return cls(**params, random_state=seed)
    return cls(**params)


def build_baseline(strategy: str, task: str, seed: int) -> Any:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    if task == "regression":
        return DummyRegressor(strategy=strategy)
    return DummyClassifier(strategy=strategy, random_state=seed)


def name_of(estimator: Any, task: str) -> str:
    """The registry name of a built estimator (the search reports candidates by name)."""
    wanted = f"{type(estimator).__module__.split('._')[0]}:{type(estimator).__name__}"
    for name, where in ESTIMATORS[task].items():
        if where.split(":")[1] == wanted.split(":")[1]:
            return name
    raise KeyError(f"{type(estimator).__name__} is not in the {task} registry")
