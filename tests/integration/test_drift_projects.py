"""``mlci drift`` on generated fixture projects (tests/projects.py) after a real ``dvc repro``:
tables the bundled example does not have (digit codes with leading zeros, a high-cardinality
open set, missing values, an ID column; a regression target).

Every run is a real ``mlci drift`` process in the project's copy (its own adopter package comes
first on the import path: this test process has the bundled example's contract loaded). Batches
are fresh draws from the fixture's generator (another seed): new data from the population the
model was trained on, written as a user would write them.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import run
from tests.projects import Project, table

pytestmark = pytest.mark.slow


def drift(project: Project, current: Path, out: Path) -> tuple[int, str, dict]:
    result = run(
        ["mlci", "drift", "--current", str(current), "--out-dir", str(out)],
        project.root,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    report_file = out / "drift.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return result.returncode, result.stdout + result.stderr, report


def fresh(project: Project, n: int = 400, seed: int = 1) -> pd.DataFrame:
    """New rows from the fixture's population (the training table used seed 0)."""
    return table(project.kind, n, seed)[0]


def by_column(report: dict) -> dict[str, dict]:
    return {c["column"]: c for c in report["columns"]}


# --------------------------------------------------------------------------- digit codes, open set


@pytest.fixture(scope="module")
def codes(trained_fixture) -> Project:
    return trained_fixture("mixed_codes")


def test_codes_with_leading_zeros_unshifted_is_no_drift(codes: Project, tmp_path: Path):
    batch = tmp_path / "held_out.csv"
    fresh(codes).to_csv(batch, index=False)
    assert ",001," in batch.read_text()  # the codes are written with their zeros
    code, output, report = drift(codes, batch, tmp_path / "out")
    assert code == 0, output
    assert report["contract"]["valid"] is True
    cols = by_column(report)
    # Read as the contract's text: '001', never the number 1.
    assert set(cols["store"]["shares"]) <= {"001", "002", "010", "(missing)"}
    assert cols["store"]["new_categories"] == []
    postcode = cols["postcode"]
    assert postcode["status"] == "tested" and "frequent value(s) + other" in postcode["test"]
    assert len(postcode["shares"]) <= 12  # not one cell per postcode
    assert report["performance"]["status"] == "compared" and not report["performance"]["degraded"]


def test_codes_strongly_shifted_is_drift(codes: Project, tmp_path: Path):
    df = fresh(codes, seed=2)
    rng = np.random.default_rng(2)
    df.loc[rng.random(len(df)) < 0.5, "store"] = "010"  # the '010' store's share: 1/3 -> 2/3
    df["basket"] += 10.0  # +1 SD
    batch = tmp_path / "shifted.csv"
    df.drop(columns=[codes.target]).to_csv(batch, index=False)
    code, output, report = drift(codes, batch, tmp_path / "out")
    assert code == 1, output
    assert {c["column"] for c in report["columns"] if c["drifted"]} == {"store", "basket"}
    store = by_column(report)["store"]["shares"]["010"]
    assert store["current"] > store["reference"] + 0.2
    assert report["contract"]["valid"] is True


# --------------------------------------------------------------------------- regression


@pytest.fixture(scope="module")
def regression(trained_fixture) -> Project:
    return trained_fixture("regression")


def test_regression_unshifted_is_no_drift_and_scores_r2(regression: Project, tmp_path: Path):
    batch = tmp_path / "held_out.parquet"
    fresh(regression).to_parquet(batch)
    code, output, report = drift(regression, batch, tmp_path / "out")
    assert code == 0, output
    assert [c["column"] for c in report["columns"]] == regression.features
    perf = report["performance"]
    assert perf["status"] == "compared" and perf["primary"] == "r2"
    assert set(perf["metrics"]) == {"rmse", "mae", "r2"}
    assert abs(perf["delta"]["r2"]) < 0.05 and perf["degraded"] is False
    md = (tmp_path / "out" / "drift.md").read_text()
    assert "| r2 |" in md and "| rmse |" in md


def test_regression_shifted_feature_is_drift(regression: Project, tmp_path: Path):
    df = fresh(regression, seed=2).drop(columns=[regression.target])
    df["age"] += 10.0  # +1 SD
    batch = tmp_path / "shifted.csv"
    df.to_csv(batch, index=False)
    code, output, report = drift(regression, batch, tmp_path / "out")
    assert code == 1, output
    assert [c["column"] for c in report["columns"] if c["drifted"]] == ["age"]
    assert 0.7 < by_column(report)["age"]["mean_shift_sd"] < 1.3
    assert report["reasons"][0].startswith("age: kolmogorov-smirnov p=")


def test_regression_concept_drift_is_an_r2_drop(regression: Project, tmp_path: Path):
    """Same features, but the target no longer follows them: only the score can see it."""
    df = fresh(regression, seed=3)
    rng = np.random.default_rng(3)
    df[regression.target] = rng.permutation(df[regression.target].to_numpy())
    batch = tmp_path / "relabelled.csv"
    df.to_csv(batch, index=False)
    code, output, report = drift(regression, batch, tmp_path / "out")
    assert code == 1, output
    assert not any(c["drifted"] for c in report["columns"])
    assert report["performance"]["degraded_metrics"] == ["r2"]
    assert any(r.startswith("model quality dropped") and "r2 " in r for r in report["reasons"])


def regression_logs(project: Project, logs: dict[Path, tuple[pd.DataFrame, float]]) -> None:
    """Prediction logs as the service writes them for regression: a number, no probabilities;
    ``logs`` maps each file to (its rows, a shift of its predictions in SDs). The predictions come
    from the project's own model, in ONE process of the project (a process costs seconds)."""
    args: list[str] = []
    for path, (frame, shift_sd) in logs.items():
        features = path.with_suffix(".features.parquet")
        frame[project.features].to_parquet(features)
        args += [str(features), str(path), str(shift_sd)]
    script = (
        "import json, sys\n"
        "import pandas as pd\n"
        "from mlci import artifacts\n"
        "from mlci.monitoring.quality import model_input\n"
        "model = artifacts.load_model('models/model.skops')\n"
        "for features, path, shift in zip(*[iter(sys.argv[1:])] * 3):\n"
        "    X = pd.read_parquet(features)\n"
        "    pred = model.predict(model_input(X))\n"
        "    pred = pred + float(shift) * pred.std()\n"
        "    with open(path, 'w') as f:\n"
        "        rows = X.astype(object).where(X.notna(), None).to_dict('records')\n"
        "        for i, row in enumerate(rows):\n"
        "            f.write(json.dumps({'request_id': f'r{i}', 'model_version': 'v1',\n"
        "                'timestamp': '2026-11-20T10:00:00+00:00', 'features': row,\n"
        "                'prediction': float(pred[i])}) + '\\n')\n"
    )
    run([sys.executable, "-c", script, *args], project.root)


@pytest.fixture(scope="module")
def prediction_logs(regression: Project, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two regression prediction logs of fresh rows, written once for the tests that read them
    (they copy what they change): as served, and with every prediction 1 SD higher."""
    folder = tmp_path_factory.mktemp("prediction-logs")
    logs = {
        "unshifted": (folder / "unshifted.jsonl", fresh(regression, seed=4), 0.0),
        "shifted": (folder / "shifted.jsonl", fresh(regression, seed=5), 1.0),
    }
    regression_logs(regression, {path: (frame, sd) for path, frame, sd in logs.values()})
    return {name: path for name, (path, *_) in logs.items()}


def test_regression_prediction_log_is_read_and_its_values_tested(
    regression: Project, prediction_logs: dict[str, Path], tmp_path: Path
):
    log = tmp_path / "predictions.jsonl"
    shutil.copy(prediction_logs["unshifted"], log)
    with log.open("a") as f:
        f.write('{"prediction": "high", "features": {}}\n')  # a class label: not this task's
    code, output, report = drift(regression, log, tmp_path / "out")
    assert code == 0, output
    cur = report["current"]
    assert cur["kind"] == "prediction_log" and (cur["rows"], cur["malformed_lines"]) == (400, 1)
    assert list(cur["malformed_reasons"]) == [
        "'prediction' is not a finite number (a regression log)"
    ]
    predicted = by_column(report)["(predicted value)"]
    assert predicted["kind"] == "prediction" and predicted["test"] == "kolmogorov-smirnov"
    assert predicted["status"] == "tested" and not predicted["drifted"]
    assert "confidence" not in report


def test_regression_prediction_drift_alone_is_found(
    regression: Project, prediction_logs: dict[str, Path], tmp_path: Path
):
    code, output, report = drift(regression, prediction_logs["shifted"], tmp_path / "out")
    assert code == 1, output
    assert [c["column"] for c in report["columns"] if c["drifted"]] == ["(predicted value)"]


# --------------------------------------------------------------------------- labels arrive late


@pytest.mark.parametrize("fixture", ["regression", "codes"])
def test_rows_without_a_label_are_not_violations(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
):
    """Production labels arrive late or never: a batch whose target is missing on some rows is
    valid (the target is checked where present) and scored on its labelled rows only."""
    project: Project = request.getfixturevalue(fixture)
    df = fresh(project, seed=3).astype({project.target: object})
    df.loc[df.index[::3], project.target] = None  # a third of the rows not labelled yet
    batch = tmp_path / "partly_labelled.csv"
    df.to_csv(batch, index=False)
    code, output, report = drift(project, batch, tmp_path / "out")
    assert code == 0, output
    assert report["contract"]["valid"] is True, report["contract"]["failures"]
    perf = report["performance"]
    assert perf["labelled_rows"] == len(df) - len(df.index[::3])
    assert perf["status"] == "compared" and perf["degraded"] is False


def test_a_present_label_is_still_checked(regression: Project, tmp_path: Path):
    df = fresh(regression, seed=4).astype({regression.target: object})
    df.loc[df.index[::2], regression.target] = None
    df.loc[df.index[1], regression.target] = "not a number"
    batch = tmp_path / "bad_label.csv"
    df.to_csv(batch, index=False)
    code, output, report = drift(regression, batch, tmp_path / "out")
    assert code == 1, output
    (failure,) = report["contract"]["failures"]
    assert failure["column"] == regression.target


def test_a_batch_without_the_target_column_exits_0(regression: Project, tmp_path: Path):
    batch = tmp_path / "unlabelled.csv"
    fresh(regression, seed=5).drop(columns=[regression.target]).to_csv(batch, index=False)
    code, output, report = drift(regression, batch, tmp_path / "out")
    assert code == 0, output
    assert report["contract"]["valid"] is True and report["current"]["labelled"] is False
