"""A regression model's answers stay inside the contract's bounds on the target: clipped in the
predictor's ``score`` (what the service and batch scoring call), on the compiled fast path and on
the scikit-learn pipeline alike, and counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from mlci.serving.predictor import Predictor
from mlci.spec import Feature, Spec

SPEC = Spec(
    target="price",
    id_column=None,
    classes=(),
    features=(Feature("size", "numeric", True, 0.0, 100.0),),
    target_minimum=0.0,
    target_maximum=400.0,
)


def fitted() -> Pipeline:
    """Price = 5 * size - 20: a small item's answer is below zero, a big one's above 400."""
    size = np.linspace(5, 95, 60)
    X, y = pd.DataFrame({"size": size}), 5 * size - 20
    pre = ColumnTransformer(
        [("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["size"])],
        sparse_threshold=0.0,
        verbose_feature_names_out=False,
    )
    return Pipeline([("preprocess", pre), ("model", Ridge(alpha=1e-6))]).fit(X, y)


@pytest.mark.parametrize("fast", [True, False], ids=["compiled", "sklearn"])
def test_answers_are_clipped_to_the_bounds_and_counted(fast: bool) -> None:
    predictor = Predictor(fitted(), "v1", fast=fast, spec=SPEC)
    assert predictor.mode == ("compiled" if fast else "sklearn"), predictor.fallback_reason
    counted: list[int] = []
    predictor.on_clipped = counted.append
    values, proba = predictor.score([{"size": 1.0}, {"size": 50.0}, {"size": 100.0}])
    raw = predictor.predict_values([{"size": 1.0}, {"size": 50.0}, {"size": 100.0}])
    assert proba is None and raw[0] < 0 and raw[2] > 400  # the model itself leaves the bounds
    assert values[0] == 0.0 and values[2] == 400.0
    assert values[1] == pytest.approx(230.0, abs=1e-3)
    assert counted == [2]
    predictor.score([{"size": 50.0}])
    assert counted == [2]  # nothing clipped: not reported


def test_a_contract_without_bounds_leaves_answers_alone() -> None:
    open_spec = Spec("price", None, (), SPEC.features)
    values, clipped = open_spec.clip_target(np.array([-5.0, 1e9]))
    assert clipped == 0 and values.tolist() == [-5.0, 1e9]
    lower_only = Spec("price", None, (), SPEC.features, target_minimum=0.0)
    values, clipped = lower_only.clip_target(np.array([-5.0, 1e9]))
    assert clipped == 1 and values.tolist() == [0.0, 1e9]
