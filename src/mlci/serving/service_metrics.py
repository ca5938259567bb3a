"""The service's own Prometheus counters, served on BentoML's ``/metrics`` next to its built-in
request metrics.

    mlci_predictions_total{label, model_version}   predictions served, by predicted class
    mlci_prediction_log_written_total               predictions appended to the prediction log
    mlci_prediction_log_dropped_total               not logged: the log queue was full
    mlci_prediction_log_errors_total                not logged: the log file could not be written

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

from prometheus_client import Counter

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
    documentation="Predictions not logged because the log queue was full",
)
LOG_ERRORS = Counter(
    name="mlci_prediction_log_errors",
    documentation="Predictions not logged because the log file could not be written",
)
