"""The BentoML service in-process (Starlette TestClient on ``Classifier.to_asgi()``), with the
model registered from a real ``dvc repro`` in a temporary BentoML store.

Covers: valid one/many records, every kind of invalid input (4xx naming the field, never 5xx),
edge values at the contract's bounds, the prediction log, /metrics, /docs.json, a missing or
corrupt model, idempotent registration, and training/serving parity on the whole test set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlci import artifacts, contract
from mlci.errors import UserError
from mlci.serving import model_store as serving_registry
from mlci.serving.api_models import MAX_RECORDS

# They use ``trained_repo``: a real ``dvc repro`` (once per session). The service counts with
# prometheus_client: any use of the deprecated ``bentoml.metrics`` (importing the service
# included, in the first test's setup) fails the test.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("error:bentoml.metrics module is deprecated:DeprecationWarning"),
]

SPEC = contract.spec()
NUMERIC = [f for f in SPEC.features if f.kind == "numeric"]
CATEGORICAL = [f for f in SPEC.features if f.kind == "categorical"]
NULLABLE = [f for f in SPEC.features if f.nullable]
REQUIRED = [f for f in SPEC.features if not f.nullable]


def use_bentoml_home(home: Path) -> None:
    """Point BentoML's (process-wide, cached) stores at ``home``."""
    from bentoml._internal.bento import BentoStore
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    for sub in ("models", "bentos", "envs", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(home)
    BentoMLContainer.bentoml_home.set(str(home))
    BentoMLContainer.model_store.set(ModelStore(str(home / "models")))
    BentoMLContainer.bento_store.set(BentoStore(str(home / "bentos")))


@pytest.fixture(scope="module")
def served(trained_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The service module, with the trained repository's model registered in a temp store."""
    tmp = tmp_path_factory.mktemp("service")
    mp = pytest.MonkeyPatch()
    # PROMETHEUS_MULTIPROC_DIR is set for the whole test session in tests/conftest.py.
    use_bentoml_home(tmp / "bentoml")
    mp.chdir(trained_repo)  # registration reads dvc.lock, models/, reports/ (read only)
    mp.setenv("MLCI_MODEL_TAG", serving_registry.default_tag())
    mp.setenv("MLCI_PREDICTION_LOG", str(tmp / "predictions.jsonl"))
    mp.delenv("MLCI_PREDICTION_LOG_EXCLUDE", raising=False)
    from mlci.serving import request_guard, service, stored_model

    first = serving_registry.register(service.MODEL_TAG)
    again = serving_registry.register(service.MODEL_TAG)
    yield {
        "service": service,
        "guard": request_guard,
        "stored": stored_model,
        "tmp": tmp,
        "registered": (first, again),
        "repo": trained_repo,
    }
    mp.undo()
    from bentoml._internal.configuration.containers import BentoMLContainer

    for provider in ("bentoml_home", "model_store", "bento_store"):
        getattr(BentoMLContainer, provider).reset()


@pytest.fixture(scope="module")
def client(served: dict) -> Iterator[TestClient]:
    with TestClient(served["service"].Classifier.to_asgi()) as c:
        yield c


def good_record() -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for f in SPEC.features:
        if f.kind == "categorical":
            rec[f.name] = f.categories[0]
        else:
            rec[f.name] = (f.minimum + f.maximum) / 2
    return rec


def post(client: TestClient, body: Any, path: str = "/predict", **kw: Any):
    return client.post(path, json=body, **kw)


def assert_names(resp, *loc: Any) -> None:
    """A 4xx whose error names ``loc`` (the field) and says what is wrong."""
    assert 400 <= resp.status_code < 500, resp.text
    data = resp.json()
    assert data["error"]
    locs = [tuple(d["loc"]) for d in data["detail"]]
    assert tuple(loc) in locs, data
    assert all(d["msg"] for d in data["detail"])
    assert str(loc[-1]) in data["error"]


# --------------------------------------------------------------------------- valid requests


def test_one_record(client: TestClient, served: dict) -> None:
    resp = post(client, {"records": [good_record()]}, headers={"X-Request-ID": "abc-123"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    version = served["service"].MODEL_TAG.split(":")[1]
    assert body["request_id"] == resp.headers["x-request-id"] == "abc-123"
    assert body["model_version"] == version
    (pred,) = body["predictions"]
    assert pred["label"] in SPEC.classes
    assert pred["model_version"] == version
    assert set(pred["probabilities"]) == set(SPEC.classes)
    assert sum(pred["probabilities"].values()) == pytest.approx(1.0)
    assert pred["label"] == max(pred["probabilities"], key=pred["probabilities"].get)


def test_many_records_and_a_generated_request_id(client: TestClient) -> None:
    records = [good_record() for _ in range(250)]  # above the inline limit: worker thread
    resp = post(client, {"records": records}, headers={"X-Request-ID": "not valid!"})
    assert resp.status_code == 200
    body = resp.json()
    assert len(body["predictions"]) == 250
    assert body["request_id"] != "not valid!" and len(body["request_id"]) == 32


def test_the_batch_endpoint(client: TestClient) -> None:
    resp = post(client, {"records": [good_record(), good_record()]}, "/predict_batch")
    assert resp.status_code == 200, resp.text
    preds = resp.json()
    assert len(preds) == 2 and preds[0]["request_id"] != preds[1]["request_id"]
    assert {"label", "probabilities", "model_version", "request_id"} <= set(preds[0])
    assert_names(post(client, {"records": []}, "/predict_batch"), "records")


def test_values_at_the_contract_bounds_are_accepted(client: TestClient) -> None:
    records = []
    for f in NUMERIC:
        for edge in (f.minimum, f.maximum):
            records.append({**good_record(), f.name: edge})
            records.append({**good_record(), f.name: int(edge)})  # an integer is a number
    for f in CATEGORICAL:
        records += [{**good_record(), f.name: c} for c in f.categories]
    assert post(client, {"records": records}).status_code == 200


def test_the_rows_key_may_be_sent_and_is_not_a_feature(client: TestClient) -> None:
    """The contract's ID column (the table's key) is optional in a record: a row can be sent as
    it is. The model never reads it, so it changes nothing."""
    key = SPEC.id_column
    assert key
    plain = post(client, {"records": [good_record()]}).json()["predictions"]
    keyed = post(client, {"records": [{**good_record(), key: "PAL0708-42"}]})
    assert keyed.status_code == 200, keyed.text
    assert keyed.json()["predictions"] == plain
    assert_names(post(client, {"records": [{**good_record(), key: 7}]}), "records", 0, key)
    assert_names(post(client, {"records": [{**good_record(), key: "k" * 257}]}), "records", 0, key)
    assert_names(post(client, {"records": [{**good_record(), key: None}]}), "records", 0, key)


def test_missing_and_null_optional_fields(client: TestClient) -> None:
    records = []
    for f in NULLABLE:
        records.append({k: v for k, v in good_record().items() if k != f.name})
        records.append({**good_record(), f.name: None})
    records.append({f.name: good_record()[f.name] for f in REQUIRED})  # only what is required
    resp = post(client, {"records": records})
    assert resp.status_code == 200
    assert len(resp.json()["predictions"]) == len(records)


def test_at_most_max_records(client: TestClient) -> None:
    ok = post(client, {"records": [good_record()] * MAX_RECORDS})
    assert ok.status_code == 200
    assert_names(post(client, {"records": [good_record()] * (MAX_RECORDS + 1)}), "records")


# ------------------------------------------------------------------------- invalid requests


def _field_cases() -> list[tuple[str, Any, str]]:
    cases: list[tuple[str, Any, str]] = []
    for f in NUMERIC:
        eps = 1e-9 * max(1.0, abs(f.maximum))
        cases += [
            (f.name, f.minimum - eps, "below the minimum"),
            (f.name, f.maximum + eps, "above the maximum"),
            (f.name, False, "false is not a number"),
            (f.name, True, "true is not a number"),
            (f.name, str(f.minimum), "a numeric string is not a number"),
            (f.name, [f.minimum], "a list"),
            (f.name, {"value": f.minimum}, "an object"),
        ]
    for f in CATEGORICAL:
        cases += [
            (f.name, "Atlantis", "unknown category"),
            (f.name, f.categories[0].upper(), "categories are case-sensitive"),
            (f.name, 1, "a number is not a category"),
        ]
    for f in REQUIRED:
        cases.append((f.name, None, "null for a required field"))
    return cases


@pytest.mark.parametrize(("field", "value", "why"), _field_cases())
def test_an_invalid_value_is_a_4xx_naming_the_field(
    client: TestClient, field: str, value: Any, why: str
) -> None:
    resp = post(client, {"records": [good_record(), {**good_record(), field: value}]})
    assert resp.status_code == 400, why
    assert_names(resp, "records", 1, field)


def test_missing_required_and_unknown_fields(client: TestClient) -> None:
    for f in REQUIRED:
        rec = {k: v for k, v in good_record().items() if k != f.name}
        assert_names(post(client, {"records": [rec]}), "records", 0, f.name)
    assert_names(
        post(client, {"records": [{**good_record(), "colour": "blue"}]}), "records", 0, "colour"
    )
    assert_names(post(client, {"records": [good_record()], "debug": True}), "debug")


def test_empty_list_and_malformed_bodies(client: TestClient) -> None:
    assert_names(post(client, {"records": []}), "records")
    assert_names(post(client, {}), "records")
    assert_names(post(client, {"records": good_record()}), "records")
    raw_bodies = [
        b"",
        b"{not json",
        b"[]",
        b'"records"',
        b"null",
        b"\xff\xfe\x00",
        b'{"records": [{"culmen_length_mm": NaN}]}',
        b'{"records": [{"culmen_length_mm": Infinity}]}',
        b'{"records": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
    ]
    for raw in raw_bodies:
        resp = client.post("/predict", content=raw, headers={"content-type": "application/json"})
        assert 400 <= resp.status_code < 500, (raw[:40], resp.status_code, resp.text)
        assert resp.json()["detail"][0]["msg"]


def test_many_bad_records_give_a_bounded_answer(client: TestClient, served: dict) -> None:
    bad = {**good_record(), CATEGORICAL[0].name: "Atlantis"}
    resp = post(client, {"records": [bad] * 5000})  # validated in a worker thread
    assert resp.status_code == 400
    body = resp.json()
    assert len(body["detail"]) == served["guard"].MAX_ERRORS
    assert "(and 4999 more)" in body["error"]


def test_non_json_content_types_are_refused(client: TestClient) -> None:
    body = json.dumps({"records": [good_record()]}).encode()
    for ctype in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/vnd.bentoml+pickle",  # BentoML's internal format: never unpickle input
    ):
        resp = client.post("/predict", content=body, headers={"content-type": ctype})
        assert resp.status_code == 415, ctype
        assert resp.json()["detail"][0]["loc"] == ["header", "content-type"]
    assert (
        post(
            client,
            {"records": [good_record()]},
            headers={"content-type": "application/json; charset=utf-8"},
        ).status_code
        == 200
    )


def test_an_oversized_body_is_413(client: TestClient, served: dict) -> None:
    big = b'{"records": [' + b" " * (served["guard"].MAX_BODY_BYTES + 1) + b"]}"
    resp = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert resp.status_code == 413
    assert "records" in resp.json()["error"]


def test_other_methods_and_paths(client: TestClient) -> None:
    assert client.get("/predict").status_code == 405
    assert client.post("/nowhere", json={}).status_code == 404


# ------------------------------------------------------------------- built-in endpoints


def test_health_metrics_and_docs(client: TestClient) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    post(client, {"records": [good_record()] * 3})
    metrics = client.get("/metrics").text
    assert 'mlci_predictions_total{label="' in metrics
    for name in ("written", "dropped", "errors"):
        assert f"mlci_prediction_log_{name}_total" in metrics
    docs = client.get("/docs.json").json()
    op = docs["paths"]["/predict"]["post"]
    assert op["requestBody"]["required"] is True
    detail = op["responses"]["400"]["content"]["application/json"]["schema"]["properties"]
    assert detail["detail"]["type"] == "array"
    record = docs["components"]["schemas"]["Record"]
    assert set(record["properties"]) == {*SPEC.feature_names, SPEC.id_column}
    assert record["additionalProperties"] is False
    # The compiled fast path serves the example's model (the log would say why not).
    assert "mlci_fast_path_enabled" in metrics
    gauge = [x for x in metrics.splitlines() if x.startswith("mlci_fast_path_enabled{")]
    assert gauge and all(x.endswith(" 1.0") for x in gauge), gauge


def _counter(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def test_prediction_counts_by_class_on_metrics(client: TestClient) -> None:
    before = client.get("/metrics").text
    labels = [
        p["label"] for p in post(client, {"records": [good_record()] * 7}).json()["predictions"]
    ]
    after = client.get("/metrics").text
    label = labels[0]
    name = f'mlci_predictions_total{{label="{label}"'
    assert _counter(after, name) - _counter(before, name) == 7


# ------------------------------------------------------------------------ prediction log


@contextmanager
def prediction_log_from_env(client: TestClient) -> Iterator[Any]:
    """Reopen the running service's prediction log from the (patched) environment.

    BentoML registers its Prometheus metrics per app, so one process serves one app: the tests
    swap the log of the running instance instead of starting another service."""
    import bentoml

    instance = bentoml.get_current_service()
    previous = instance.prediction_log
    instance.prediction_log = instance._open_prediction_log()
    try:
        yield instance.prediction_log
    finally:
        if instance.prediction_log is not None:
            instance.prediction_log.close()
        instance.prediction_log = previous


def test_the_prediction_log_records_every_prediction(
    client: TestClient, served: dict, monkeypatch
) -> None:
    path = served["tmp"] / "log-content.jsonl"
    monkeypatch.setenv("MLCI_PREDICTION_LOG", str(path))
    records = [good_record(), {f.name: good_record()[f.name] for f in REQUIRED}]
    with prediction_log_from_env(client) as plog:
        body = post(client, {"records": records}, headers={"X-Request-ID": "log-test"}).json()
        assert plog.flush()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 2
    for line, rec, pred in zip(lines, records, body["predictions"], strict=True):
        assert list(line) == [
            "request_id",
            "timestamp",
            "model_version",
            "features",
            "prediction",
            "probabilities",
        ]
        assert line["request_id"] == "log-test"
        assert line["model_version"] == body["model_version"]
        assert line["features"] == {n: rec.get(n) for n in SPEC.feature_names}
        assert line["prediction"] == pred["label"]
        assert line["probabilities"] == pred["probabilities"]
        assert line["timestamp"].endswith("+00:00")


def test_the_batch_endpoint_logs_each_prediction_under_its_own_id(
    client: TestClient, served: dict, monkeypatch
) -> None:
    path = served["tmp"] / "log-batch.jsonl"
    monkeypatch.setenv("MLCI_PREDICTION_LOG", str(path))
    with prediction_log_from_env(client) as plog:
        preds = post(client, {"records": [good_record()] * 3}, "/predict_batch").json()
        assert plog.flush()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["request_id"] for x in lines] == [p["request_id"] for p in preds]


def test_prediction_log_exclusion(client: TestClient, served: dict, monkeypatch) -> None:
    path = served["tmp"] / "log-excluded.jsonl"
    private = NULLABLE[0].name
    monkeypatch.setenv("MLCI_PREDICTION_LOG", str(path))
    monkeypatch.setenv("MLCI_PREDICTION_LOG_EXCLUDE", f"{private},probabilities")
    with prediction_log_from_env(client) as plog:
        assert post(client, {"records": [good_record()]}).status_code == 200
        assert plog.flush()
    (line,) = [json.loads(x) for x in path.read_text().splitlines()]
    assert "probabilities" not in line and private not in line["features"]


def test_an_unwritable_log_never_fails_a_request(
    client: TestClient, served: dict, monkeypatch, caplog
) -> None:
    blocker = served["tmp"] / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLCI_PREDICTION_LOG", str(blocker / "predictions.jsonl"))
    before = _counter(client.get("/metrics").text, "mlci_prediction_log_errors_total")
    with prediction_log_from_env(client) as plog:
        for _ in range(3):
            assert post(client, {"records": [good_record()] * 2}).status_code == 200
        assert plog.flush()
    after = _counter(client.get("/metrics").text, "mlci_prediction_log_errors_total")
    assert after - before == 6
    assert "cannot write to" in caplog.text


def test_logging_can_be_switched_off(client: TestClient, monkeypatch) -> None:
    monkeypatch.setenv("MLCI_PREDICTION_LOG", "")
    with prediction_log_from_env(client) as plog:
        assert plog is None
        assert post(client, {"records": [good_record()]}).status_code == 200


# --------------------------------------------------------------------------- the model


def test_registration_is_idempotent(served: dict) -> None:
    import bentoml

    first, again = served["registered"]
    assert first["created"] and not again["created"]
    assert first["tag"] == again["tag"] == serving_registry.default_tag()
    stored = bentoml.models.get(first["tag"])
    assert len(bentoml.models.list(serving_registry.MODEL_NAME)) == 1
    labels = stored.info.labels
    for key in ("git_commit", "data_sha256", "dvc_lock_sha256", "model_md5", "metric_accuracy"):
        assert labels[key], key
    meta = json.loads((served["repo"] / "models/model_meta.json").read_text())
    assert labels["data_sha256"] == meta["train_data_sha256"]


def test_only_the_model_dvc_lock_records_is_registered(
    served: dict, tmp_path: Path, monkeypatch
) -> None:
    repo = served["repo"]
    for rel in ("dvc.lock", "models/model.skops", "models/model_meta.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((repo / rel).read_bytes())
    monkeypatch.chdir(tmp_path)
    assert serving_registry.check_tracked()
    with (tmp_path / "models/model.skops").open("ab") as f:
        f.write(b"tampered")
    with pytest.raises(UserError, match=r"dvc\.lock records"):
        serving_registry.register()


def test_a_missing_model_refuses_to_start_with_a_clear_message(served: dict) -> None:
    stored = served["stored"]
    with pytest.raises(stored.ModelUnavailable) as err:
        stored.load_predictor(stored.StoreModel("mlci-classifier:not-registered"))
    assert "not in the BentoML model store" in str(err.value)
    assert "make package" in str(err.value)


def test_a_corrupt_model_refuses_to_start_with_a_clear_message(served: dict) -> None:
    import bentoml

    stored = served["stored"]
    with bentoml.models.create("mlci-classifier:corrupt") as ref:
        (Path(ref.path) / serving_registry.MODEL_FILE).write_bytes(b"not a skops file")
    with pytest.raises(stored.ModelUnavailable) as err:
        stored.load_predictor(stored.StoreModel("mlci-classifier:corrupt"))
    assert "cannot be loaded" in str(err.value)
    assert "bentoml models delete mlci-classifier:corrupt" in str(err.value)


# ------------------------------------------------------------------- training/serving parity


def test_service_predictions_equal_the_offline_pipeline_on_the_test_set(
    client: TestClient, served: dict
) -> None:
    repo = served["repo"]
    test = pd.read_parquet(repo / "data/processed/test.parquet")
    frame = test[SPEC.feature_names]
    pipeline = artifacts.load_model(repo / "models/model.skops")  # what evaluate scored
    records = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")
    ]
    resp = post(client, {"records": records})
    assert resp.status_code == 200
    preds = resp.json()["predictions"]
    assert [p["label"] for p in preds] == [str(x) for x in pipeline.predict(frame)]
    served_proba = np.array([[p["probabilities"][c] for c in pipeline.classes_] for p in preds])
    np.testing.assert_allclose(served_proba, pipeline.predict_proba(frame), rtol=0, atol=1e-12)
