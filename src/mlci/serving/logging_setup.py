"""Makes the service's own log lines visible under ``bentoml serve``.

BentoML configures logging in each worker before it imports the service: the root logger at
WARNING, with one handler that writes every record reaching it to stdout in BentoML's format
(time, level, worker, trace id). The service's INFO lines (model loaded and its version, where
the prediction log goes, rejected requests) would stop at the root's level. Giving the ``mlci``
logger its own level lets them through that same handler, in the same format as BentoML's lines.
Outside BentoML, when nothing has configured logging, the ``mlci`` logger gets its own handler
(stderr).

``MLCI_LOG_LEVEL`` (default ``INFO``) sets the level: ``DEBUG`` to see more, ``WARNING`` to see
only problems.
"""

from __future__ import annotations

import logging
import os

LOGGER = "mlci"
DEFAULT_LEVEL = "INFO"
_FORMAT = "%(asctime)s [%(levelname)s] [%(name)s] %(message)s"


def show_service_logs() -> logging.Logger:
    """Set the ``mlci`` logger's level (``MLCI_LOG_LEVEL``) and, if no handler would print its
    records, give it one. Idempotent: call it when the service module loads."""
    logger = logging.getLogger(LOGGER)
    name = os.environ.get("MLCI_LOG_LEVEL", "").strip().upper() or DEFAULT_LEVEL
    level = logging.getLevelNamesMapping().get(name)
    logger.setLevel(level if level is not None else DEFAULT_LEVEL)
    # dictConfig (BentoML's included) disables loggers created before it runs: undo that for
    # ours, or their lines vanish without a trace.
    logger.disabled = False
    for other, obj in logging.root.manager.loggerDict.items():
        if other.startswith(f"{LOGGER}.") and isinstance(obj, logging.Logger):
            obj.disabled = False
    if not logging.root.handlers and not any(_is_ours(h) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.set_name(f"{LOGGER}-default")
        logger.addHandler(handler)
    if level is None:
        logger.warning("MLCI_LOG_LEVEL=%r is not a log level; using %s", name, DEFAULT_LEVEL)
    return logger


def _is_ours(handler: logging.Handler) -> bool:
    return handler.get_name() == f"{LOGGER}-default"
