"""The BentoML service: the approved model behind an HTTP API whose request model is the data
contract.

    bentoml serve mlci.serving.service:Classifier        (``make serve``: registers the model first)

Endpoints
    POST /predict        ``{"records": [{...}, ...]}`` (1 to 10,000 records) → one prediction per
                         record: label, class probabilities and model version (classification),
                         or the predicted value and model version (regression); plus the
                         request id.
    POST /predict_batch  the same records, answered as a list; BentoML's adaptive batching merges
                         concurrent requests into one model call (many small clients).
    GET  /livez /readyz /metrics /docs.json (BentoML built-ins; /docs.json is patched, see below)

The request model is derived from ``mlci.contract.spec()``: names, types, ranges, allowed
categories, nullability. Strict types (``false`` and ``"3"`` are not numbers), unknown fields
rejected (``mlci.serving.api_models``). Every invalid request is answered 4xx before BentoML
sees it (``mlci.serving.request_guard``): 400 with pydantic's error list (``loc`` names the
field, ``msg`` the problem), 413 for an oversized body, 415 for a body that is not JSON.

The model is the BentoML store's ``mlci-classifier:<tag>`` (``mlci.serving.stored_model``;
registered by ``mlci.serving.model_store``), loaded with skops and the trust list, never pickle.
A missing, corrupt or contract-incompatible model stops the service at start-up with a message
that says what to do.

Every prediction is appended to the prediction log (``mlci.serving.prediction_log``) without ever
blocking or failing a request, and counted on /metrics (``mlci.serving.service_metrics``), which
also says whether the compiled fast path predicts (``mlci_fast_path_enabled``; the log says why
not, once).

Start-up: ``bentoml serve`` imports this module in its supervisor and again in every worker, so
nothing heavy is imported here. The request model and the answers' shape come from the model's
serving manifest (``mlci.serving.manifest``, written at registration), not from the pandera
contract; a worker builds the compiled predictor from it with NumPy alone (no scikit-learn,
skops, pandas or pandera) and logs one ``start-up:`` line with the time of each phase.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections import Counter as _Tally
from pathlib import Path
from typing import Any

import anyio.to_thread
import bentoml
import orjson
from pydantic import create_model
from starlette.responses import Response

from mlci import serving
from mlci.serving import (
    api_models,
    model_store,
    prediction_log,
    request_guard,
    service_metrics,
    stored_model,
)
from mlci.serving.logging_setup import show_service_logs

# BentoML leaves the root logger at WARNING: without this the service's INFO lines vanish.
show_service_logs()
log = logging.getLogger("mlci.serving.service")

MODEL_TAG = model_store.resolve_tag()
MODEL = stored_model.StoreModel(MODEL_TAG)
# The contract's facts, from the model's serving manifest when usable (else the contract).
SPEC = MODEL.serving_spec()
# Requests up to this many records are predicted on the event loop (microseconds of work, no
# thread hop); bigger ones in a worker thread so health checks stay responsive.
INLINE_ROWS = 64
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

TASK = SPEC.task
# The answers' shapes follow the contract's task (label and probabilities, or a value).
PredictResponse, BatchItem = api_models.response_models(TASK)
# Regression has no classes: its predictions are counted under one empty label.
VALUE_LABEL = ""

PredictRequest = create_model(
    "PredictRequest",
    __base__=request_guard.ValidatedInput,
    __doc__="Records to score; every field is checked against the data contract.",
    records=api_models.records_field(SPEC),
)


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
    model = MODEL

    def __init__(self) -> None:
        from mlci.serving import predictor  # NumPy: the supervisor never needs it

        started = time.time()
        self.spec = SPEC
        self.predictor = stored_model.load_predictor(type(self).__dict__["model"])
        self.version = self.predictor.version
        self.classes = self.predictor.classes
        predictor.limit_threads()
        loaded = time.time()
        # Warm-up: the first request should not pay for first-call costs.
        self.predictor.score([api_models.example_record(self.spec)])
        warm = time.time()
        self._counters = {
            c: service_metrics.PREDICTIONS.labels(label=c, model_version=self.version)
            for c in (self.classes or (VALUE_LABEL,))
        }
        self.predictor.on_clipped = service_metrics.CLIPPED.labels(model_version=self.version).inc
        service_metrics.FAST_PATH.labels(model_version=self.version).set(
            1 if self.predictor.fast_path else 0
        )
        if not self.predictor.fast_path:  # once, in the serving process
            log.warning(
                "fast path off: model %s is served with the scikit-learn pipeline (correct, "
                "slower; mlci_fast_path_enabled 0): %s",
                MODEL_TAG,
                self.predictor.fallback_reason,
            )
        self.prediction_log = self._open_prediction_log()
        log.info(
            "serving model %s (%s, %s path)",
            MODEL_TAG,
            f"classes {list(self.classes)}" if self.classes else "regression",
            self.predictor.mode,
        )
        self._log_startup(started, loaded, warm)

    def _log_startup(self, started: float, loaded: float, warm: float) -> None:
        """One line with the time of each start-up phase of this worker (``bench/serve_bench.py``
        reads it): the process up to this module (Python, BentoML), this module's imports, the
        model (manifest read or model file loaded; predictor built), the self-check of the
        compiled path against the pipeline's recorded answers, the warm-up; "ready": the end
        of ``__init__`` (metrics and prediction log set up too)."""
        startup = type(self).__dict__["model"].__dict__["startup"]
        resolve = startup.timings.get("resolve_s", 0.0)  # during this module's import
        check = startup.timings.get("self_check_s", 0.0)
        now = time.time()
        age = _process_age()
        process = now - age if age is not None else serving.IMPORTED_AT
        log.info(
            "start-up: ready %.2f s after the worker process started: Python and BentoML %.2f s, "
            "service imports %.2f s, model %.3f s (%s), self-check %.2f ms, warm-up %.2f ms",
            now - process,
            serving.IMPORTED_AT - process,
            _IMPORT_DONE - serving.IMPORTED_AT - resolve,
            resolve + (loaded - started - check),
            startup.source,
            check * 1e3,
            (warm - loaded) * 1e3,
        )

    def _open_prediction_log(self) -> prediction_log.PredictionLog | None:
        """The prediction log the environment asks for (``MLCI_PREDICTION_LOG``...)."""
        spec = self.spec
        return prediction_log.from_env(
            spec.feature_names,
            self.classes,
            # Closed sets only: an open set (no `isin`) has no category table to encode from.
            categories={
                f.name: f.categories
                for f in spec.features
                if f.kind == "categorical" and f.categories
            },
            on_written=service_metrics.LOG_WRITTEN.inc,
            on_dropped=service_metrics.LOG_DROPPED.inc,
            on_error=service_metrics.LOG_ERRORS.inc,
        )

    @bentoml.on_shutdown
    def _flush_log(self) -> None:
        if self.prediction_log is not None:
            self.prediction_log.close()

    # -- endpoints ------------------------------------------------------------------------

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(self, records: list[dict[str, Any]], ctx: bentoml.Context) -> Response:
        """Score 1 to 10,000 records: label, class probabilities and model version each
        (classification), or the predicted value and model version (regression).

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
    def predict_batch(self, records: list[dict[str, Any]]) -> list[BatchItem]:
        """Like /predict, answered as a list; concurrent requests are merged (adaptive batching).

        Each prediction carries its own ``request_id``: the id it is logged under.
        """
        predictions, proba = self.predictor.score(records)
        ids = [uuid.uuid4().hex for _ in records]
        self._record(ids, records, predictions, proba)
        version, classes = self.version, self.classes
        if proba is None:
            return [
                BatchItem.model_construct(prediction=value, model_version=version, request_id=rid)
                for value, rid in zip(predictions, ids, strict=True)
            ]
        return [
            BatchItem.model_construct(
                label=label,
                probabilities=dict(zip(classes, p, strict=True)),
                model_version=version,
                request_id=rid,
            )
            for label, p, rid in zip(predictions, proba.tolist(), ids, strict=True)
        ]

    # -- internals ------------------------------------------------------------------------

    def _record(
        self,
        request_ids: str | list[str],
        rows: list[dict[str, Any]],
        predictions: list[Any],
        proba: Any,
    ) -> None:
        """Count and log the predictions (labels, or values for regression; proba or None)."""
        if proba is None:
            self._counters[VALUE_LABEL].inc(len(predictions))
        else:
            for label, n in _Tally(predictions).items():
                self._counters[label].inc(n)
        if self.prediction_log is not None:
            self.prediction_log.submit(request_ids, self.version, rows, predictions, proba)

    def _predict(self, rows: list[dict[str, Any]], request_id: str) -> bytes:
        """The JSON body of a /predict answer (orjson: the pydantic round trip costs more than
        the model on one row). Its shape is ``PredictResponse`` (``api_models``)."""
        predictions, proba = self.predictor.score(rows)
        self._record(request_id, rows, predictions, proba)
        version, classes = self.version, self.classes
        if proba is None:
            answers = [{"prediction": v, "model_version": version} for v in predictions]
        else:
            answers = [
                {
                    "label": label,
                    "probabilities": dict(zip(classes, p, strict=True)),
                    "model_version": version,
                }
                for label, p in zip(predictions, proba.tolist(), strict=True)
            ]
        return orjson.dumps(
            {"request_id": request_id, "model_version": version, "predictions": answers}
        )


def _process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``; None elsewhere). Not psutil's
    ``create_time``: it counts from the boot time rounded to whole seconds, so it can be up to
    a second off against ``time.time()``."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(after_name[19])  # field 22, the start time in clock ticks since boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _request_id(ctx: bentoml.Context) -> str:
    given = ctx.request.headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


Classifier.add_asgi_middleware(
    request_guard.RequestGuard, input_spec=PredictRequest, api_routes=("/predict", "/predict_batch")
)

_IMPORT_DONE = time.time()
