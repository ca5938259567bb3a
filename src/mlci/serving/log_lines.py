"""The bytes of the prediction log: one JSON line per prediction (shape in
:mod:`mlci.serving.prediction_log`), encoded in the log's writer thread, never in a request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

TOP_LEVEL_KEYS = (
    "request_id",
    "timestamp",
    "model_version",
    "features",
    "prediction",
    "probabilities",
)


class _Misaligned(Exception):  # noqa: N818 (control flow, not an error)
    """A column did not split into one value per row."""


class Batch:
    """The predictions of one request, as the request handed them over."""

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


class LineEncoder:
    """Encodes batches as JSON lines with ``features`` and ``keys`` (what is not excluded).

    ``categories``: categorical feature → its allowed values (the contract's), when known; it
    enables the faster columnar encoder (every other feature then holds numbers or null).
    """

    def __init__(
        self,
        features: Sequence[str],
        classes: Sequence[str],
        keys: Sequence[str] = TOP_LEVEL_KEYS,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.features, self.classes, self.keys = list(features), list(classes), list(keys)
        if not self.classes:  # regression: "prediction" is the value; there are no probabilities
            self.keys = [k for k in self.keys if k != "probabilities"]
        # The columnar encoder needs every category (and null) of each categorical feature;
        # any other feature must hold numbers or null. A validated record does.
        self._categories: dict[str, dict[Any, bytes]] | None = None
        if categories is not None:
            self._categories = {
                f: {**{c: orjson.dumps(c) for c in values}, None: b"null"}
                for f, values in categories.items()
            }
        self._label_json = {c: orjson.dumps(c) for c in self.classes}

    def lines(self, b: Batch) -> bytes:
        if self._categories is not None:
            try:
                return self.columnar(b)
            except (KeyError, _Misaligned):
                pass  # a value the fast path does not expect: the generic path handles it
        return self.generic(b)

    def generic(self, b: Batch) -> bytes:
        dumps = orjson.dumps
        features, keys, classes = self.features, self.keys, self.classes
        if b.proba is None:  # regression
            proba = [None] * len(b.records)
        else:
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
                "probabilities": proba[i] and dict(zip(classes, proba[i], strict=True)),
            }
            out.append(dumps(line if full else {k: line[k] for k in keys}))
        out.append(b"")
        return b"\n".join(out)

    def columnar(self, b: Batch) -> bytes:
        """The same bytes as :meth:`generic`, twice as fast: values are encoded column by
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
        if b.proba is None:  # regression: the predicted values, as numbers; no probabilities
            columns["prediction"] = [split(dumps(list(b.labels)), n)]
        else:
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
