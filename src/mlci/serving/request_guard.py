"""The raw-ASGI request guard in front of BentoML's routes: every invalid request is answered 4xx
here, with one error-body shape, before BentoML sees it.

* API calls must be JSON (415 otherwise): BentoML would pick a deserialiser by Content-Type
  (multipart forms, its internal pickle format) and answer some malformed bodies with 500.
* Bodies over :data:`MAX_BODY_BYTES` are refused with 413 before they are read into memory.
* The body is validated against the request model here: an invalid one is answered 400 with
  pydantic's error list (``loc`` names the field, ``msg`` the problem; at most
  :data:`MAX_ERRORS`), logged as one line. (BentoML would answer the same 400 but log a full
  traceback at ERROR level for every bad request.) A valid one is handed to BentoML already
  parsed: the request model derives from :class:`ValidatedInput`, which picks it up.
* A key given twice in one JSON object is refused (400 naming it): JSON parsers disagree on
  which value wins (pydantic's keeps the last), so the client may not get what it meant.
* Input echoed in an error (an unknown field's name, a Content-Type) is cut to
  :data:`ECHO_CHARS` characters plus its length: a 1 MB name gives a short answer.
* ``/docs.json`` is corrected (:func:`mlci.serving.openapi.fix_openapi`).

The error body is ``{"error": "<one line>", "detail": [{"type", "loc", "msg"}, ...]}``
(:data:`mlci.serving.openapi.ERROR_SCHEMA`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import bentoml
from pydantic import BaseModel, ConfigDict, ValidationError

from mlci.serving.api_models import MAX_RECORDS
from mlci.serving.openapi import fix_openapi

# The service's logger: a rejected request is one line of the service log.
log = logging.getLogger("mlci.serving.service")

# 10,000 records of this contract are about 1.5 MB of JSON; 8 MiB leaves room for whitespace.
MAX_BODY_BYTES = 8 * 1024 * 1024
# Bodies up to this size are validated on the event loop; larger ones in a worker thread.
INLINE_BODY_BYTES = 64 * 1024
# An answer lists at most this many problems (10,000 bad records would make a huge answer).
MAX_ERRORS = 100
# Input echoed in an error body is cut to this many characters (plus its length).
ECHO_CHARS = 80
# Where the guard leaves the validated body for :class:`ValidatedInput` (the ASGI scope).
_VALIDATED = "mlci.validated_input"


class ValidatedInput(bentoml.IODescriptor):
    """Base of the service's request model: reads the body :class:`RequestGuard` validated."""

    model_config = ConfigDict(strict=True, extra="forbid")

    @classmethod
    async def from_http_request(cls, request: Any, serde: Any) -> Any:
        # ``RequestGuard`` has already parsed and validated the body: use its result.
        validated = request.scope.get(_VALIDATED)
        if isinstance(validated, cls):
            return validated
        return await super().from_http_request(request, serde)


def error_body(error: str, loc: list[Any], msg: str, kind: str) -> dict[str, Any]:
    return {"error": error, "detail": [{"type": kind, "loc": loc, "msg": msg}]}


def short(value: Any) -> Any:
    """A string from the client, cut for an error message: ``'xxx…' (N characters)``."""
    if isinstance(value, str) and len(value) > ECHO_CHARS:
        return f"{value[:ECHO_CHARS]}… ({len(value)} characters)"
    return value


class DuplicateKeyError(ValueError):
    def __init__(self, loc: list[Any]) -> None:
        super().__init__(f"duplicate key {loc[-1]!r}")
        self.loc = loc


def _count_keys(validated: Any) -> int:
    """A lower bound of the number of keys in the JSON a validated body came from: the fields
    it set, plus the keys of records (dicts) in its list fields. Nested values are not
    counted (they can only make the bound lower, never wrong)."""
    if not isinstance(validated, BaseModel):
        return 0
    fields = validated.model_fields_set
    n = len(fields)
    for name in fields:
        value = getattr(validated, name)
        if isinstance(value, list):
            n += sum(len(x) for x in value if isinstance(x, dict))
    return n


def check_unique_keys(raw: bytes, validated: Any) -> None:
    """Raise :class:`DuplicateKeyError` (with the key's location) if a JSON object in ``raw``
    has a key twice.

    Fast path: every key is followed by one ``:`` outside strings, so a body with as many
    ``:`` bytes as the validated body has keys (it keeps one value per key) cannot repeat one;
    ``bytes.count`` costs a twentieth of parsing. Otherwise (a repeated key, or a ``:`` inside
    a string) the body is parsed again with a hook that sees every key.
    """
    if raw.count(b":") == _count_keys(validated):
        return
    repeated: list[str] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs) or repeated:
            return obj
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                repeated.append(key)
                break
            seen.add(key)
        return _Repeated(obj)

    parsed = json.loads(raw, object_pairs_hook=pairs_hook)
    if repeated:
        raise DuplicateKeyError([*(_path_to(parsed) or []), repeated[0]])


class _Repeated(dict):
    """Marks the object with the repeated key, to find its location afterwards."""


def _path_to(node: Any) -> list[Any] | None:
    """Location (keys and list indexes) of the :class:`_Repeated` object inside ``node``."""
    if isinstance(node, _Repeated):
        return []
    if isinstance(node, dict):
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return None
    for key, value in items:
        rest = _path_to(value)
        if rest is not None:
            return [key, *rest]
    return None


class RequestGuard:
    """ASGI middleware in front of BentoML's routes; it answers every invalid request itself
    (see the module docstring)."""

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
            msg = f"send JSON with 'Content-Type: application/json', not {short(ctype)!r}"
            body = error_body(msg, ["header", "content-type"], msg, "content_type")
            return await respond(send, 415, body)
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
        parse = _parser(self.input_spec.model_validate_json)
        try:
            if len(raw) <= INLINE_BODY_BYTES:
                scope[_VALIDATED] = parse(raw)
            else:  # thousands of records: keep the event loop (and health checks) responsive
                scope[_VALIDATED] = await anyio.to_thread.run_sync(parse, raw)
        except ValidationError as err:
            detail = err.errors(include_url=False, include_context=False, include_input=False)
            return await _reject(send, path, detail)
        except DuplicateKeyError as err:
            msg = f"duplicate key {short(err.loc[-1])!r}: send each key once"
            detail = [{"type": "duplicate_key", "loc": err.loc, "msg": msg}]
            return await _reject(send, path, detail)
        except (ValueError, RecursionError) as err:  # JSON pydantic read but Python's json not
            msg = f"Invalid JSON: {short(str(err))}"
            return await _reject(send, path, [{"type": "json_invalid", "loc": [], "msg": msg}])

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
        await respond(send, 200, fix_openapi(json.loads(body), self.api_routes))


def _parser(validate: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        validated = validate(raw)
        check_unique_keys(raw, validated)
        return validated

    return parse


async def _reject(send: Any, path: str, detail: list[Any]) -> None:
    """Answer 400 with ``detail`` (pydantic's error list shape), echoed input cut short."""
    for d in detail:
        d["loc"] = [short(x) for x in d["loc"]]
    problems = [f"{'.'.join(map(str, d['loc'])) or 'body'}: {d['msg']}" for d in detail]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    log.info("rejected %s: %s", path, "; ".join(problems[:5])[:500])
    await respond(send, 400, {"error": problems[0] + more, "detail": detail[:MAX_ERRORS]})


async def respond(send: Any, status: int, payload: Any) -> None:
    """Send ``payload`` as a complete JSON answer."""
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
        f"send at most {MAX_RECORDS} records per request"
    )
    await respond(send, 413, error_body(msg, ["body"], msg, "too_large"))
