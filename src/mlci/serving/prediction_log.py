"""The prediction log: one JSON line per prediction, read later by drift monitoring.

Each line has exactly this shape (keys in this order)::

    {"request_id": "...", "timestamp": "2026-11-22T13:04:05.123456+00:00", "model_version": "...",
     "features": {"island": "Biscoe", "sex": null, ...}, "prediction": "Gentoo",
     "probabilities": {"Adelie": 0.01, "Chinstrap": 0.0, "Gentoo": 0.99}}

Configuration (environment, read when the service starts):

* ``MLCI_PREDICTION_LOG``: file to append to, relative to the working directory
  (default ``logs/predictions.jsonl``); an empty value turns logging off.
* ``MLCI_PREDICTION_LOG_EXCLUDE``: comma-separated feature names, or top-level keys, to leave out
  of every line (privacy). A name that is neither is reported at start-up.

Logging never blocks or fails a request: the request thread only appends to a bounded in-memory
queue; a writer thread serialises and appends. When the queue is full the predictions are
dropped and counted; when the file cannot be written (disk full, permissions) the predictions
are counted as errors, the service log says why (once per failure streak, then once a minute)
and the writer tries again on the next batch. Each batch is written with a single ``write`` to
a file opened with ``O_APPEND``, so several worker processes can share one file without
interleaving lines.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("mlci.serving.prediction_log")

DEFAULT_PATH = "logs/predictions.jsonl"
TOP_LEVEL_KEYS = (
    "request_id",
    "timestamp",
    "model_version",
    "features",
    "prediction",
    "probabilities",
)
# Predictions waiting for the writer; beyond this, new ones are dropped (and counted).
DEFAULT_MAX_PENDING = 100_000
# The writer wakes up this often (or as soon as this many predictions wait), so a busy service
# pays for one write per interval, not one per request, and the writer thread rarely competes
# with request handling for the GIL.
FLUSH_SECONDS = 0.25
FLUSH_ROWS = 5_000
_WARN_EVERY_SECONDS = 60.0


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class _Misaligned(Exception):  # noqa: N818 (control flow, not an error)
    """A column did not split into one value per row."""


class _Batch:
    __slots__ = ("labels", "model_version", "proba", "records", "request_ids", "timestamp")

    def __init__(
        self,
        request_ids: str | Sequence[str],
        timestamp: str,
        model_version: str,
        records: Sequence[Any],
        labels: Sequence[str],
        proba: Any,
    ) -> None:
        self.request_ids = request_ids
        self.timestamp = timestamp
        self.model_version = model_version
        self.records = records
        self.labels = labels
        self.proba = proba


class PredictionLog:
    """Appends predictions to ``path`` from a background thread.

    ``categories``: categorical feature → its allowed values (the contract's), when known; it
    enables the faster columnar serialiser (every other feature then holds numbers or null).

    ``on_written``, ``on_dropped`` and ``on_error`` receive a count of predictions; the service
    wires them to Prometheus counters.
    """

    def __init__(
        self,
        path: Path,
        *,
        features: Sequence[str],
        classes: Sequence[str],
        exclude: Sequence[str] = (),
        categories: Mapping[str, Sequence[str]] | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        flush_seconds: float = FLUSH_SECONDS,
        flush_rows: int = FLUSH_ROWS,
        on_written: Callable[[int], None] = lambda n: None,
        on_dropped: Callable[[int], None] = lambda n: None,
        on_error: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.path = Path(path)
        excluded = {e for e in exclude if e}
        unknown = sorted(excluded - set(features) - set(TOP_LEVEL_KEYS))
        if unknown:
            log.warning(
                "MLCI_PREDICTION_LOG_EXCLUDE names %s, which are neither features %s nor keys %s",
                unknown,
                list(features),
                list(TOP_LEVEL_KEYS),
            )
        self.features = [f for f in features if f not in excluded]
        self.keys = [k for k in TOP_LEVEL_KEYS if k not in excluded]
        self.classes = list(classes)
        # The columnar serialiser needs every category (and null) of each categorical feature;
        # any other feature must hold numbers or null. A validated record does.
        self._categories: dict[str, dict[Any, bytes]] | None = None
        if categories is not None:
            self._categories = {
                f: {**{c: orjson.dumps(c) for c in values}, None: b"null"}
                for f, values in categories.items()
            }
        self._label_json = {c: orjson.dumps(c) for c in self.classes}
        self.max_pending = max_pending
        self.flush_seconds, self.flush_rows = flush_seconds, max(1, flush_rows)
        self._flush_now = False
        self.on_written, self.on_dropped, self.on_error = on_written, on_dropped, on_error
        self.written = self.dropped = self.errors = 0

        self._queue: collections.deque[_Batch] = collections.deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._closing = False
        self._fd: int | None = None
        self._failing_since: float | None = None
        self._last_warning = 0.0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    # -- request side: constant time, never raises, never blocks on I/O ---------------------

    def submit(
        self,
        request_ids: str | Sequence[str],
        model_version: str,
        records: Sequence[Any],
        labels: Sequence[str],
        proba: Any,
        timestamp: str | None = None,
    ) -> bool:
        """Queue the predictions of one request; False (and counted) if they were dropped."""
        n = len(labels)
        try:
            batch = _Batch(
                request_ids, timestamp or utc_now(), model_version, records, labels, proba
            )
            with self._cond:
                if self._closing or self._pending + n > self.max_pending:
                    accepted = False
                else:
                    was_empty = not self._queue
                    self._queue.append(batch)
                    self._pending += n
                    # Wake the writer for the first batch of an interval or a full one only.
                    if was_empty or self._pending >= self.flush_rows:
                        self._cond.notify()
                    accepted = True
            if not accepted:
                self.dropped += n
                self.on_dropped(n)
            return accepted
        except Exception:  # logging must never fail a request
            log.exception("prediction log: could not queue %d predictions", n)
            return False

    # -- writer side --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._closing and not self._flush_now and self._pending < self.flush_rows:
                    self._cond.wait(self.flush_seconds)  # let a busy service fill the batch
                if not self._queue and self._closing:
                    break
                self._flush_now = False
                batches = list(self._queue)
                self._queue.clear()
            count = sum(len(b.labels) for b in batches)
            try:
                data = b"".join(self._lines(b) for b in batches)
                self._write(data)
            except Exception as err:
                self.errors += count
                self.on_error(count)
                self._warn(err, count)
            else:
                self.written += count
                self.on_written(count)
                if self._failing_since is not None:
                    log.warning("prediction log: writing to %s works again", self.path)
                    self._failing_since = None
            finally:
                with self._cond:
                    self._pending -= count
                    self._cond.notify_all()
        self._close_fd()

    def _lines(self, b: _Batch) -> bytes:
        if self._categories is not None:
            try:
                return self._lines_columnar(b)
            except (KeyError, _Misaligned):
                pass  # a value the fast path does not expect: the generic path handles it
        return self._lines_generic(b)

    def _lines_generic(self, b: _Batch) -> bytes:
        dumps = orjson.dumps
        features, keys, classes = self.features, self.keys, self.classes
        proba = b.proba.tolist() if hasattr(b.proba, "tolist") else [list(p) for p in b.proba]
        ids = b.request_ids
        shared = ids if isinstance(ids, str) else None
        full = len(keys) == len(TOP_LEVEL_KEYS)
        out = []
        for i, record in enumerate(b.records):
            get = record.get
            line = {
                "request_id": shared if shared is not None else ids[i],
                "timestamp": b.timestamp,
                "model_version": b.model_version,
                "features": {f: get(f) for f in features},
                "prediction": b.labels[i],
                "probabilities": dict(zip(classes, proba[i], strict=True)),
            }
            out.append(dumps(line if full else {k: line[k] for k in keys}))
        out.append(b"")
        return b"\n".join(out)

    def _lines_columnar(self, b: _Batch) -> bytes:
        """The same bytes as ``_lines_generic``, twice as fast: values are encoded column by
        column (one orjson call per numeric column, a lookup for categories and labels) and
        each line is one %-format of a template holding the keys and the batch's constants."""
        dumps = orjson.dumps
        n = len(b.labels)
        records = b.records
        categories = self._categories or {}

        def split(encoded: bytes, count: int) -> list[bytes]:
            parts = encoded[1:-1].split(b",") if count else []
            if len(parts) != count:  # a value held a comma: not a number or null
                raise _Misaligned
            return parts

        def esc(x: bytes) -> bytes:
            return x.replace(b"%", b"%%")

        ids = b.request_ids
        columns: dict[str, list[list[bytes]]] = {}
        head: dict[str, bytes] = {
            "timestamp": esc(dumps(b.timestamp)),
            "model_version": esc(dumps(b.model_version)),
            "prediction": b"%s",
            "features": b"{" + b",".join(esc(dumps(f)) + b":%s" for f in self.features) + b"}",
            "probabilities": b"{" + b",".join(esc(dumps(c)) + b":%s" for c in self.classes) + b"}",
        }
        if isinstance(ids, str):
            head["request_id"] = esc(dumps(ids))
        else:
            head["request_id"] = b"%s"
            columns["request_id"] = [[dumps(x) for x in ids]]
        feats = []
        for f in self.features:
            cats = categories.get(f)
            if cats is None:  # numeric: numbers or null
                feats.append(split(dumps([r.get(f) for r in records]), n))
            else:
                feats.append([cats[r.get(f)] for r in records])
        columns["features"] = feats
        labels = self._label_json
        columns["prediction"] = [[labels[x] for x in b.labels]]
        k = len(self.classes)
        if hasattr(b.proba, "ravel"):
            proba = b.proba.ravel().tolist()
        else:
            proba = [x for row in b.proba for x in row]
        flat = split(dumps(proba), n * k)
        columns["probabilities"] = [flat[j::k] for j in range(k)]

        template = b"{" + b",".join(esc(dumps(key)) + b":" + head[key] for key in self.keys) + b"}"
        cols = [c for key in self.keys for c in columns.get(key, [])]
        if not cols:
            return (template.replace(b"%%", b"%") + b"\n") * n
        return b"\n".join([template % row for row in zip(*cols, strict=True)]) + b"\n"

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            self._close_fd()  # reopen next time: the file may have been moved or the disk freed
            raise

    def _warn(self, err: Exception, count: int) -> None:
        now = time.monotonic()
        if self._failing_since is None or now - self._last_warning >= _WARN_EVERY_SECONDS:
            log.error(
                "prediction log: cannot write to %s (%s: %s); %d predictions lost "
                "(%d in total; see mlci_prediction_log_errors_total)",
                self.path,
                type(err).__name__,
                err,
                count,
                self.errors,
            )
            self._last_warning = now
        if self._failing_since is None:
            self._failing_since = now

    def _close_fd(self) -> None:
        if self._fd is not None:
            with suppress(OSError):
                os.close(self._fd)
            self._fd = None

    # -- lifecycle ----------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_now = True
            self._cond.notify_all()
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)


def from_env(
    features: Sequence[str],
    classes: Sequence[str],
    categories: Mapping[str, Sequence[str]] | None = None,
    **callbacks: Any,
) -> PredictionLog | None:
    """The log the environment asks for, or None when ``MLCI_PREDICTION_LOG`` is empty."""
    path = os.environ.get("MLCI_PREDICTION_LOG", DEFAULT_PATH).strip()
    if not path:
        log.info("prediction log disabled (MLCI_PREDICTION_LOG is empty)")
        return None
    exclude = [e.strip() for e in os.environ.get("MLCI_PREDICTION_LOG_EXCLUDE", "").split(",")]
    plog = PredictionLog(
        Path(path),
        features=features,
        classes=classes,
        exclude=exclude,
        categories=categories,
        **callbacks,
    )
    log.info(
        "prediction log: appending to %s%s",
        plog.path.resolve(),
        f" (excluding {sorted(e for e in exclude if e)})" if any(exclude) else "",
    )
    return plog
