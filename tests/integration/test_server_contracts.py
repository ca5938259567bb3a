"""Real ``bentoml serve`` processes (127.0.0.1, free ports) of projects that are not the example:
a regression, a numeric-only classification and one with digit codes, an open high-cardinality
category, missing values and an ID column (tests/projects.py fixtures after a real
``dvc repro``). Each serves its own contract: the dataset's own rows answer 200 with the
pipeline's predictions, invalid values answer 4xx naming the field, the prediction log and
``mlci smoke-test`` follow the task. And a model the compiler cannot read is served by the
scikit-learn pipeline, which ``/metrics`` and the service log say.

The servers run in the fixture's directory with its own ``project`` package first on the import
path (``tests.helpers.project_env``), as an adopted project runs them; each has a temporary
``BENTOML_HOME``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlci import artifacts
from tests.helpers import project_env, run
from tests.integration.test_server import http, metric_samples, running
from tests.projects import Project

pytestmark = pytest.mark.slow

SERVICE = "mlci.serving.service:Classifier"
SERVED = ("regression", "binary_numeric", "mixed_codes")
FAST_PATH = "mlci_fast_path_enabled"


def fast_path_gauge(url: str) -> float:
    values = [v for (name, _), v in metric_samples(url).items() if name == FAST_PATH]
    assert len(values) == 1, values
    return values[0]


def wait_for_lines(path: Path, n: int, timeout: float = 10) -> list[dict[str, Any]]:
    """The prediction log's lines once it holds ``n`` (its writer flushes every 0.25 s)."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= n:
            break
        time.sleep(0.1)
    return [json.loads(x) for x in lines]


def offline(project: Project, rows: list[dict[str, Any]]) -> np.ndarray:
    """What the trained pipeline predicts for ``rows`` (as the evaluate stage scores it)."""
    pipeline = artifacts.load_model(project.root / "models/model.skops")
    frame = pd.DataFrame(rows, columns=project.features)
    for name in frame.columns:
        if not pd.api.types.is_numeric_dtype(project.data[name]):
            frame[name] = frame[name].astype("str")
    if project.task == "regression":
        return np.asarray(pipeline.predict(frame), dtype=float)
    return np.asarray(pipeline.predict_proba(frame), dtype=float)


def dataset_rows(project: Project, n: int) -> list[dict[str, Any]]:
    """The table's first ``n`` rows as a request sends them: features (missing → null) and, when
    the contract has one, the row's key."""
    rows = project.rows(n)
    if project.id_column:
        for row, key in zip(rows, project.data[project.id_column].head(n), strict=True):
            row[project.id_column] = key
    return rows


@pytest.fixture(scope="module", params=SERVED)
def served(
    request: pytest.FixtureRequest,
    trained_fixture: Callable[[str], Project],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    project = trained_fixture(request.param)
    tmp = tmp_path_factory.mktemp(f"serve-{project.kind}")
    home = tmp / "bentoml-home"
    run(["mlci", "register-model"], project.root, BENTOML_HOME=str(home))
    plog = tmp / "predictions.jsonl"
    with running(
        SERVICE,
        project.root,
        tmp / "server.log",
        BENTOML_HOME=str(home),
        MLCI_PREDICTION_LOG=str(plog),
        **project_env(project.root),
    ) as url:
        yield {
            "project": project,
            "url": url,
            "log": plog,
            "output": tmp / "server.log",
            "home": home,
        }


def test_the_stored_model_is_labelled_with_its_task(served: dict[str, Any]) -> None:
    import yaml

    project = served["project"]
    (info,) = (served["home"] / "models" / "mlci-classifier").glob("*/model.yaml")
    model = yaml.safe_load(info.read_text())
    labels, metadata = model["labels"], model["metadata"]
    assert labels["task"] == metadata["task"] == project.task
    assert metadata["target"] == project.target and metadata["features"] == project.features
    metrics = json.loads((project.root / "reports/metrics.json").read_text())["model"]
    if project.task == "regression":
        assert "classes" not in metadata
        assert {"metric_rmse", "metric_mae", "metric_r2"} <= set(labels)
    else:
        assert sorted(metadata["classes"]) == sorted(project.data[project.target].unique())
        assert {"metric_accuracy", "metric_f1_macro"} <= set(labels)
    assert all(
        float(labels[f"metric_{k}"]) == pytest.approx(v, rel=1e-5)
        for k, v in metrics.items()
        if isinstance(v, float)
    )


def test_the_datasets_own_rows_get_the_pipelines_predictions(served: dict[str, Any]) -> None:
    project, url = served["project"], served["url"]
    rows = dataset_rows(project, 40)
    status, body = http("POST", f"{url}/predict", {"records": rows})
    assert status == 200, body
    answer = json.loads(body)
    preds = answer["predictions"]
    expected = offline(project, rows)
    if project.task == "regression":
        assert [set(p) for p in preds] == [{"prediction", "model_version"}] * len(rows)
        values = [p["prediction"] for p in preds]
        assert all(isinstance(v, float) and math.isfinite(v) for v in values)
        np.testing.assert_allclose(values, expected, rtol=1e-12, atol=0)
    else:
        classes = sorted(project.data[project.target].dropna().unique())
        assert [set(p) for p in preds] == [{"label", "probabilities", "model_version"}] * len(rows)
        served_proba = np.array([[p["probabilities"][c] for c in classes] for p in preds])
        np.testing.assert_allclose(served_proba, expected, rtol=0, atol=1e-12)
        assert [p["label"] for p in preds] == [classes[i] for i in expected.argmax(axis=1)]

    # The log records what was answered; for regression the value, as a number.
    lines = wait_for_lines(served["log"], len(rows))
    assert len(lines) == len(rows)
    for line, pred, row in zip(lines, preds, rows, strict=True):
        assert line["request_id"] == answer["request_id"]
        assert line["features"] == {f: row.get(f) for f in project.features}
        if project.task == "regression":
            assert list(line) == [
                "request_id",
                "timestamp",
                "model_version",
                "features",
                "prediction",
            ]
            assert line["prediction"] == pred["prediction"]
        else:
            assert line["prediction"] == pred["label"]
            assert line["probabilities"] == pred["probabilities"]


def test_the_batch_endpoint_answers_per_task(served: dict[str, Any]) -> None:
    project, url = served["project"], served["url"]
    status, body = http("POST", f"{url}/predict_batch", {"records": dataset_rows(project, 3)})
    assert status == 200, body
    preds = json.loads(body)
    assert len(preds) == 3 and len({p["request_id"] for p in preds}) == 3
    key = "prediction" if project.task == "regression" else "label"
    assert all(key in p for p in preds)


def invalid_cases(project: Project) -> list[tuple[str, Any, str]]:
    """(field, value, why): a wrong type, an unknown category of a closed set, a missing
    required field (value ``...``), and for an open set a value that is not text."""
    cases: list[tuple[str, Any, str]] = []
    data = project.data
    for name in project.features:
        values = data[name]
        if pd.api.types.is_numeric_dtype(values):
            cases.append((name, "12.5", "a numeric string is not a number"))
        elif values.nunique() <= 20:
            cases.append((name, "not-a-category", "unknown category of a closed set"))
        else:
            cases.append((name, 12345, "a number is not a code"))
        if not values.isna().any():
            cases.append((name, ..., "a required field left out"))
    return cases


def test_invalid_values_are_a_4xx_naming_the_field(served: dict[str, Any]) -> None:
    project, url = served["project"], served["url"]
    good = project.rows(1)[0]
    cases = invalid_cases(project)
    assert {why for *_, why in cases} >= {"a required field left out"}
    for field, value, why in cases:
        bad = {k: v for k, v in good.items() if k != field}
        if value is not ...:
            bad[field] = value
        status, body = http("POST", f"{url}/predict", {"records": [good, bad]})
        assert status == 400, (field, why, status, body)
        answer = json.loads(body)
        assert ["records", 1, field] in [d["loc"] for d in answer["detail"]], (why, answer)
        assert field in answer["error"], answer


def test_the_fast_path_serves_and_says_so(served: dict[str, Any]) -> None:
    assert fast_path_gauge(served["url"]) == 1
    output = served["output"].read_text()
    assert "fast path off" not in output
    assert "compiled path" in output


def test_the_release_smoke_test_follows_the_task(served: dict[str, Any]) -> None:
    project = served["project"]
    result = run(["mlci", "smoke-test", "--url", served["url"], "--wait", "30"], project.root)
    lines = result.stdout.splitlines()
    assert lines[0].endswith("/readyz answered 200")
    if project.task == "regression":
        assert "valid record answered 200 with a numeric prediction" in lines[1]
    else:
        assert "valid record answered 200 with a known label" in lines[1]
    assert "answered 400 naming" in lines[2]


# ------------------------------------------------------------------------- the fallback path

UNREADABLE = """
import sys
from pathlib import Path

import bentoml
import pandas as pd
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlci import artifacts, contract
from mlci.serving import model_store

# The trained pipeline with a step arrangement the compiler does not know (a pipeline inside the
# group's pipeline; only types the model store trusts), refitted on the training set.
pipeline = artifacts.load_model(Path("models/model.skops"))
pre = pipeline.steps[0][1]
group, trans, columns = pre.transformers[0]
pre.transformers[0] = (group, make_pipeline(trans, StandardScaler()), columns)
X, y = contract.features_and_target(pd.read_parquet("data/processed/train.parquet"))
pipeline.fit(X, y)
with bentoml.models.create(sys.argv[1]) as ref:
    artifacts.save_model(pipeline, Path(ref.path) / model_store.MODEL_FILE)
"""


def test_a_model_the_compiler_cannot_read_is_served_by_the_pipeline(
    trained_fixture: Callable[[str], Project], tmp_path: Path
) -> None:
    project = trained_fixture("regression")
    home = tmp_path / "bentoml-home"
    tag = "mlci-classifier:unreadable"
    rows = dataset_rows(project, 20)
    # One process of the project stores the model, then prints the pipeline's own answers for
    # ``rows`` (the stored model loaded without the fast path, as the evaluate stage scores it).
    pipeline_values = run(
        ["python", "-c", UNREADABLE + PREDICT, tag, json.dumps(rows)],
        project.root,
        BENTOML_HOME=str(home),
    ).stdout
    with running(
        SERVICE,
        project.root,
        tmp_path / "server.log",
        BENTOML_HOME=str(home),
        MLCI_MODEL_TAG=tag,
        MLCI_PREDICTION_LOG="",
        **project_env(project.root),
    ) as url:
        status, body = http("POST", f"{url}/predict", {"records": rows})
        assert status == 200, body
        values = [p["prediction"] for p in json.loads(body)["predictions"]]
        assert fast_path_gauge(url) == 0
    output = (tmp_path / "server.log").read_text()
    off = [line for line in output.splitlines() if "fast path off" in line]
    why = "numeric steps ['Pipeline', 'StandardScaler']"  # the compiler's reason, logged
    assert len(off) == 1 and why in off[0], output[-3000:]
    # The pipeline's own answers: the same stored model, the same rows.
    np.testing.assert_allclose(values, json.loads(pipeline_values), rtol=1e-12, atol=0)


PREDICT = """
import json, sys
from pathlib import Path

import bentoml

from mlci.serving import model_store
from mlci.serving.predictor import Predictor

stored = bentoml.models.get(sys.argv[1])
reference = Predictor.load(Path(stored.path) / model_store.MODEL_FILE, "v", fast=False)
print(json.dumps(reference.reference_values(json.loads(sys.argv[2])).tolist()))
"""
