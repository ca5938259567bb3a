"""Corrections to the OpenAPI document BentoML generates (``/docs.json``).

BentoML's spec omits ``requestBody.required`` and describes its 400 answer with a schema the
service's answers do not follow (known upstream). :func:`fix_openapi` makes the document say
what the service really does, so schemathesis and clients can rely on it without exclusions:
the body is required, and 400 / 413 / 415 answer with the error body the request guard
(:mod:`mlci.serving.request_guard`) sends.
"""

from __future__ import annotations

from typing import Any

# The error body of every 4xx the request guard answers: ``error`` says what is wrong in one
# line, ``detail`` lists the problems (pydantic's list: ``loc`` names the field, ``msg`` says why).
ERROR_SCHEMA: dict[str, Any] = {
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

_ERROR_ANSWERS = (
    ("400", "the body is not valid JSON or breaks the data contract"),
    ("413", "the body is larger than the service accepts"),
    ("415", "the body is not application/json"),
)


def fix_openapi(spec: dict[str, Any], api_routes: set[str] | tuple[str, ...]) -> dict[str, Any]:
    """Make BentoML's generated OpenAPI document describe what the service really does."""
    for route, item in (spec.get("paths") or {}).items():
        op = item.get("post")
        if route not in api_routes or not op:
            continue
        if "requestBody" in op:
            op["requestBody"]["required"] = True
        responses = op.setdefault("responses", {})
        for status, why in _ERROR_ANSWERS:
            responses[status] = {
                "description": why,
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
            }
    return spec
