"""The estimators `train.estimator.name` may choose, by name.

Its own module, below both config (which checks hyperparameters before any stage runs) and the
train stage (which builds the pipeline), so neither imports the other.
"""

from __future__ import annotations

from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

ESTIMATORS: dict[str, type[ClassifierMixin]] = {
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
    "hist_gradient_boosting": HistGradientBoostingClassifier,
}


def estimator_class(name: str) -> type[ClassifierMixin]:
    return ESTIMATORS[name]
