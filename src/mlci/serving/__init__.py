"""Serving the approved model: the BentoML service (``service``), its request guard and OpenAPI
fix-ups (``request_guard``, ``openapi``), the request model derived from the contract
(``api_models``), the fast predictor (``predictor``) and the fast path it compiles from the
fitted pipeline (``compiled``), the store model it loads (``stored_model``), its Prometheus
counters (``service_metrics``), the prediction log, the model store (BentoML registration) and
packaging into a bento.
"""
