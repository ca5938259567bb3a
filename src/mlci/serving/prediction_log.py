"""The prediction log: one JSON line per prediction, read later by drift monitoring.

Each line has exactly this shape (keys in this order)::

    {"request_id": "...", "timestamp": "2026-11-22T13:04:05.123456+00:00", "model_version": "...",
     "features": {"island": "Biscoe", "sex": null, ...}, "prediction": "Gentoo",
     "probabilities": {"Adelie": 0.01, "Chinstrap": 0.0, "Gentoo": 0.99}}

For regression (no classes) ``prediction`` is the predicted value, a JSON number, and there is
no ``probabilities`` key: ``{..., "features": {...}, "prediction": 152.37}``.

Configuration (environment, read when the service starts):

* ``MLCI_PREDICTION_LOG``: file to append to, relative to the working directory
  (default ``logs/predictions.jsonl``); an empty value turns logging off.
* ``MLCI_PREDICTION_LOG_EXCLUDE``: comma-separated feature names, or top-level keys, to leave out
  of every line (privacy). A name that is neither is reported at start-up.
* ``MLCI_PREDICTION_LOG_MAX_BYTES`` (default 104857600, 100 MiB; 0: no size limit) and
  ``MLCI_PREDICTION_LOG_BACKUPS`` (default 5): size rotation, ``predictions.jsonl`` →
  ``predictions.1.jsonl`` … ``predictions.5.jsonl``, the oldest deleted
  (:mod:`mlci.serving.log_file`). A file moved away by logrotate is followed either way.
* ``MLCI_PREDICTION_LOG_QUEUE`` (default 100000): predictions waiting for the writer, at most.
* ``MLCI_PREDICTION_LOG_CLOSE_SECONDS`` (default 10): on shutdown, how long to wait for a stuck
  writer before counting what it has not written as dropped (keep it below the pod's
  ``terminationGracePeriodSeconds``).

A value that is not a whole number (or too small) is reported at start-up and the default used.

Logging never blocks or fails a request: the request thread only appends to a bounded in-memory
queue; a writer thread serialises and appends. Every prediction not written is counted: when the
queue is full (the file is slow or blocked) the predictions are dropped, counted, and reported in
the service log (once per streak, then once a minute, with how long the writer has been stuck);
what is still queued when the service stops and the writer does not finish is counted as dropped
too. When the file cannot be written (disk full, permissions) the predictions are counted as
errors, the service log says why (once per failure streak, then once a minute) and the writer
tries again on the next batch.
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

from mlci.serving.log_file import AppendFile
from mlci.serving.log_lines import TOP_LEVEL_KEYS, Batch, LineEncoder

__all__ = ["TOP_LEVEL_KEYS", "PredictionLog", "from_env", "utc_now"]

log = logging.getLogger("mlci.serving.prediction_log")

DEFAULT_PATH = "logs/predictions.jsonl"
# Predictions waiting for the writer; beyond this, new ones are dropped (and counted).
DEFAULT_MAX_PENDING = 100_000
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUPS = 5
DEFAULT_CLOSE_SECONDS = 10
# The writer wakes up this often (or as soon as this many predictions wait), so a busy service
# pays for one write per interval, not one per request, and the writer thread rarely competes
# with request handling for the GIL.
FLUSH_SECONDS = 0.25
FLUSH_ROWS = 5_000
_WARN_EVERY_SECONDS = 60.0


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class PredictionLog:
    """Appends predictions to ``path`` from a background thread.

    ``categories``: categorical feature → its allowed values (the contract's), when known; it
    enables the faster columnar encoder (:class:`mlci.serving.log_lines.LineEncoder`).

    ``on_written``, ``on_dropped`` and ``on_error`` receive a count of predictions; the service
    wires them to Prometheus counters. ``max_bytes`` and ``backups``: size rotation (see
    :class:`mlci.serving.log_file.AppendFile`). ``report_seconds``: at most one report of
    dropped predictions per this interval.
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
        max_bytes: int = 0,
        backups: int = DEFAULT_BACKUPS,
        report_seconds: float = _WARN_EVERY_SECONDS,
        close_seconds: float = DEFAULT_CLOSE_SECONDS,
        on_written: Callable[[int], None] = lambda n: None,
        on_dropped: Callable[[int], None] = lambda n: None,
        on_error: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.path = Path(path)
        self.close_seconds = close_seconds
        self._file = AppendFile(self.path, max_bytes, backups)
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
        self.encoder = LineEncoder(self.features, self.classes, self.keys, categories)
        self.max_pending = max_pending
        self.flush_seconds, self.flush_rows = flush_seconds, max(1, flush_rows)
        self._flush_now = False
        self.on_written, self.on_dropped, self.on_error = on_written, on_dropped, on_error
        self.written = self.dropped = self.errors = 0

        self._queue: collections.deque[Batch] = collections.deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._closing = False
        self._busy_since: float | None = None  # when the writer started its current batch
        self._abandoned = False  # close() gave up on a stuck writer and counted its batches
        # Drops not yet reported in the service log, and when they last were.
        self.report_seconds = report_seconds
        self._unreported = 0
        self._last_drop_report: float | None = None
        self._dropped_closing = False
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
            batch = Batch(
                request_ids, timestamp or utc_now(), model_version, records, labels, proba
            )
            report = None
            with self._cond:
                if self._closing or self._pending + n > self.max_pending:
                    accepted = False
                    self._dropped_closing = self._closing  # why, for the report
                    self.dropped += n
                    self._unreported += n
                    report = self._drop_report(time.monotonic())
                    if report is None and self._unreported == n:
                        self._cond.notify()  # an idle writer reports them when the interval ends
                else:
                    was_empty = not self._queue
                    self._queue.append(batch)
                    self._pending += n
                    # Wake the writer for the first batch of an interval or a full one only.
                    if was_empty or self._pending >= self.flush_rows:
                        self._cond.notify()
                    accepted = True
            if not accepted:
                self.on_dropped(n)
                if report:  # outside the lock: a slow log stream must not hold up other requests
                    log.warning(report)
            return accepted
        except Exception:  # logging must never fail a request, but a lost one is counted
            log.exception("prediction log: could not queue %d predictions", n)
            with suppress(Exception):
                self.dropped += n
                self.on_dropped(n)
            return False

    def _until_report_due(self) -> float | None:
        if not self._unreported or self._last_drop_report is None:
            return None
        return max(0.01, self._last_drop_report + self.report_seconds - time.monotonic())

    def _drop_report(self, now: float, force: bool = False) -> str | None:
        """The drops not yet reported, if a report is due (the first of a streak, then one per
        ``report_seconds``); call with the lock held."""
        last = self._last_drop_report
        if not self._unreported:
            return None
        if not force and last is not None and now - last < self.report_seconds:
            return None
        if self._dropped_closing:
            why = "the service is stopping"
        else:
            why = (
                f"the queue is full ({self._pending} waiting, MLCI_PREDICTION_LOG_QUEUE="
                f"{self.max_pending}); the writer "
                + (
                    f"has been writing to {self.path} for {now - self._busy_since:.0f} s"
                    if self._busy_since is not None
                    else f"is behind with {self.path}"
                )
            )
        msg = (
            f"prediction log: dropped {self._unreported} predictions"
            f"{'' if last is None else f' in the last {now - last:.0f} s'}"
            f" ({self.dropped} in total, mlci_prediction_log_dropped_total): {why}"
        )
        self._unreported = 0
        self._last_drop_report = now
        return msg

    # -- writer side --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                idle = not self._queue and not self._closing
                if idle:  # wake up for work, or when the last drops of a streak are due
                    self._cond.wait(self._until_report_due())
                    report = self._drop_report(time.monotonic())
            if idle:
                if report:  # outside the lock, as in submit
                    log.warning(report)
                continue
            with self._cond:
                if not self._closing and not self._flush_now and self._pending < self.flush_rows:
                    self._cond.wait(self.flush_seconds)  # let a busy service fill the batch
                if not self._queue and self._closing:
                    break
                self._flush_now = False
                batches = list(self._queue)
                self._queue.clear()
                self._busy_since = time.monotonic()
            count = sum(len(b.labels) for b in batches)
            try:
                data = b"".join(self.encoder.lines(b) for b in batches)
                self._file.write(data)
            except Exception as err:
                if not self._abandoned:  # else close() has counted them already
                    self.errors += count
                    self.on_error(count)
                    self._warn(err, count)
            else:
                if not self._abandoned:
                    self.written += count
                    self.on_written(count)
                if self._failing_since is not None:
                    log.warning("prediction log: writing to %s works again", self.path)
                    self._failing_since = None
            finally:
                with self._cond:
                    self._busy_since = None
                    self._pending -= count
                    self._cond.notify_all()
        self._file.close()

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

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued; what a stuck writer has not written after ``timeout`` seconds
        (default ``close_seconds``) is counted as dropped (the process is about to end: it would
        be lost uncounted)."""
        timeout = self.close_seconds if timeout is None else timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            report = self._drop_report(time.monotonic(), force=True)  # earlier drops first
            lost = self._pending if self._thread.is_alive() else 0
            if lost:
                self._abandoned = True
                self.dropped += lost
        if report:
            log.warning(report)
        if lost:
            self.on_dropped(lost)
            log.error(
                "prediction log: the writer is still busy with %s after %.0f s; the %d "
                "predictions it has not written are lost (%d dropped in total, "
                "mlci_prediction_log_dropped_total)",
                self.path,
                timeout,
                lost,
                self.dropped,
            )


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
    max_bytes = _int_setting("MLCI_PREDICTION_LOG_MAX_BYTES", DEFAULT_MAX_BYTES, 0)
    backups = _int_setting("MLCI_PREDICTION_LOG_BACKUPS", DEFAULT_BACKUPS, 1)
    plog = PredictionLog(
        Path(path),
        features=features,
        classes=classes,
        exclude=exclude,
        categories=categories,
        max_pending=_int_setting("MLCI_PREDICTION_LOG_QUEUE", DEFAULT_MAX_PENDING, 1),
        max_bytes=max_bytes,
        backups=backups,
        close_seconds=_int_setting("MLCI_PREDICTION_LOG_CLOSE_SECONDS", DEFAULT_CLOSE_SECONDS, 1),
        **callbacks,
    )
    log.info(
        "prediction log: appending to %s (%s; queue %d)%s",
        plog.path.resolve(),
        f"rotated at {max_bytes} bytes, {backups} kept" if max_bytes else "no size limit",
        plog.max_pending,
        f" (excluding {sorted(e for e in exclude if e)})" if any(exclude) else "",
    )
    return plog


def _int_setting(name: str, default: int, minimum: int) -> int:
    """A whole-number setting from the environment. A bad value is reported (ERROR) and the
    default used: raising here would crash every worker at start, and BentoML would restart
    them forever; the defaults keep the disk capped."""
    raw = os.environ.get(name, "").strip().replace("_", "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        log.error(
            "%s=%r is not a whole number >= %d; using the default, %d",
            name,
            os.environ[name],
            minimum,
            default,
        )
        return default
    return int(raw)
