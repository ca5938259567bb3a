"""What the service refuses and how it answers, in-process and fast: the request guard in front of
a stand-in app (no model needed), and the service's log set-up.

* A key given twice in one JSON object is a 400 naming it (pydantic would keep the last value).
* Input echoed in an error body (unknown field names, a Content-Type) is cut short: a 1 MB name
  gives an answer of a few hundred bytes.
* ``show_service_logs`` makes the ``mlci`` logger's INFO lines visible.

The same, against a real ``bentoml serve``: ``tests/integration/test_serve_faults.py``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, create_model
from starlette.testclient import TestClient

from mlci import contract
from mlci.serving import api_models, logging_setup, request_guard
from mlci.serving.api_models import MAX_RECORDS
from mlci.serving.request_guard import ECHO_CHARS, DuplicateKeyError, check_unique_keys

SPEC = contract.spec()
MB = "x" * 1_000_000
ROUTES = ("/predict", "/predict_batch")
PredictRequest = create_model(  # what mlci.serving.service builds
    "PredictRequest", __base__=request_guard.ValidatedInput, records=api_models.records_field()
)


def good_record() -> dict[str, Any]:
    return {
        f.name: f.categories[0] if f.kind == "categorical" else (f.minimum + f.maximum) / 2
        for f in SPEC.features
    }


@pytest.fixture
def guarded() -> Iterator[tuple[TestClient, list[Any]]]:
    """The guard in front of an app that records what reached it and answers 200."""
    reached: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope.get("mlci.validated_input"))
        await request_guard.respond(send, 200, {"ok": True})

    guard = request_guard.RequestGuard(app, PredictRequest, ROUTES)
    yield TestClient(guard), reached  # no lifespan: the stand-in app has none


def post(client: TestClient, raw: str | bytes, route: str = "/predict", **headers: str) -> Any:
    return client.post(route, content=raw, headers={"content-type": "application/json", **headers})


def record_json(
    record: dict[str, Any], repeat: tuple[str, Any] | None = None, sep: str = ":"
) -> str:
    """A record as JSON text; ``repeat``: (a key as JSON text, a value) added at the end."""
    items = [f"{json.dumps(k)}{sep}{json.dumps(v)}" for k, v in record.items()]
    if repeat is not None:
        items.append(f"{repeat[0]}{sep}{json.dumps(repeat[1])}")
    return "{" + ", ".join(items) + "}"


# ---- duplicate keys ------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_a_repeated_records_key_is_refused_naming_it(guarded, route: str) -> None:
    client, reached = guarded
    one = json.dumps([good_record()])
    resp = post(client, f'{{"records": {one}, "records": {one}}}', route)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["detail"] == [
        {"type": "duplicate_key", "loc": ["records"], "msg": body["detail"][0]["msg"]}
    ]
    assert "duplicate key 'records'" in body["error"]
    assert not reached  # never reached the service


@pytest.mark.parametrize(
    ("sep", "key"),
    [(":", '"island"'), (" : ", '"island"'), (":", '"isl\\u0061nd"')],  # spaces, an escape
    ids=["plain", "spaces", "escaped"],
)
def test_a_repeated_feature_is_refused_with_its_location(guarded, sep: str, key: str) -> None:
    client, reached = guarded
    name = SPEC.categorical[0]
    assert name == "island"  # the ids above spell it
    other = SPEC.features[[f.name for f in SPEC.features].index(name)].categories[-1]
    records = [good_record(), good_record()]
    raw = (
        '{"records": ['
        + record_json(records[0], sep=sep)
        + ", "
        + record_json(records[1], repeat=(key, other), sep=sep)
        + "]}"
    )
    resp = post(client, raw)
    assert resp.status_code == 400, resp.text
    assert resp.json()["detail"][0]["loc"] == ["records", 1, name]
    assert f"records.1.{name}: duplicate key '{name}'" in resp.json()["error"]
    assert not reached


def test_a_repeated_key_next_to_an_omitted_optional_one_is_found(guarded) -> None:
    """The fast check compares ``:`` bytes with the keys the validated records hold: it relies
    on validation adding no key (no defaults filled in). If it ever did, this body would have
    as many ``:`` as keys and the repeat would slip through."""
    client, _ = guarded
    optional = next(f for f in SPEC.features if f.nullable)
    record = {k: v for k, v in good_record().items() if k != optional.name}
    kept = next(iter(record))
    raw = '{"records": [' + record_json(record, repeat=(json.dumps(kept), record[kept])) + "]}"
    assert raw.count(":") == 1 + len(SPEC.features)
    resp = post(client, raw)
    assert resp.status_code == 400, resp.text
    assert resp.json()["detail"][0]["loc"] == ["records", 0, kept]


def test_a_repeat_in_the_last_of_max_records_is_found(guarded) -> None:
    client, _ = guarded
    records = [json.dumps(good_record())] * (MAX_RECORDS - 1)
    name = SPEC.features[0].name
    last = record_json(good_record(), repeat=(json.dumps(name), good_record()[name]))
    resp = post(client, '{"records": [' + ", ".join([*records, last]) + "]}")
    assert resp.status_code == 400, resp.text
    assert resp.json()["detail"][0]["loc"] == ["records", MAX_RECORDS - 1, name]


def test_valid_bodies_still_pass(guarded) -> None:
    client, reached = guarded
    for n in (1, 100, MAX_RECORDS):  # inline and in a worker thread
        resp = post(client, json.dumps({"records": [good_record()] * n}))
        assert resp.status_code == 200, resp.text[:500]
    assert [len(r.records) for r in reached] == [1, 100, MAX_RECORDS]


def test_a_colon_inside_a_string_is_not_taken_for_a_repeated_key() -> None:
    class Body(BaseModel):
        model_config = ConfigDict(strict=True)
        items: list[dict[str, str]]
        note: str = ""

    raw = b'{"items": [{"a": "x:y", "b": "::"}], "note": "1:2"}'
    check_unique_keys(raw, Body.model_validate_json(raw))  # no error: slow path, no repeat
    raw = b'{"items": [{"a": "x:y", "a": "z"}]}'
    with pytest.raises(DuplicateKeyError) as err:
        check_unique_keys(raw, Body.model_validate_json(raw))
    assert err.value.loc == ["items", 0, "a"]


# ---- echoed input is cut short -----------------------------------------------------------


def assert_short(resp: Any, status: int = 400) -> dict[str, Any]:
    assert resp.status_code == status, resp.text[:500]
    assert len(resp.content) < 1_000, f"{len(resp.content)} bytes: {resp.text[:300]}"
    assert "(1000000 characters)" in resp.json()["error"]
    return resp.json()


@pytest.mark.parametrize(
    "body",
    [
        {"records": [{**good_record(), MB: 1}]},  # an unknown field named by 1 MB
        {"records": [good_record()], MB: 1},  # the same at the top level
    ],
    ids=["record", "top-level"],
)
def test_a_1mb_unknown_field_name_gives_a_short_answer(guarded, body: dict) -> None:
    client, _ = guarded
    answer = assert_short(post(client, json.dumps(body)))
    loc = answer["detail"][0]["loc"][-1]
    assert loc == "x" * ECHO_CHARS + "… (1000000 characters)"


def test_a_1mb_repeated_key_gives_a_short_answer() -> None:
    """Contract keys are short, so a guard over a body that takes any key shows it."""

    class AnyKeys(request_guard.ValidatedInput):
        items: list[dict[str, int]]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await request_guard.respond(send, 200, {"ok": True})

    client = TestClient(request_guard.RequestGuard(app, AnyKeys, ("/predict",)))
    answer = assert_short(post(client, f'{{"items": [{{"{MB}": 1, "{MB}": 2}}]}}'))
    assert answer["detail"][0]["loc"] == ["items", 0, "x" * ECHO_CHARS + "… (1000000 characters)"]


def test_a_1mb_value_gives_a_short_answer(guarded) -> None:
    client, _ = guarded
    for field in (SPEC.categorical[0], SPEC.numeric[0]):
        resp = post(client, json.dumps({"records": [{**good_record(), field: MB}]}))
        assert resp.status_code == 400
        assert len(resp.content) < 1_000 and field in resp.json()["error"]


def test_a_long_content_type_gives_a_short_answer(guarded) -> None:
    client, _ = guarded
    resp = post(client, "{}", **{"content-type": "text/" + "x" * 6_000})
    assert resp.status_code == 415 and len(resp.content) < 1_000
    assert "(6005 characters)" in resp.json()["error"]


def test_short_leaves_short_values_alone() -> None:
    assert request_guard.short("island") == "island"
    assert request_guard.short(3) == 3
    assert request_guard.short("y" * ECHO_CHARS) == "y" * ECHO_CHARS


# ---- the service's own log lines ----------------------------------------------------------


@pytest.fixture
def mlci_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("mlci")
    saved = (logger.level, logger.disabled, list(logger.handlers))
    yield logger
    logger.setLevel(saved[0])
    logger.disabled = saved[1]
    logger.handlers[:] = saved[2]


def test_show_service_logs_lets_info_through_a_warning_root(mlci_logger, monkeypatch) -> None:
    """BentoML's worker set-up: root at WARNING with a handler; dictConfig has disabled
    loggers that existed before it ran."""
    monkeypatch.delenv("MLCI_LOG_LEVEL", raising=False)
    child = logging.getLogger("mlci.serving.service")
    monkeypatch.setattr(child, "disabled", True)
    monkeypatch.setattr(logging.root, "level", logging.WARNING)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    monkeypatch.setattr(logging.root, "handlers", [handler])
    child.info("before")
    logging_setup.show_service_logs()
    child.info("model loaded")
    logging.getLogger("other").info("not ours")
    assert seen == ["model loaded"]
    assert mlci_logger.handlers == [] or all(
        h.get_name() != "mlci-default" for h in mlci_logger.handlers
    )  # BentoML's handler prints it: no second copy


def test_show_service_logs_without_any_handler_adds_its_own(mlci_logger, monkeypatch) -> None:
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setenv("MLCI_LOG_LEVEL", "debug")
    logging_setup.show_service_logs()
    logging_setup.show_service_logs()  # idempotent
    assert mlci_logger.level == logging.DEBUG
    assert [h.get_name() for h in mlci_logger.handlers].count("mlci-default") == 1


def test_a_bad_log_level_falls_back_to_info(mlci_logger, monkeypatch, caplog) -> None:
    monkeypatch.setenv("MLCI_LOG_LEVEL", "chatty")
    with caplog.at_level(logging.WARNING):
        logging_setup.show_service_logs()
    assert mlci_logger.level == logging.INFO
    assert "MLCI_LOG_LEVEL='CHATTY' is not a log level" in caplog.text
