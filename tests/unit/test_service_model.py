"""The service's predictor and request model, without a web framework.

The compiled fast path must give the scikit-learn pipeline's answers: the whole test set, every
missing-value pattern, and every estimator the template offers (compiled or not).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlci import artifacts, contract
from mlci.config import TrainConfig
from mlci.errors import UserError
from mlci.pipeline import train
from mlci.serving.api_models import MAX_RECORDS, record_model, request_model
from mlci.serving.predictor import Predictor

# They use ``trained_repo``: a real ``dvc repro`` (once per session).
pytestmark = pytest.mark.slow

ATOL = 1e-12


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    names = contract.spec().feature_names
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in frame[names].to_dict("records")
    ]


@pytest.fixture(scope="module")
def data(trained_repo: Path) -> dict[str, Any]:
    test = pd.read_parquet(trained_repo / "data/processed/test.parquet")
    trainset = pd.read_parquet(trained_repo / "data/processed/train.parquet")
    return {
        "test": test,
        "train": trainset,
        "model": artifacts.load_model(trained_repo / "models/model.skops"),
    }


def assert_same(predictor: Predictor, records: list[dict[str, Any]]) -> None:
    fast = predictor.predict_proba(records)
    ref = predictor.reference_proba(records)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=ATOL)
    assert predictor.labels(fast) == predictor.labels(ref)


def test_fast_path_equals_pipeline_on_the_whole_test_set(data: dict[str, Any]) -> None:
    predictor = Predictor(data["model"], "v1")
    assert predictor.mode == "compiled"  # the default estimator is fully compiled
    frame = data["test"][contract.spec().feature_names]
    records = records_of(data["test"])

    fast = predictor.predict_proba(records)
    # The offline pipeline on the test set as the evaluate stage scores it.
    offline = predictor.pipeline.predict_proba(frame)
    np.testing.assert_allclose(fast, offline, rtol=0, atol=ATOL)
    assert predictor.labels(fast) == [str(x) for x in predictor.pipeline.predict(frame)]
    # One record at a time (the single-row path) gives the same rows.
    for i, record in enumerate(records):
        np.testing.assert_allclose(predictor.predict_proba([record])[0], offline[i], atol=ATOL)


def test_fast_path_handles_every_missing_value_pattern(data: dict[str, Any]) -> None:
    predictor = Predictor(data["model"], "v1")
    spec = contract.spec()
    base = records_of(data["test"])[:10]
    records = []
    for f in spec.features:
        if not f.nullable:
            continue
        for r in base:
            records.append({**r, f.name: None})  # explicit null
            records.append({k: v for k, v in r.items() if k != f.name})  # field left out
    all_missing = {f.name: None for f in spec.features if f.nullable}
    records.append({**base[0], **all_missing})
    assert_same(predictor, records)


@pytest.mark.parametrize(
    ("estimator", "params", "mode"),
    [
        ("logistic_regression", {"C": 0.3, "max_iter": 500}, "compiled"),
        ("random_forest", {"n_estimators": 20}, "compiled-preprocess"),
        ("hist_gradient_boosting", {"max_iter": 20}, "compiled-preprocess"),
    ],
)
def test_every_template_estimator_matches_its_pipeline(
    data: dict[str, Any], estimator: str, params: dict[str, Any], mode: str
) -> None:
    cfg = TrainConfig.model_validate({"estimator": {"name": estimator, "params": params}})
    X, y = train.features_and_target(data["train"])
    pipeline = train.build_pipeline(cfg, seed=0).fit(X, y)
    predictor = Predictor(pipeline, "v")
    assert predictor.mode == mode
    assert_same(predictor, records_of(data["test"]))


def test_binary_logistic_regression_is_compiled_with_the_sigmoid(data: dict[str, Any]) -> None:
    trainset = data["train"]
    two = trainset[trainset[contract.spec().target].isin(["Adelie", "Gentoo"])]
    cfg = TrainConfig.model_validate(
        {"estimator": {"name": "logistic_regression", "params": {"max_iter": 500}}}
    )
    X, y = train.features_and_target(two)
    predictor = Predictor(train.build_pipeline(cfg, seed=0).fit(X, y), "v")
    assert predictor.mode == "compiled" and predictor.estimator is not None
    assert predictor.estimator.binary
    assert_same(predictor, records_of(data["test"]))


def test_unknown_preprocessing_falls_back_to_the_pipeline(data: dict[str, Any]) -> None:
    from sklearn.preprocessing import MinMaxScaler

    cfg = TrainConfig.model_validate(
        {"estimator": {"name": "logistic_regression", "params": {"max_iter": 500}}}
    )
    pipeline = train.build_pipeline(cfg, seed=0)
    pipeline.steps[0][1].transformers[0][1].steps[1] = ("scale", MinMaxScaler())
    X, y = train.features_and_target(data["train"])
    predictor = Predictor(pipeline.fit(X, y), "v")
    assert predictor.mode == "sklearn"  # not guessed at: the pipeline itself predicts
    records = records_of(data["test"])
    offline = pipeline.predict_proba(data["test"][X.columns])
    np.testing.assert_allclose(predictor.predict_proba(records), offline, rtol=0, atol=ATOL)


def test_a_compiled_path_that_disagrees_with_the_pipeline_is_not_used(
    data: dict[str, Any], monkeypatch
) -> None:
    """The start-up proof: a compiler that misreads a model (simulated: a coefficient off by
    1e-6) must not serve; the pipeline does, and the predictor says why."""
    from mlci.serving import predictor as predictor_module
    from mlci.serving.compiled import compile_estimator

    def misread(estimator: Any) -> Any:
        compiled = compile_estimator(estimator)
        compiled.coef_t[0, 0] += 1e-6
        return compiled

    monkeypatch.setattr(predictor_module, "compile_estimator", misread)
    predictor = Predictor(data["model"], "v1")
    assert predictor.mode == "sklearn" and not predictor.fast_path
    assert "differs from the pipeline" in (predictor.fallback_reason or "")
    records = records_of(data["test"])
    np.testing.assert_allclose(
        predictor.predict_proba(records), predictor.reference_proba(records), rtol=0, atol=0
    )


def test_the_probe_covers_every_category_unseen_values_and_gaps(data: dict[str, Any]) -> None:
    from mlci.serving.compiled import UNSEEN

    predictor = Predictor(data["model"], "v1")
    probes = predictor.probe_records()
    for f in contract.spec().features:
        seen = {r[f.name] for r in probes}
        if f.kind == "categorical":
            assert set(f.categories) | {UNSEEN} <= seen, f.name
        else:
            assert {f.minimum, f.maximum} <= seen, f.name
        assert (None in seen) == f.nullable, f.name


def test_fast_path_can_be_switched_off(data: dict[str, Any], tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "model.skops"
    artifacts.save_model(data["model"], path)
    monkeypatch.setenv("MLCI_SERVING_FAST_PATH", "0")
    off = Predictor.load(path, "v")
    assert off.mode == "sklearn" and "MLCI_SERVING_FAST_PATH=0" in (off.fallback_reason or "")
    monkeypatch.delenv("MLCI_SERVING_FAST_PATH")
    assert Predictor.load(path, "v").mode == "compiled"


def test_a_model_that_does_not_fit_the_contract_is_refused(data: dict[str, Any]) -> None:
    cfg = TrainConfig.model_validate(
        {"estimator": {"name": "logistic_regression", "params": {"max_iter": 500}}}
    )
    X, y = train.features_and_target(data["train"])
    pipeline = train.build_pipeline(cfg, seed=0).fit(X, y)
    pre = pipeline.steps[0][1]
    pre.feature_names_in_ = np.array([*X.columns[:-1], "wing_span_cm"], dtype=object)
    with pytest.raises(UserError, match="wing_span_cm"):
        Predictor(pipeline, "v")


# ------------------------------------------------------------------------- request model


def test_request_model_is_derived_from_the_contract() -> None:
    spec = contract.spec()
    schema = request_model().model_json_schema()
    records = schema["properties"]["records"]
    assert (records["minItems"], records["maxItems"]) == (1, MAX_RECORDS)
    assert schema["additionalProperties"] is False
    record = schema["$defs"]["Record"]
    assert record["additionalProperties"] is False
    # Every feature, then the table's key: optional, never read by the model.
    assert list(record["properties"]) == [*spec.feature_names, spec.id_column]
    assert set(record.get("required", [])) == {f.name for f in spec.features if not f.nullable}
    for f in spec.features:
        prop = record["properties"][f.name]
        options = prop.get("anyOf", [prop])
        if f.nullable:
            assert {"type": "null"} in options
        typed = next(o for o in options if o.get("type") != "null")
        if f.kind == "categorical":
            assert typed["enum"] == list(f.categories)
        else:
            assert typed["type"] == "number"
            assert (typed.get("minimum"), typed.get("maximum")) == (f.minimum, f.maximum)


def _errors(body: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as err:
        request_model().model_validate_json(json.dumps(body))
    return err.value.errors()


def test_request_model_is_strict() -> None:
    spec = contract.spec()
    num = spec.numeric[0]
    cat = spec.categorical[0]
    good = {f.name: (f.categories[0] if f.categories else f.minimum) for f in spec.features}
    assert request_model().model_validate_json(json.dumps({"records": [good]}))
    for value in (False, True, "30", [], {}):
        (e,) = _errors({"records": [{**good, num: value}]})
        assert e["loc"] == ("records", 0, num)
    (e,) = _errors({"records": [{**good, cat: "Atlantis"}]})
    assert e["loc"] == ("records", 0, cat)
    (e,) = _errors({"records": [{**good, "colour": "blue"}]})
    assert e["loc"] == ("records", 0, "colour") and e["type"] == "extra_forbidden"
    (e,) = _errors({"records": []})
    assert e["loc"] == ("records",) and e["type"] == "too_short"
    int_ok = {**good, num: int(spec.features[spec.feature_names.index(num)].minimum or 0)}
    assert request_model().model_validate_json(json.dumps({"records": [int_ok]}))
    # A record type that can be reused (e.g. by a client) on its own.
    assert record_model().__name__ == "Record"
