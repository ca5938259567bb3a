"""The BentoML service: the approved model behind an HTTP API whose request model is the data
contract.

    bentoml serve mlci.serving.service:Classifier        (``make serve``: registers the model first)

Endpoints
    POST /predict        ``{"records": [{...}, ...]}`` (1 to 10,000 records) → one prediction per
                         record: label, class probabilities, model version; plus the request id.
    POST /predict_batch  the same records, answered as a list; BentoML's adaptive batching merges
                         concurrent requests into one model call (many small clients).
    GET  /livez /readyz /metrics /docs.json (BentoML built-ins; /docs.json is patched, see below)

The request model is derived from ``mlci.contract.spec()``: names, types, ranges, allowed
categories, nullability. Strict types (``false`` and ``"3"`` are not numbers), unknown fields
rejected. Every invalid request is answered 4xx before BentoML sees it (``_RequestGuard``): 400
with pydantic's error list (``loc`` names the field, ``msg`` the problem), 413 for an oversized
body, 415 for a body that is not JSON.

The model is the BentoML store's ``mlci-classifier:<tag>`` (see ``mlci.serving.model_store``),
loaded with skops and the trust list, never pickle. A missing, corrupt or contract-incompatible
model stops the service at start-up with a message that says what to do.

Every prediction is appended to the prediction log (``mlci.serving.prediction_log``) without ever
blocking or failing a request.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections import Counter as _Tally
from pathlib import Path
from typing import Any

import anyio.to_thread
import bentoml
import orjson
from bentoml.exceptions import BentoMLException
from pydantic import ConfigDict, ValidationError, create_model
from starlette.responses import Response

from mlci.errors import UserError
from mlci.serving import model_store, prediction_log, predictor

log = logging.getLogger("mlci.serving.service")

MODEL_TAG = model_store.resolve_tag()
# Requests up to this many records are predicted on the event loop (microseconds of work, no
# thread hop); bigger ones in a worker thread so health checks stay responsive.
INLINE_ROWS = 64
# 10,000 records of this contract are about 1.5 MB of JSON; 8 MiB leaves room for whitespace.
MAX_BODY_BYTES = 8 * 1024 * 1024
# Bodies up to this size are validated on the event loop; larger ones in a worker thread.
INLINE_BODY_BYTES = 64 * 1024
# An answer lists at most this many problems (10,000 bad records would make a huge answer).
MAX_ERRORS = 100
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_VALIDATED = "mlci.validated_input"


class _Input(bentoml.IODescriptor):
    model_config = ConfigDict(strict=True, extra="forbid")

    @classmethod
    async def from_http_request(cls, request: Any, serde: Any) -> Any:
        # ``_RequestGuard`` has already parsed and validated the body: use its result.
        validated = request.scope.get(_VALIDATED)
        if isinstance(validated, cls):
            return validated
        return await super().from_http_request(request, serde)


PredictRequest = create_model(
    "PredictRequest",
    __base__=_Input,
    __doc__="Records to score; every field is checked against the data contract.",
    records=predictor.records_field(),
)

PREDICTIONS = bentoml.metrics.Counter(
    name="mlci_predictions",
    documentation="Predictions served, by predicted class and model version",
    labelnames=["label", "model_version"],
)
LOG_WRITTEN = bentoml.metrics.Counter(
    name="mlci_prediction_log_written",
    documentation="Predictions appended to the prediction log",
)
LOG_DROPPED = bentoml.metrics.Counter(
    name="mlci_prediction_log_dropped",
    documentation="Predictions not logged because the log queue was full",
)
LOG_ERRORS = bentoml.metrics.Counter(
    name="mlci_prediction_log_errors",
    documentation="Predictions not logged because the log file could not be written",
)


class ModelUnavailable(BentoMLException):
    """The service cannot start: its model is missing, corrupt or does not fit the contract.

    A ``BentoMLException``, so ``bentoml serve`` prints the message without a traceback."""


def _not_in_store(tag: Any, err: Exception) -> ModelUnavailable:
    home = os.environ.get("BENTOML_HOME", str(Path.home() / "bentoml"))
    return ModelUnavailable(
        f"model {tag} is not in the BentoML model store (BENTOML_HOME={home}): run "
        "`make package` or `mlci register-model` in the repository (it registers the model "
        "dvc.lock records), or set MLCI_MODEL_TAG to a registered tag "
        f"(`bentoml models list`). [{type(err).__name__}: {err}]"
    )


class _StoreModel(bentoml.models.BentoModel):
    """``BentoModel`` that refuses a missing or unloadable model with a message saying what to do.

    ``bentoml serve`` resolves every model before it starts a worker: resolving here also loads
    the model (skops, trust list) and checks it against the contract, so a missing, corrupt or
    incompatible model stops ``bentoml serve`` with that message instead of a worker restarting
    forever. The loaded predictor is kept, so a worker loads the file once.
    """

    def resolve(self, base_path: Any = None) -> Any:
        try:
            stored = super().resolve(base_path)
        except ModelUnavailable:
            raise
        except BentoMLException as err:
            raise _not_in_store(self.tag, err) from None
        if "predictor" not in self.__dict__:
            object.__setattr__(self, "predictor", _load_stored(stored))
        return stored

    def to_info(self, alias: str | None = None) -> Any:
        try:
            return super().to_info(alias)
        except BentoMLException as err:
            raise _not_in_store(self.tag, err) from None


def _error_body(error: str, loc: list[Any], msg: str, kind: str) -> dict[str, Any]:
    return {"error": error, "detail": [{"type": kind, "loc": loc, "msg": msg}]}


class _RequestGuard:
    """ASGI middleware in front of BentoML's routes; it answers every invalid request itself.

    * API calls must be JSON (415 otherwise): BentoML would pick a deserialiser by Content-Type
      (multipart forms, its internal pickle format) and answer some malformed bodies with 500.
    * Bodies over ``MAX_BODY_BYTES`` are refused with 413 before they are read into memory.
    * The body is validated against the request model here: an invalid one is answered 400 with
      pydantic's error list (``loc`` names the field, ``msg`` the problem), logged as one line.
      (BentoML would answer the same 400 but log a full traceback at ERROR level for every bad
      request.) A valid one is handed to BentoML already parsed (``_Input.from_http_request``).
    * ``/docs.json`` is corrected (:func:`fix_openapi`).
    """

    def __init__(self, app: Any, input_spec: Any, api_routes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.input_spec = input_spec
        self.api_routes = set(api_routes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if method == "GET" and path == "/docs.json":
            return await self._docs(scope, receive, send)
        if method != "POST" or path not in self.api_routes:
            return await self.app(scope, receive, send)

        headers = dict(scope["headers"])
        ctype = headers.get(b"content-type", b"application/json").decode("latin-1")
        if ctype.split(";")[0].strip().lower() != "application/json":
            msg = f"send JSON with 'Content-Type: application/json', not {ctype!r}"
            body = _error_body(msg, ["header", "content-type"], msg, "content_type")
            return await _respond(send, 415, body)
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return await _too_large(send)

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return await _too_large(send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks) or b"{}"
        validate = self.input_spec.model_validate_json
        try:
            if len(raw) <= INLINE_BODY_BYTES:
                scope[_VALIDATED] = validate(raw)
            else:  # thousands of records: keep the event loop (and health checks) responsive
                scope[_VALIDATED] = await anyio.to_thread.run_sync(validate, raw)
        except ValidationError as err:
            detail = err.errors(include_url=False, include_context=False, include_input=False)
            problems = [f"{'.'.join(map(str, d['loc'])) or 'body'}: {d['msg']}" for d in detail]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            log.info("rejected %s: %s", path, "; ".join(problems[:5])[:500])
            body = {"error": problems[0] + more, "detail": detail[:MAX_ERRORS]}
            return await _respond(send, 400, body)

        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _docs(self, scope: Any, receive: Any, send: Any) -> None:
        started: dict[str, Any] = {}
        body = bytearray()

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        if started.get("status") != 200:
            await send(started)
            await send({"type": "http.response.body", "body": bytes(body)})
            return
        await _respond(send, 200, fix_openapi(json.loads(body), self.api_routes))


async def _respond(send: Any, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _too_large(send: Any) -> None:
    msg = (
        f"the body is larger than {MAX_BODY_BYTES} bytes; "
        f"send at most {predictor.MAX_RECORDS} records per request"
    )
    await _respond(send, 413, _error_body(msg, ["body"], msg, "too_large"))


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                },
                "required": ["loc", "msg"],
            },
        },
    },
    "required": ["error"],
}


def fix_openapi(spec: dict[str, Any], api_routes: set[str] | tuple[str, ...]) -> dict[str, Any]:
    """Make BentoML's generated OpenAPI document describe what the service really does."""
    for route, item in (spec.get("paths") or {}).items():
        op = item.get("post")
        if route not in api_routes or not op:
            continue
        if "requestBody" in op:
            op["requestBody"]["required"] = True
        responses = op.setdefault("responses", {})
        for status, why in (
            ("400", "the body is not valid JSON or breaks the data contract"),
            ("413", "the body is larger than the service accepts"),
            ("415", "the body is not application/json"),
        ):
            responses[status] = {
                "description": why,
                "content": {"application/json": {"schema": _ERROR_SCHEMA}},
            }
    return spec


# OpenTelemetry spans cost about a third of a one-row request here (five spans per request,
# sampled or not); the API routes are left out of tracing unless MLCI_TRACE_API=1.
_TRACING = (
    {}
    if os.environ.get("MLCI_TRACE_API") == "1"
    else {"tracing": {"excluded_urls": ["/predict", "/predict_batch"]}}
)


@bentoml.service(
    name="mlci_classifier",
    description="Scores records that follow the data contract (src/project/schema.py).",
    traffic={"timeout": 60},
    metrics={"enabled": True},
    **_TRACING,
)
class Classifier:
    model = _StoreModel(MODEL_TAG)

    def __init__(self) -> None:
        self.predictor = load_predictor(type(self).__dict__["model"])
        self.version = self.predictor.version
        self.classes = self.predictor.classes
        predictor.limit_threads()
        self._counters = {
            c: PREDICTIONS.labels(label=c, model_version=self.version) for c in self.classes
        }
        self.prediction_log = self._open_prediction_log()
        log.info(
            "serving model %s (%s path, classes %s)",
            MODEL_TAG,
            self.predictor.mode,
            list(self.classes),
        )

    def _open_prediction_log(self) -> prediction_log.PredictionLog | None:
        """The prediction log the environment asks for (``MLCI_PREDICTION_LOG``...)."""
        spec = predictor.contract.spec()
        return prediction_log.from_env(
            spec.feature_names,
            self.classes,
            categories={f.name: f.categories for f in spec.features if f.kind == "categorical"},
            on_written=LOG_WRITTEN.inc,
            on_dropped=LOG_DROPPED.inc,
            on_error=LOG_ERRORS.inc,
        )

    @bentoml.on_shutdown
    def _flush_log(self) -> None:
        if self.prediction_log is not None:
            self.prediction_log.close()

    # -- endpoints ------------------------------------------------------------------------

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=predictor.PredictResponse)
    async def predict(self, records: list[dict[str, Any]], ctx: bentoml.Context) -> Response:
        """Score 1 to 10,000 records: label, class probabilities and model version each.

        Send ``X-Request-ID`` to choose the id the predictions are logged under.
        """
        request_id = _request_id(ctx)
        ctx.response.headers["X-Request-ID"] = request_id
        if len(records) <= INLINE_ROWS:
            body = self._predict(records, request_id)
        else:
            body = await anyio.to_thread.run_sync(self._predict, records, request_id)
        return Response(body, media_type="application/json")

    @bentoml.api(
        route="/predict_batch",
        input_spec=PredictRequest,
        batchable=True,
        max_batch_size=1000,
        max_latency_ms=1000,
    )
    def predict_batch(self, records: list[dict[str, Any]]) -> list[predictor.BatchPrediction]:
        """Like /predict, answered as a list; concurrent requests are merged (adaptive batching).

        Each prediction carries its own ``request_id``: the id it is logged under.
        """
        proba, labels = self._score(records)
        ids = [uuid.uuid4().hex for _ in records]
        self._record(ids, records, labels, proba)
        version, classes = self.version, self.classes
        cls = predictor.BatchPrediction
        return [
            cls.model_construct(
                label=label,
                probabilities=dict(zip(classes, p, strict=True)),
                model_version=version,
                request_id=rid,
            )
            for label, p, rid in zip(labels, proba.tolist(), ids, strict=True)
        ]

    # -- internals ------------------------------------------------------------------------

    def _score(self, rows: list[dict[str, Any]]) -> tuple[Any, list[str]]:
        proba = self.predictor.predict_proba(rows)
        return proba, self.predictor.labels(proba)

    def _record(
        self,
        request_ids: str | list[str],
        rows: list[dict[str, Any]],
        labels: list[str],
        proba: Any,
    ) -> None:
        for label, n in _Tally(labels).items():
            self._counters[label].inc(n)
        if self.prediction_log is not None:
            self.prediction_log.submit(request_ids, self.version, rows, labels, proba)

    def _predict(self, rows: list[dict[str, Any]], request_id: str) -> bytes:
        """The JSON body of a /predict answer (orjson: the pydantic round trip costs more than
        the model on one row). Its shape is ``predictor.PredictResponse``."""
        proba, labels = self._score(rows)
        self._record(request_id, rows, labels, proba)
        version, classes = self.version, self.classes
        return orjson.dumps(
            {
                "request_id": request_id,
                "model_version": version,
                "predictions": [
                    {
                        "label": label,
                        "probabilities": dict(zip(classes, p, strict=True)),
                        "model_version": version,
                    }
                    for label, p in zip(labels, proba.tolist(), strict=True)
                ],
            }
        )


def _request_id(ctx: bentoml.Context) -> str:
    given = ctx.request.headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def load_predictor(ref: _StoreModel) -> predictor.Predictor:
    """The predictor of a store model; any failure is a :class:`ModelUnavailable`."""
    ref.resolve()
    return ref.__dict__["predictor"]


def _load_stored(stored: Any) -> predictor.Predictor:
    path = Path(stored.path) / model_store.MODEL_FILE
    try:
        return predictor.Predictor.load(path, version=str(stored.tag.version))
    except UserError as err:
        raise ModelUnavailable(
            f"model {stored.tag}: {err} To replace the stored copy: `bentoml models delete "
            f"{stored.tag}`, then `make package` (or `mlci register-model`)."
        ) from None


Classifier.add_asgi_middleware(
    _RequestGuard, input_spec=PredictRequest, api_routes=("/predict", "/predict_batch")
)
