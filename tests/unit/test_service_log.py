"""The prediction log: exact line shape, exclusion, and never failing or blocking a request."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from mlci.serving import prediction_log as serving_log
from mlci.serving.prediction_log import TOP_LEVEL_KEYS, PredictionLog

FEATURES = ["island", "culmen_length_mm", "sex"]
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
RECORDS = [
    {"island": "Biscoe", "culmen_length_mm": 47.5, "sex": "male"},
    {"island": "Dream"},  # nullable features left out: logged as null
    {"island": "Torgersen", "culmen_length_mm": None, "sex": None},
]
PROBA = np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
LABELS = ["Gentoo", "Adelie", "Adelie"]


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def make(path: Path, **kw) -> PredictionLog:
    return PredictionLog(path, features=FEATURES, classes=CLASSES, **kw)


CATEGORIES = {"island": ["Biscoe", "Dream", "Torgersen"], "sex": ["female", "male"]}


@pytest.mark.parametrize("categories", [None, CATEGORIES])
def test_every_prediction_is_one_line_of_the_agreed_shape(tmp_path: Path, categories) -> None:
    log = make(tmp_path / "sub" / "p.jsonl", categories=categories)
    before = datetime.now(serving_log.UTC)
    assert log.submit("req-1", "v7", RECORDS, LABELS, PROBA)
    assert log.flush()
    log.close()
    lines = read(tmp_path / "sub" / "p.jsonl")
    assert len(lines) == 3
    for line, record, label, proba in zip(lines, RECORDS, LABELS, PROBA, strict=True):
        assert list(line) == list(TOP_LEVEL_KEYS)  # exactly these keys, in this order
        assert line["request_id"] == "req-1"
        assert line["model_version"] == "v7"
        stamp = datetime.fromisoformat(line["timestamp"])
        assert stamp.utcoffset() == timedelta(0)
        assert abs(stamp - before) < timedelta(minutes=1)
        assert line["features"] == {f: record.get(f) for f in FEATURES}
        assert line["prediction"] == label
        assert line["probabilities"] == dict(zip(CLASSES, proba.tolist(), strict=True))


def test_per_record_request_ids(tmp_path: Path) -> None:
    log = make(tmp_path / "p.jsonl", categories=CATEGORIES)
    log.submit(["a", "b", "c"], "v", RECORDS, LABELS, PROBA)
    log.close()
    assert [x["request_id"] for x in read(tmp_path / "p.jsonl")] == ["a", "b", "c"]


@pytest.mark.parametrize("exclude", [(), ("sex", "timestamp"), ("features", "request_id")])
def test_columnar_and_generic_serialisers_write_the_same_bytes(exclude) -> None:
    log = make(Path("unused"), categories=CATEGORIES, exclude=exclude)
    proba = np.vstack([PROBA] * 10)
    for ids in ("r%1", [f"id-{i}" for i in range(30)]):
        batch = serving_log._Batch(ids, "t", "v%s", RECORDS * 10, LABELS * 10, proba)
        assert log._lines_columnar(batch) == log._lines_generic(batch)
    log.close()


def test_unexpected_values_fall_back_to_the_generic_serialiser(tmp_path: Path) -> None:
    log = make(tmp_path / "p.jsonl", categories=CATEGORIES)
    odd = [
        {"island": "Atlantis", "culmen_length_mm": 1.0},  # not a known category
        {"island": "Dream", "culmen_length_mm": "3,5"},  # a comma inside a "number"
    ]
    for record in odd:
        batch = serving_log._Batch("r", "t", "v", [record], ["Gentoo"], PROBA[:1])
        assert log._lines(batch) == log._lines_generic(batch)
    log.close()


def test_excluded_features_and_keys_are_left_out(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="mlci.serving.prediction_log"):
        log = make(tmp_path / "p.jsonl", exclude=["sex", "probabilities", "nonsense", ""])
    assert "nonsense" in caplog.text  # a misspelt exclusion is reported, not ignored
    log.submit("r", "v", RECORDS, LABELS, PROBA)
    log.close()
    for line in read(tmp_path / "p.jsonl"):
        assert "probabilities" not in line
        assert list(line["features"]) == ["island", "culmen_length_mm"]


def test_from_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLCI_PREDICTION_LOG", "")
    assert serving_log.from_env(FEATURES, CLASSES) is None  # empty: logging off
    monkeypatch.setenv("MLCI_PREDICTION_LOG", str(tmp_path / "x.jsonl"))
    monkeypatch.setenv("MLCI_PREDICTION_LOG_EXCLUDE", " island , timestamp")
    log = serving_log.from_env(FEATURES, CLASSES)
    assert log is not None
    log.submit("r", "v", RECORDS[:1], LABELS[:1], PROBA[:1])
    log.close()
    (line,) = read(tmp_path / "x.jsonl")
    assert "timestamp" not in line and "island" not in line["features"]
    monkeypatch.delenv("MLCI_PREDICTION_LOG")
    monkeypatch.chdir(tmp_path)
    log = serving_log.from_env(FEATURES, CLASSES)
    assert log is not None and log.path == Path("logs/predictions.jsonl")  # the default
    log.close()


def test_an_unwritable_path_is_counted_and_reported_never_raised(tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log's folder should be")
    errors: list[int] = []
    log = make(blocker / "p.jsonl", on_error=errors.append)
    with caplog.at_level(logging.ERROR, logger="mlci.serving.prediction_log"):
        assert log.submit("r", "v", RECORDS, LABELS, PROBA)  # the request side never fails
        assert log.flush()
        log.submit("r", "v", RECORDS, LABELS, PROBA)
        assert log.flush()
    log.close()
    assert sum(errors) == log.errors == 6
    assert log.written == 0
    assert "cannot write to" in caplog.text and str(blocker) in caplog.text
    assert caplog.text.count("cannot write to") == 1  # one report per failure streak


def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    dropped: list[int] = []
    # The writer waits an hour between batches, so nothing leaves the queue during the test.
    log = make(
        tmp_path / "p.jsonl",
        max_pending=4,
        flush_seconds=3600,
        flush_rows=10**6,
        on_dropped=dropped.append,
    )
    assert log.submit("a", "v", RECORDS, LABELS, PROBA)  # 3 pending
    assert not log.submit("b", "v", RECORDS, LABELS, PROBA)  # 3 more would exceed 4
    assert log.submit("c", "v", RECORDS[:1], LABELS[:1], PROBA[:1])  # exactly 4
    assert dropped == [3] and log.dropped == 3
    log.close()  # closing writes what was queued
    assert [x["request_id"] for x in read(tmp_path / "p.jsonl")] == ["a", "a", "a", "c"]


def test_submit_is_constant_time_and_batches_writes(tmp_path: Path, monkeypatch) -> None:
    writes: list[int] = []
    log = make(tmp_path / "p.jsonl", flush_seconds=0.2)
    real_write = log._write
    monkeypatch.setattr(log, "_write", lambda data: (writes.append(len(data)), real_write(data)))
    for i in range(200):
        log.submit(f"r{i}", "v", RECORDS[:1], LABELS[:1], PROBA[:1])
    log.close()
    assert len(read(tmp_path / "p.jsonl")) == 200
    assert len(writes) < 20  # a busy service pays for a few writes, not one per request
