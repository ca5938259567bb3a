"""Real ``bentoml serve`` processes on 127.0.0.1 (free ports), started and stopped here; the real
``mlci register-model`` / ``mlci package`` CLI; schemathesis against the running service.

Everything runs on a copy made by the ``trained_repo`` fixture (a real ``dvc repro``) with a
temporary ``BENTOML_HOME``; nothing touches the user's BentoML store.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from mlci import contract
from mlci.serving import model_store as serving_registry
from tests.conftest import REPO, run, tool_env

pytestmark = pytest.mark.slow

SPEC = contract.spec()
# ``bentoml.metrics`` is deprecated (DESIGN.md); the service counts with prometheus_client. The
# served processes turn that deprecation warning (its message starts with this) into an error:
# any use of ``bentoml.metrics`` while loading the service would stop ``bentoml serve``.
NO_BENTOML_METRICS = "error:bentoml.metrics module is deprecated:DeprecationWarning"


def good_record() -> dict[str, Any]:
    return {
        f.name: f.categories[0] if f.kind == "categorical" else (f.minimum + f.maximum) / 2
        for f in SPEC.features
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: Any = None, timeout: float = 30) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def serve_cmd(target: str, port: int) -> list[str]:
    return ["bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)]


def start(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() ends its workers too
        )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the group started above, by its id
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextmanager
def running(target: str, cwd: Path, log: Path, timeout: float = 180, **env: str) -> Iterator[str]:
    """``bentoml serve target`` on a free port; yields its base URL once /readyz answers."""
    port = free_port()
    env = {"BENTOML_DO_NOT_TRACK": "True", "PYTHONWARNINGS": NO_BENTOML_METRICS, **env}
    proc = start(serve_cmd(target, port), cwd, tool_env(**env), log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            with suppress(OSError):
                if http("GET", f"{url}/readyz", timeout=2)[0] == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready after {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        stop(proc)


def refuses_to_start(cwd: Path, log: Path, **env: str) -> tuple[int, str]:
    """Run ``bentoml serve`` expecting it to exit by itself; return (exit code, output)."""
    proc = start(
        serve_cmd("mlci.serving.service:Classifier", free_port()),
        cwd,
        tool_env(BENTOML_DO_NOT_TRACK="True", **env),
        log,
    )
    try:
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"bentoml serve kept running:\n{log.read_text()[-3000:]}")
    return code, log.read_text()


def metric_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` as {(sample name, sorted labels): value}, parsed by prometheus_client."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = http("GET", f"{url}/metrics")
    assert status == 200, text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def cli_json(result: subprocess.CompletedProcess, command: str) -> dict[str, Any]:
    line = next(x for x in result.stdout.splitlines() if x.startswith(f"{command}: "))
    return json.loads(line.split(": ", 1)[1])


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def packaged(trained_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``mlci package`` (register the model, build the bento) in a copy of the trained
    repository (it writes build/), into a temporary BentoML store the servers below share."""
    repo = tmp_path_factory.mktemp("package") / "repo"
    shutil.copytree(trained_repo, repo, symlinks=True)
    home = repo.parent / "bentoml-home"
    result = run(["mlci", "package"], repo, BENTOML_HOME=str(home))
    return {"repo": repo, "home": home, **cli_json(result, "package")}


@pytest.fixture(scope="module")
def server(packaged: dict, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("server")
    plog = tmp / "logs" / "predictions.jsonl"
    with running(
        "mlci.serving.service:Classifier",
        packaged["repo"],
        tmp / "server.log",
        BENTOML_HOME=str(packaged["home"]),
        MLCI_PREDICTION_LOG=str(plog),
    ) as url:
        yield {"url": url, "log": plog, "tmp": tmp}


# ---------------------------------------------------------------------------------- server


def test_readyz_predict_and_an_invalid_request(server: dict) -> None:
    url = server["url"]
    assert http("GET", f"{url}/readyz")[0] == 200
    assert http("GET", f"{url}/livez")[0] == 200

    status, body = http("POST", f"{url}/predict", {"records": [good_record()] * 2})
    assert status == 200, body
    answer = json.loads(body)
    assert [p["label"] in SPEC.classes for p in answer["predictions"]] == [True, True]

    field = SPEC.numeric[0]
    status, body = http(
        "POST", f"{url}/predict", {"records": [{**good_record(), field: "not-a-number"}]}
    )
    assert status == 400
    assert ["records", 0, field] in [d["loc"] for d in json.loads(body)["detail"]]

    deadline = time.monotonic() + 10  # the log writer flushes every quarter second
    while time.monotonic() < deadline and not server["log"].exists():
        time.sleep(0.1)
    while time.monotonic() < deadline and len(server["log"].read_text().splitlines()) < 2:
        time.sleep(0.1)
    lines = [json.loads(x) for x in server["log"].read_text().splitlines()]
    assert [x["request_id"] for x in lines] == [answer["request_id"]] * 2

    metrics = http("GET", f"{url}/metrics")[1]
    assert "mlci_predictions_total{" in metrics
    assert "mlci_prediction_log_written_total" in metrics
    assert "mlci_fast_path_enabled{" in metrics  # the example's model is compiled: 1
    assert any(
        x.startswith("mlci_fast_path_enabled{") and x.endswith(" 1.0") for x in metrics.splitlines()
    )


def test_service_counters_on_metrics_across_worker_processes(server: dict, packaged: dict) -> None:
    """The service's prometheus_client counters reach BentoML's /metrics in a real
    ``bentoml serve``: its worker writes them to ``PROMETHEUS_MULTIPROC_DIR`` and /metrics
    collects that directory. Same names and labels as before (``bentoml.metrics`` era)."""
    url, version = server["url"], packaged["model_tag"].split(":")[1]
    written = ("mlci_prediction_log_written_total", ())
    before = metric_samples(url)
    status, body = http("POST", f"{url}/predict", {"records": [good_record()] * 5})
    assert status == 200, body
    served = Counter(p["label"] for p in json.loads(body)["predictions"])

    deadline = time.monotonic() + 10  # the log writer thread flushes every quarter second
    after = metric_samples(url)
    while after.get(written, 0) - before.get(written, 0) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
        after = metric_samples(url)

    for label, n in served.items():
        key = ("mlci_predictions_total", (("label", label), ("model_version", version)))
        assert after.get(key, 0) - before.get(key, 0) == n, key
    assert after[written] - before.get(written, 0) == 5
    assert after[("mlci_prediction_log_dropped_total", ())] == 0
    assert after[("mlci_prediction_log_errors_total", ())] == 0
    # BentoML's own request metrics are still there, from the same collector.
    assert any(name.startswith("bentoml_service_request") for name, _ in after)


def test_the_served_process_uses_no_deprecated_bentoml_metrics(server: dict) -> None:
    """The server above runs with ``PYTHONWARNINGS`` turning bentoml.metrics' deprecation warning
    into an error, so it started (and predicted) without touching ``bentoml.metrics``. Here: that
    the filter really catches that warning (it stops a process that uses the module)."""
    assert os.environ.get("PYTHONWARNINGS") != NO_BENTOML_METRICS  # set for the server only
    uses_it = subprocess.run(
        [sys.executable, "-c", "import bentoml; bentoml.metrics.Counter"],
        env=tool_env(PYTHONWARNINGS=NO_BENTOML_METRICS, BENTOML_DO_NOT_TRACK="True"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert uses_it.returncode != 0
    assert "DeprecationWarning: bentoml.metrics module is deprecated" in uses_it.stderr
    assert "bentoml.metrics" not in (server["tmp"] / "server.log").read_text()


def test_schemathesis_finds_no_failure(server: dict) -> None:
    """Every check against the served /docs.json. BentoML's own spec defects (no
    ``requestBody.required``, a 400 schema its answers do not follow) are corrected by the
    service (``mlci.serving.openapi.fix_openapi``), so nothing is excluded here."""
    result = subprocess.run(
        [
            "schemathesis",
            "run",
            f"{server['url']}/docs.json",
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--seed",
            "20261122",
            "--request-timeout",
            "20",
            "--generation-database",
            "none",
        ],
        cwd=server["tmp"],
        env=tool_env(SCHEMATHESIS_TELEMETRY="false"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout


def test_refuses_to_start_without_the_model(trained_repo: Path, tmp_path: Path) -> None:
    code, out = refuses_to_start(
        trained_repo, tmp_path / "serve.log", BENTOML_HOME=str(tmp_path / "empty-store")
    )
    assert code != 0
    assert "not in the BentoML model store" in out and "make package" in out
    assert "Traceback" not in out


def test_refuses_to_start_with_a_corrupt_model(packaged: dict, tmp_path: Path) -> None:
    home = tmp_path / "store"
    shutil.copytree(packaged["home"], home)
    name, version = packaged["model_tag"].split(":")
    (home / "models" / name / version / serving_registry.MODEL_FILE).write_bytes(b"\x00garbage")
    code, out = refuses_to_start(packaged["repo"], tmp_path / "serve.log", BENTOML_HOME=str(home))
    assert code != 0
    assert "cannot be loaded" in out
    assert f"bentoml models delete {packaged['model_tag']}" in out


# ------------------------------------------------------------------------------- packaging


def test_package_builds_a_bento_with_labels_and_a_usable_dockerfile(packaged: dict) -> None:
    import yaml

    bento = Path(packaged["bento_path"])
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    tag = serving_registry.default_tag(packaged["repo"] / "dvc.lock")
    assert packaged["model_tag"] == tag and packaged["model_created"] is True
    labels = info["labels"]
    meta = json.loads((packaged["repo"] / "models/model_meta.json").read_text())
    commit = run(["git", "rev-parse", "HEAD"], packaged["repo"]).stdout.strip()
    assert labels["git_commit"] == commit
    assert labels["data_sha256"] == meta["train_data_sha256"]
    assert labels["dvc_lock_sha256"] == serving_registry.lock_sha256(packaged["repo"] / "dvc.lock")
    assert labels["model_tag"] == tag
    assert float(labels["metric_accuracy"]) >= 0 and "metric_f1_macro" in labels
    assert labels["project"] == "mlci"  # static labels from bentofile.yaml too
    # The bento serves exactly this model: the argument, and the model reference.
    assert info["args"]["model_tag"] == tag
    assert [m["tag"] for m in info["services"][0]["models"]] == [tag]
    # Source laid out so `mlci.serving.service` imports without installing the project.
    assert (bento / "src" / "mlci" / "serving" / "service.py").is_file()
    assert (bento / "src" / "dvc.lock").is_file()
    # Python packages: uv.lock's pins, no dev tools.
    reqs = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "bentoml==1.4.39" in reqs and "scikit-learn==" in reqs and "skops==" in reqs
    assert "pytest" not in reqs and "ruff" not in reqs

    # What a container smoke test relies on: port 3000 and the default command serving the bento.
    dockerfile = Path(packaged["dockerfile"]).read_text()
    assert "EXPOSE 3000" in dockerfile
    assert 'ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]' in dockerfile
    assert "FROM python:3.11" in dockerfile
    assert "ENV MLCI_PREDICTION_LOG=" in dockerfile
    assert "requirements.txt" in dockerfile
    entrypoint = (bento / "env" / "docker" / "entrypoint.sh").read_text()
    assert 'set -- bentoml serve "$@" "$BENTO_PATH"' in entrypoint


def test_registering_again_is_idempotent(packaged: dict) -> None:
    env = {"BENTOML_HOME": str(packaged["home"])}
    again = cli_json(run(["mlci", "register-model"], packaged["repo"], **env), "register-model")
    assert again == {"tag": packaged["model_tag"], "created": False, "path": again["path"]}
    name, version = packaged["model_tag"].split(":")
    stored = [p.name for p in (packaged["home"] / "models" / name).iterdir() if p.is_dir()]
    assert stored == [version]  # one model, no duplicate


def test_the_built_bento_serves(packaged: dict, tmp_path: Path) -> None:
    """``bentoml serve <bento>`` outside the repository: what the container's entrypoint runs
    (the image adds the model to the bento; here BentoML finds it in the store)."""
    with running(
        packaged["bento_tag"],
        tmp_path,
        tmp_path / "bento.log",
        BENTOML_HOME=str(packaged["home"]),
        MLCI_PREDICTION_LOG=str(tmp_path / "p.jsonl"),
    ) as url:
        status, body = http("POST", f"{url}/predict", {"records": [good_record()]})
        assert status == 200, body
        assert json.loads(body)["model_version"] == packaged["model_tag"].split(":")[1]


def test_release_smoke_test_passes_against_the_real_server(server: dict) -> None:
    """`mlci smoke-test` is what the release runs against the image before pushing it."""
    result = run(["mlci", "smoke-test", "--url", server["url"], "--wait", "30"], REPO)
    lines = result.stdout.splitlines()
    assert lines[0].endswith("/readyz answered 200")
    assert "valid record answered 200 with a known label" in lines[1]
    assert f"answered 400 naming '{SPEC.numeric[0]}'" in lines[2]


def test_release_smoke_test_fails_clearly_when_nothing_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run(["mlci", "smoke-test", "--url", url, "--wait", "1"], REPO, check=False)
    assert result.returncode == 2
    assert f"{url}/readyz not ready after 1 s" in result.stderr
