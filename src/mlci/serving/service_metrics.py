"""The service's own Prometheus counters, served on BentoML's ``/metrics`` next to its built-in
request metrics.

    mlci_predictions_total{label, model_version}   predictions served, by predicted class
    mlci_prediction_log_written_total               predictions appended to the prediction log
    mlci_prediction_log_dropped_total               not logged: the log queue was full (the file
                                                    is slow or blocked), or the service stopped
                                                    before a stuck writer wrote them
    mlci_prediction_log_errors_total                not logged: the log file could not be written
    mlci_fast_path_enabled{model_version}           1: compiled fast path, 0: scikit-learn pipeline
    mlci_predictions_clipped_total{model_version}   regression answers outside the contract's
                                                    bounds on the target, served clipped to them

Every prediction served is counted once in ``written``, ``dropped`` or ``errors`` (or is still
queued). Predictions are never held up by the log: it drops and counts instead.

Plain ``prometheus_client`` (``bentoml.metrics`` is deprecated; it only forwarded to it). How the
counters reach ``/metrics``: BentoML serves that endpoint from prometheus_client's multiprocess
mode, a ``MultiProcessCollector`` over ``PROMETHEUS_MULTIPROC_DIR``, so every worker's counts add
up. prometheus_client picks its multiprocess storage when it is first imported, from that
variable: ``bentoml serve`` puts it in each worker's environment before the worker process
starts, so importing prometheus_client with this module (when the worker loads the service) is
early enough. A process that serves the app in-process (``Classifier.to_asgi()`` in tests) must
set ``PROMETHEUS_MULTIPROC_DIR`` before prometheus_client is first imported.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PREDICTIONS = Counter(
    name="mlci_predictions",
    documentation="Predictions served, by predicted class and model version",
    labelnames=["label", "model_version"],
)
LOG_WRITTEN = Counter(
    name="mlci_prediction_log_written",
    documentation="Predictions appended to the prediction log",
)
LOG_DROPPED = Counter(
    name="mlci_prediction_log_dropped",
    documentation="Predictions not logged: the log queue was full, or the service stopped first",
)
LOG_ERRORS = Counter(
    name="mlci_prediction_log_errors",
    documentation="Predictions not logged because the log file could not be written",
)
# 1: the compiled fast path predicts; 0: the scikit-learn pipeline does (the service log says
# why, once). "min" over the workers: one worker on the slow path shows.
FAST_PATH = Gauge(
    name="mlci_fast_path_enabled",
    documentation="1 if predictions use the compiled fast path, 0 if the scikit-learn pipeline",
    labelnames=["model_version"],
    multiprocess_mode="min",
)
# Regression: answers the model gave outside the target's contract bounds, served at the bound.
CLIPPED = Counter(
    name="mlci_predictions_clipped",
    documentation="Regression predictions clipped to the contract's bounds on the target",
    labelnames=["model_version"],
)
