"""Serving the approved model: the BentoML service (``service``), its request guard and OpenAPI
fix-ups (``request_guard``, ``openapi``), the request model derived from the contract
(``api_models``), the fast predictor (``predictor``) and the fast path it compiles from the
fitted pipeline (``compiled``), the store model it loads (``stored_model``) and the serving
manifest registered with it (``manifest``: what a worker needs to start without scikit-learn or
pandera), its Prometheus counters (``service_metrics``), the prediction log, the model store
(BentoML registration) and packaging into a bento.
"""

import time

# When this package was first imported: in a ``bentoml serve`` worker, the start of importing
# the service, whose start-up line reports how long its imports took from here.
IMPORTED_AT = time.time()
