"""The prediction log: exact line shape, exclusion, and never failing or blocking a request."""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from mlci.serving import prediction_log as serving_log
from mlci.serving.log_lines import Batch
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
        batch = Batch(ids, "t", "v%s", RECORDS * 10, LABELS * 10, proba)
        assert log.encoder.columnar(batch) == log.encoder.generic(batch)
    log.close()


def test_open_categories_are_encoded_by_the_columnar_serialiser() -> None:
    """An open set (no `isin`: a postcode) is left out of the category table the service
    passes; its strings are encoded like numbers, column by column, with the same bytes."""
    from mlci.serving.log_lines import LineEncoder

    encoder = LineEncoder(["postcode", "basket"], ["no", "yes"], categories={})
    records = [
        {"postcode": "00139", "basket": 31.5},
        {"postcode": None, "basket": None},
        {"postcode": 'say "hi"', "basket": 2.0},
    ]
    batch = Batch("r", "t", "v", records, ["no", "yes", "no"], np.full((3, 2), 0.5))
    assert encoder.columnar(batch) == encoder.generic(batch)
    comma = Batch("r", "t", "v", [{"postcode": "a,b", "basket": 1.0}], ["no"], np.full((1, 2), 0.5))
    assert encoder.lines(comma) == encoder.generic(comma)  # a comma: the generic path


def test_unexpected_values_fall_back_to_the_generic_serialiser(tmp_path: Path) -> None:
    log = make(tmp_path / "p.jsonl", categories=CATEGORIES)
    odd = [
        {"island": "Atlantis", "culmen_length_mm": 1.0},  # not a known category
        {"island": "Dream", "culmen_length_mm": "3,5"},  # a comma inside a "number"
    ]
    for record in odd:
        batch = Batch("r", "t", "v", [record], ["Gentoo"], PROBA[:1])
        assert log.encoder.lines(batch) == log.encoder.generic(batch)
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
    real_write = log._file.write
    monkeypatch.setattr(
        log._file, "write", lambda data: (writes.append(len(data)), real_write(data))
    )
    for i in range(200):
        log.submit(f"r{i}", "v", RECORDS[:1], LABELS[:1], PROBA[:1])
    log.close()
    assert len(read(tmp_path / "p.jsonl")) == 200
    assert len(writes) < 20  # a busy service pays for a few writes, not one per request


# ---- rotation: a moved file is followed, size is capped --------------------------------------


def submit_one(log: PredictionLog, request_id: str) -> None:
    """One prediction, written before returning (one batch per call)."""
    assert log.submit(request_id, "v", RECORDS[:1], LABELS[:1], PROBA[:1])
    assert log.flush()


def ids_in(path: Path) -> list[str]:
    return [x["request_id"] for x in read(path)] if path.exists() else []


@pytest.mark.parametrize("how", ["moved", "removed"])
def test_a_file_moved_or_removed_by_logrotate_is_followed(tmp_path: Path, how: str) -> None:
    path = tmp_path / "logs" / "p.jsonl"
    log = make(path)
    submit_one(log, "before")
    moved = tmp_path / "archive.jsonl"
    if how == "moved":
        path.rename(moved)
    else:
        path.unlink()
    submit_one(log, "after-1")
    submit_one(log, "after-2")
    log.close()
    # New records land in a new file at the path, not in the moved (or deleted) one.
    assert ids_in(path) == ["after-1", "after-2"]
    assert ids_in(moved) == (["before"] if how == "moved" else [])
    assert log._file.reopened == 1


def test_size_rotation_caps_disk_use_and_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    log = make(path, max_bytes=2_000, backups=2)
    for i in range(60):  # about 250 bytes a line: 15 kB in all, 7 times the cap
        submit_one(log, f"r{i:02}")
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["predictions.1.jsonl", "predictions.2.jsonl", "predictions.jsonl"]
    assert all((tmp_path / f).stat().st_size <= 2_000 for f in files)  # total <= 3 x the cap
    # Oldest first: .2, .1, then the current file hold the newest records, none lost between.
    kept = [i for f in files[1::-1] + files[2:] for i in ids_in(tmp_path / f)]
    assert kept == [f"r{i:02}" for i in range(60 - len(kept), 60)]
    assert log._file.rotations >= 5 and log.written == 60


def test_rotated_files_are_read_by_drift_monitoring(tmp_path: Path) -> None:
    from mlci.monitoring.batches import load_current

    log = make(tmp_path / "predictions.jsonl", max_bytes=1_000, backups=9)
    for i in range(20):
        submit_one(log, f"r{i}")
    log.close()
    assert len(list(tmp_path.glob("predictions.*.jsonl"))) >= 3
    batch = load_current(tmp_path)
    assert batch.rows == 20 and batch.malformed == 0


def test_workers_sharing_one_file_rotate_it_once(tmp_path: Path) -> None:
    """Two logs on one path (two worker processes): each rotates only the file still at the
    path, so no record is lost and no file exceeds the cap."""
    path = tmp_path / "p.jsonl"
    a, b = make(path, max_bytes=1_500, backups=50), make(path, max_bytes=1_500, backups=50)
    for i in range(40):
        submit_one(a if i % 2 else b, f"r{i:02}")
    a.close()
    b.close()
    files = list(tmp_path.glob("*.jsonl"))
    assert all(f.stat().st_size <= 1_500 for f in files)
    assert sorted(i for f in files for i in ids_in(f)) == [f"r{i:02}" for i in range(40)]


def test_a_failed_rotation_keeps_writing_and_says_so(tmp_path: Path, caplog) -> None:
    path = tmp_path / "p.jsonl"
    (tmp_path / "p.1.jsonl").mkdir()  # a folder where the backup goes: the rename fails
    (tmp_path / "p.1.jsonl" / "x").write_text("")
    log = make(path, max_bytes=500, backups=1)
    with caplog.at_level(logging.ERROR, logger="mlci.serving.prediction_log"):
        for i in range(10):
            submit_one(log, f"r{i}")
    log.close()
    assert ids_in(path) == [f"r{i}" for i in range(10)]  # nothing lost to keep the cap
    assert caplog.text.count("cannot rotate") == 1  # then retried once a minute, not per batch
    assert log.errors == 0 and log.written == 10


# ---- drops: counted, reported once per interval, never blocking -----------------------------


def test_a_blocked_sink_drops_counts_and_reports_every_prediction(tmp_path: Path, caplog) -> None:
    """A FIFO nobody reads: the writer blocks opening it. Requests never block; every prediction
    that was not written is counted: the ones the full queue refused and, when the service
    stops, the ones still queued behind the stuck writer."""
    fifo = tmp_path / "sink.jsonl"
    os.mkfifo(fifo)
    dropped: list[int] = []
    written: list[int] = []
    log = make(fifo, max_pending=5, on_dropped=dropped.append, on_written=written.append)
    with caplog.at_level(logging.WARNING, logger="mlci.serving.prediction_log"):
        started = time.monotonic()
        assert log.submit("a", "v", RECORDS, LABELS, PROBA)  # queued; the writer blocks on it
        time.sleep(0.5)  # the writer has taken the batch and is stuck opening the FIFO
        for _ in range(100):
            assert not log.submit("b", "v", RECORDS, LABELS, PROBA)
        assert time.monotonic() - started < 2  # never blocked by the log
        assert sum(dropped) == log.dropped == 300
        reports = [r.getMessage() for r in caplog.records]
        assert len(reports) == 1, reports  # once per interval, not per request
        assert "dropped 3 predictions" in reports[0]
        assert "has been writing to" in reports[0] and str(fifo) in reports[0]
        log.close(timeout=0.5)
    # The 3 predictions still queued behind the stuck writer are counted as dropped too.
    assert sum(dropped) == log.dropped == 303 and not written
    assert "3 predictions it has not written are lost" in caplog.text
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # unblock the writer thread, then end it
    try:
        log._thread.join(5)
        assert not log._thread.is_alive()
    finally:
        os.close(reader)
    assert log.written == 0 and sum(dropped) == 303  # not counted twice when it got through


def test_drops_left_unreported_are_reported_when_the_interval_ends(tmp_path: Path, caplog) -> None:
    log = make(tmp_path / "p.jsonl", max_pending=0, report_seconds=0.3)
    with caplog.at_level(logging.WARNING, logger="mlci.serving.prediction_log"):
        for _ in range(6):  # the first is reported at once; the other 5 within the interval
            assert not log.submit("r", "v", RECORDS[:1], LABELS[:1], PROBA[:1])
        assert len(caplog.records) == 1
        deadline = time.monotonic() + 5
        while len(caplog.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # no request comes: the idle writer reports them
        assert len(caplog.records) == 2
    log.close()
    first, second = (r.getMessage() for r in caplog.records)
    assert "dropped 1 predictions" in first and "(1 in total" in first
    assert "dropped 5 predictions in the last" in second and "(6 in total" in second


def test_a_prediction_that_cannot_be_queued_is_counted(tmp_path: Path, monkeypatch) -> None:
    dropped: list[int] = []
    log = make(tmp_path / "p.jsonl", on_dropped=dropped.append)
    monkeypatch.setattr(serving_log, "utc_now", lambda: 1 / 0)
    assert not log.submit("r", "v", RECORDS, LABELS, PROBA)  # never raises
    log.close()
    assert dropped == [3] and log.dropped == 3


# ---- settings ---------------------------------------------------------------------------------


def test_rotation_and_queue_settings_from_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLCI_PREDICTION_LOG", str(tmp_path / "x.jsonl"))
    for name in ("MAX_BYTES", "BACKUPS", "QUEUE"):
        monkeypatch.delenv(f"MLCI_PREDICTION_LOG_{name}", raising=False)
    log = serving_log.from_env(FEATURES, CLASSES)
    assert log is not None
    assert (log._file.max_bytes, log._file.backups) == (100 * 1024 * 1024, 5)  # documented
    assert log.max_pending == 100_000
    log.close()
    monkeypatch.setenv("MLCI_PREDICTION_LOG_MAX_BYTES", "1_000_000")
    monkeypatch.setenv("MLCI_PREDICTION_LOG_BACKUPS", "2")
    monkeypatch.setenv("MLCI_PREDICTION_LOG_QUEUE", "50")
    log = serving_log.from_env(FEATURES, CLASSES)
    assert log is not None
    assert (log._file.max_bytes, log._file.backups, log.max_pending) == (1_000_000, 2, 50)
    log.close()
    monkeypatch.setenv("MLCI_PREDICTION_LOG_MAX_BYTES", "0")  # no size limit (logrotate's job)
    log = serving_log.from_env(FEATURES, CLASSES)
    assert log is not None and log._file.max_bytes == 0
    log.close()


@pytest.mark.parametrize(
    ("name", "value", "default"),
    [
        ("MAX_BYTES", "100MB", 100 * 1024 * 1024),
        ("MAX_BYTES", "-1", 100 * 1024 * 1024),
        ("BACKUPS", "0", 5),
        ("QUEUE", "lots", 100_000),
    ],
)
def test_a_bad_setting_is_reported_by_name_and_the_default_used(
    tmp_path: Path, monkeypatch, caplog, name: str, value: str, default: int
) -> None:
    """Not raised: that would crash every worker at start-up, restarted forever by BentoML."""
    monkeypatch.setenv("MLCI_PREDICTION_LOG", str(tmp_path / "p.jsonl"))
    monkeypatch.setenv(f"MLCI_PREDICTION_LOG_{name}", value)
    with caplog.at_level(logging.ERROR, logger="mlci.serving.prediction_log"):
        log = serving_log.from_env(FEATURES, CLASSES)
    assert log is not None
    used = {"MAX_BYTES": log._file.max_bytes, "BACKUPS": log._file.backups}
    assert used.get(name, log.max_pending) == default
    assert f"MLCI_PREDICTION_LOG_{name}='{value}' is not a whole number" in caplog.text
    log.close()
