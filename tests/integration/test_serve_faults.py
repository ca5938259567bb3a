"""A real ``bentoml serve`` (127.0.0.1, a free port) under the faults a long-running service meets:
its prediction log moved away by logrotate, a log big enough to fill the disk, a log sink that
blocks, a client repeating a key or sending a 1 MB name. What each test shows is listed in the
docs/reliability.md.

The model is registered from the ``trained_repo`` fixture (a real ``dvc repro``) into a temporary
``BENTOML_HOME``; the servers are started with ``tests/integration/test_server.py``'s helpers.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run
from tests.integration.test_server import good_record, http, metric_samples, running

pytestmark = pytest.mark.slow

SERVICE = "mlci.serving.service:Classifier"
MAX_BYTES = 20_000  # the served log's size cap here: a few dozen requests fill it several times
RECORDS = 25  # a request's records in the rotation test (lines of 400 bytes: 10,000 bytes)


@pytest.fixture(scope="module")
def store(trained_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BentoML store holding the trained repository's model (``mlci register-model``)."""
    home = tmp_path_factory.mktemp("faults") / "bentoml-home"
    run(["mlci", "register-model"], trained_repo, BENTOML_HOME=str(home))
    return home


@pytest.fixture(scope="module")
def server(trained_repo: Path, store: Path, tmp_path_factory: pytest.TempPathFactory):
    """One server whose prediction log rotates at ``MAX_BYTES``, keeping 2 backups."""
    tmp = tmp_path_factory.mktemp("rotating")
    plog = tmp / "logs" / "predictions.jsonl"
    with running(
        SERVICE,
        trained_repo,
        tmp / "server.log",
        BENTOML_HOME=str(store),
        MLCI_PREDICTION_LOG=str(plog),
        MLCI_PREDICTION_LOG_MAX_BYTES=str(MAX_BYTES),
        MLCI_PREDICTION_LOG_BACKUPS="2",
    ) as url:
        yield {"url": url, "log": plog, "output": tmp / "server.log", "tmp": tmp}


def predict(url: str, n: int) -> str:
    """POST ``n`` records to /predict; the request id they are logged under."""
    status, body = http("POST", f"{url}/predict", {"records": [good_record()] * n})
    assert status == 200, body
    return json.loads(body)["request_id"]


def logged_ids(*files: Path) -> list[str]:
    return [
        json.loads(line)["request_id"]
        for f in files
        if f.exists()
        for line in f.read_text().splitlines()
    ]


def wait_for(condition: Any, what: str, timeout: float = 10) -> None:
    """Poll ``condition()`` (the log writer flushes every quarter second)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout} s: {what}")
        time.sleep(0.1)


def post_raw(url: str, raw: bytes) -> tuple[int, bytes]:
    """POST ``raw`` as JSON, byte for byte (``http`` re-encodes, which merges repeated keys)."""
    req = urllib.request.Request(url, data=raw, method="POST")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


# ------------------------------------------------------------------------- the prediction log


def test_a_log_moved_away_is_followed_by_a_new_file_at_the_path(server: dict) -> None:
    """What logrotate does (``create`` mode): rename the file. Later predictions must land in a
    new file at the configured path, not in the moved one forever."""
    url, plog = server["url"], server["log"]
    before = predict(url, 2)
    wait_for(lambda: logged_ids(plog) == [before] * 2, f"{plog} holds the first request")
    moved = server["tmp"] / "archive" / "predictions-old.jsonl"
    moved.parent.mkdir()
    plog.rename(moved)

    after = [predict(url, 3), predict(url, 1)]
    wait_for(
        lambda: logged_ids(plog) == [after[0]] * 3 + [after[1]],
        f"a new {plog} holding the requests after the move (moved file: {logged_ids(moved)})",
    )
    assert logged_ids(moved) == [before] * 2  # what was written before the move stays there


def test_size_rotation_caps_the_logs_disk_use(server: dict) -> None:
    url, plog = server["url"], server["log"]
    folder = plog.parent
    files = [plog, folder / "predictions.1.jsonl", folder / "predictions.2.jsonl"]
    sent: list[str] = []
    for _ in range(12):  # 10 kB a request: two fill a file exactly, 12 are twice what 3 hold
        sent.append(predict(url, RECORDS))
        # One request per log batch, so the cap is exact here (a batch is never split).
        wait_for(lambda: sent[-1] in logged_ids(plog), f"{sent[-1]} in {plog}")
    assert sorted(folder.iterdir()) == sorted(files), "the current file and 2 backups, no more"
    sizes = {f.name: f.stat().st_size for f in files}
    assert all(size <= MAX_BYTES for size in sizes.values()), sizes
    # Oldest first, the kept files hold the newest requests, whole and in order; the oldest
    # requests went with the deleted backups.
    kept = logged_ids(files[2], files[1], files[0])
    assert kept[-RECORDS:] == [sent[-1]] * RECORDS
    requests = list(dict.fromkeys(kept))
    assert requests == sent[len(sent) - len(requests) :]
    assert len(requests) < len(sent)


def test_the_services_info_lines_are_in_the_server_output(server: dict) -> None:
    out = server["output"].read_text()
    served = [
        x for x in out.splitlines() if "[INFO]" in x and "serving model mlci-classifier:" in x
    ]
    assert served, f"no INFO line about the model in:\n{out[-3000:]}"
    assert any(
        "[INFO]" in x and f"prediction log: appending to {server['log']}" in x
        for x in out.splitlines()
    ), out[-3000:]


# ------------------------------------------------------------------------------ the API


@pytest.mark.parametrize("route", ["/predict", "/predict_batch"])
def test_a_repeated_key_is_a_400_naming_it(server: dict, route: str) -> None:
    one = json.dumps([good_record()])  # alone, pydantic would keep this one and answer 200
    status, body = post_raw(
        f"{server['url']}{route}", f'{{"records": [], "records": {one}}}'.encode()
    )
    assert status == 400, body
    answer = json.loads(body)
    assert answer["detail"][0]["loc"] == ["records"]
    assert "duplicate key 'records'" in answer["error"]


def test_a_1mb_name_gets_a_short_error(server: dict) -> None:
    name = "x" * 1_000_000
    status, body = http(
        "POST", f"{server['url']}/predict", {"records": [{**good_record(), name: 1}]}
    )
    assert status == 400
    assert len(body) < 1_000, f"{len(body)} characters: {body[:300]}"
    assert "(1000000 characters)" in json.loads(body)["error"]


# ------------------------------------------------------------------------- a blocked sink


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A named pipe nobody reads: opening it for writing blocks, like a hung network mount."""
    path = tmp_path / "sink.jsonl"
    os.mkfifo(path)
    yield path


def test_a_blocked_log_never_blocks_predictions_and_every_drop_is_counted(
    trained_repo: Path, store: Path, fifo: Path, tmp_path: Path
) -> None:
    output = tmp_path / "server.log"
    with running(
        SERVICE,
        trained_repo,
        output,
        BENTOML_HOME=str(store),
        MLCI_PREDICTION_LOG=str(fifo),
        MLCI_PREDICTION_LOG_QUEUE="50",
        MLCI_PREDICTION_LOG_CLOSE_SECONDS="1",  # the stuck writer is given up at stop after 1 s
    ) as url:
        started = time.monotonic()
        for _ in range(3):  # 40 records each: the first waits in the queue, the others are dropped
            predict(url, 40)
        assert time.monotonic() - started < 10  # answered while the log's writer is stuck
        metrics = metric_samples(url)
        assert metrics[("mlci_prediction_log_dropped_total", ())] == 80
        assert metrics[("mlci_prediction_log_written_total", ())] == 0
        assert metrics[("mlci_prediction_log_errors_total", ())] == 0
    out = output.read_text()
    drops = [x for x in out.splitlines() if "prediction log: dropped" in x]
    assert len(drops) == 2, out[-3000:]  # the first drop at once, the rest when stopping
    assert "[WARNING]" in drops[0] and "dropped 40 predictions (40 in total" in drops[0]
    assert "dropped 40 predictions in the last" in drops[1] and "(80 in total" in drops[1]
    # Stopping: the 40 still queued behind the stuck writer are counted and reported, not lost
    # in silence.
    assert "the 40 predictions it has not written are lost (120 dropped in total" in out
    assert "still busy with" in out and "after 1 s;" in out  # MLCI_PREDICTION_LOG_CLOSE_SECONDS
