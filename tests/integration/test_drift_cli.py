"""``mlci drift`` and ``mlci staleness`` through the real CLI, on a repository after a real
``dvc repro`` (the shared ``trained_repo``; reports go to tmp_path, the repository is not touched).

Each exit code is checked once in a subprocess (``mlci ...``, as the Makefile and workflows run
it); the other cases call the same entry point, ``mlci.cli.main``, in process: a new process
costs seconds of imports each time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlci import artifacts, contract
from mlci.cli import main
from tests.helpers import EXAMPLE_PARAMS, REPO, git, run

SPEC = contract.spec()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def population(trained_repo: Path) -> pd.DataFrame:
    """All validated rows: new data from the same population as the training data."""
    return pd.read_parquet(trained_repo / "data/interim/validated.parquet").reset_index(drop=True)


@pytest.fixture(scope="module")
def model(trained_repo: Path):
    return artifacts.load_model(trained_repo / "models/model.skops")


def draw(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return df.iloc[rng.integers(0, len(df), n)][SPEC.feature_names].reset_index(drop=True)


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Run ``mlci ARGS`` in this process, from ``repo``; returns a subprocess-like result."""

    def call(repo: Path, *args: str) -> Result:
        monkeypatch.chdir(repo)
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return call


def drift_cli(repo: Path, current: Path, out: Path, *extra: str, call=None):
    args = ["drift", "--current", str(current), "--out-dir", str(out), *extra]
    result = call(repo, *args) if call else run(["mlci", *args], repo, check=False)
    report = json.loads((out / "drift.json").read_text()) if (out / "drift.json").exists() else None
    return result, report


def test_unshifted_batch_exits_0(trained_repo: Path, population: pd.DataFrame, tmp_path: Path):
    batch = tmp_path / "batch.csv"
    draw(population, 200, seed=11).to_csv(batch, index=False)
    result, report = drift_cli(trained_repo, batch, tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("drift: no_drift (exit 0)")
    assert report["status"] == "no_drift" and report["exit_code"] == 0
    assert report["reference"]["path"] == "data/processed/train.parquet"
    assert report["reference"]["is_model_training_data"] is True
    assert [c["column"] for c in report["columns"]] == SPEC.feature_names
    assert all(c["status"] == "tested" and not c["drifted"] for c in report["columns"])
    assert report["contract"]["valid"] is True
    # The shared repository's results are not committed: the model's age from git is unknown
    # there (tests/integration/test_drift_cli.py's staleness tests cover the git history).
    assert report["staleness"]["status"] in ("fresh", "unknown")
    md = (tmp_path / "out" / "drift.md").read_text()
    assert "**Drift: none found** (exit code 0)" in md and "## Model age" in md
    assert "| body_mass_g | kolmogorov-smirnov | 256 / 200 |" in md


def test_shifted_batch_exits_1_and_names_the_column(
    trained_repo: Path, population: pd.DataFrame, tmp_path: Path
):
    df = draw(population, 200, seed=12)
    df["body_mass_g"] += 0.5 * population["body_mass_g"].std()
    batch = tmp_path / "shifted.parquet"
    df.to_parquet(batch)
    result, report = drift_cli(trained_repo, batch, tmp_path / "out")
    assert result.returncode == 1, result.stdout + result.stderr
    assert report["status"] == "drift"
    drifted = [c["column"] for c in report["columns"] if c["drifted"]]
    assert drifted == ["body_mass_g"]
    assert report["reasons"][0].startswith("body_mass_g: kolmogorov-smirnov p=")
    assert "mean moved +0.5" in report["reasons"][0]
    md = (tmp_path / "out" / "drift.md").read_text()
    assert "**Drift: FOUND**" in md and "| **yes** |" in md


@pytest.mark.parametrize("rows", [0, 10])
def test_too_small_batch_exits_3(
    trained_repo: Path, population: pd.DataFrame, tmp_path: Path, rows: int, in_process
):
    batch = tmp_path / "small.csv"
    draw(population, rows, seed=13).to_csv(batch, index=False)
    result, report = drift_cli(trained_repo, batch, tmp_path / "out", call=in_process)
    assert result.returncode == 3, result.stdout + result.stderr
    assert report["status"] == "not_enough_data"
    assert f"has {rows} usable row(s)" in report["reasons"][0]
    assert "not enough data" in (tmp_path / "out" / "drift.md").read_text()


def write_log(path: Path, frame: pd.DataFrame, predictions, version: str = "v1") -> list[str]:
    lines = []
    for i, (_, row) in enumerate(frame.iterrows()):
        feats = {k: (None if pd.isna(v) else v) for k, v in row.items()}
        lines.append(
            json.dumps(
                {
                    "request_id": f"r{i}",
                    "timestamp": f"2026-11-2{i % 3}T10:00:00+00:00",
                    "model_version": version,
                    "features": feats,
                    "prediction": str(predictions[i]),
                    "probabilities": {c: 1 / 3 for c in SPEC.classes},
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return lines


def test_prediction_log_with_malformed_lines(
    trained_repo: Path, population: pd.DataFrame, model, tmp_path: Path, in_process
):
    df = draw(population, 200, seed=14)
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "pod-a.jsonl", df.iloc[:100], model.predict(df.iloc[:100]))
    write_log(logs / "pod-b.jsonl", df.iloc[100:], model.predict(df.iloc[100:]))
    with (logs / "pod-b.jsonl").open("a") as f:
        f.write('{"request_id": "cut off mid-wri\nnot json at all\n{"prediction": "Emperor"}\n')
    result, report = drift_cli(trained_repo, logs, tmp_path / "out", call=in_process)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: 3 malformed log line(s) skipped" in result.stdout
    cur = report["current"]
    assert cur["kind"] == "prediction_log"
    assert (cur["rows"], cur["lines_read"], cur["malformed_lines"]) == (200, 203, 3)
    assert {e["line"] for e in cur["malformed_examples"]} == {101, 102, 103}
    assert cur["model_versions"] == {"v1": 200}
    pred = report["columns"][-1]
    assert pred["column"] == "(predicted class)" and pred["status"] == "tested"
    assert not pred["drifted"]
    assert "malformed and skipped: 3" in (tmp_path / "out" / "drift.md").read_text()


def test_prediction_drift_alone_is_found(
    trained_repo: Path, population: pd.DataFrame, model, tmp_path: Path, in_process
):
    """Features as in training, but the service predicts Gentoo far too often."""
    df = draw(population, 200, seed=15)
    pred = model.predict(df).astype(object)
    pred[:80] = "Gentoo"
    log = tmp_path / "predictions.jsonl"
    write_log(log, df, pred)
    result, report = drift_cli(trained_repo, log, tmp_path / "out", call=in_process)
    assert result.returncode == 1, result.stdout + result.stderr
    assert [c["column"] for c in report["columns"] if c["drifted"]] == ["(predicted class)"]
    shares = report["columns"][-1]["shares"]["Gentoo"]
    assert shares["current"] > shares["reference"] + 0.2


def test_only_malformed_lines_is_not_enough_data(trained_repo: Path, tmp_path: Path):
    log = tmp_path / "broken.jsonl"
    log.write_text("garbage\n" * 60)
    result, report = drift_cli(trained_repo, log, tmp_path / "out")
    assert result.returncode == 3
    assert "(60 malformed line(s) skipped)" in report["reasons"][0]


def test_labelled_batch_reports_metrics_against_the_test_set(
    trained_repo: Path, tmp_path: Path, in_process
):
    test = pd.read_parquet(trained_repo / "data/processed/test.parquet")
    batch = tmp_path / "labelled.parquet"
    test.drop(columns=[SPEC.id_column]).to_parquet(batch)
    result, report = drift_cli(trained_repo, batch, tmp_path / "out", call=in_process)
    assert result.returncode == 0, result.stdout + result.stderr
    perf = report["performance"]
    reference = json.loads((trained_repo / "reports/metrics.json").read_text())["model"]
    assert perf["labelled_rows"] == len(test)
    assert perf["metrics"]["accuracy"] == pytest.approx(reference["accuracy"])
    assert perf["delta"]["accuracy"] == pytest.approx(0.0)
    assert perf["degraded"] is False
    assert "## Model quality on the labelled rows" in (tmp_path / "out" / "drift.md").read_text()


def test_labelled_batch_with_worse_quality_exits_1(trained_repo: Path, tmp_path: Path, in_process):
    """Same features (no drift in them), but the labels moved: concept drift."""
    test = pd.read_parquet(trained_repo / "data/processed/test.parquet")
    rng = np.random.default_rng(16)
    test[SPEC.target] = rng.permutation(test[SPEC.target].to_numpy())
    batch = tmp_path / "relabelled.csv"
    test.to_csv(batch, index=False)
    result, report = drift_cli(trained_repo, batch, tmp_path / "out", call=in_process)
    assert result.returncode == 1, result.stdout + result.stderr
    assert not any(c["drifted"] for c in report["columns"])
    assert report["performance"]["degraded"] is True
    assert report["performance"]["degraded_metrics"] == ["f1_macro"]  # the primary metric
    assert any("model quality dropped" in r for r in report["reasons"])


def test_contract_violations_exit_1(
    trained_repo: Path, population: pd.DataFrame, tmp_path: Path, in_process
):
    df = draw(population, 200, seed=17)
    df.loc[[3, 4], "body_mass_g"] = 9000.0  # above the contract's 7000 g
    df["colour"] = "black"  # not in the contract
    batch = tmp_path / "bad.csv"
    df.to_csv(batch, index=False)
    result, report = drift_cli(trained_repo, batch, tmp_path / "out", call=in_process)
    assert result.returncode == 1, result.stdout + result.stderr
    failures = {(f["column"], f["check"]): f for f in report["contract"]["failures"]}
    mass = failures[("body_mass_g", "less_than_or_equal_to(7000.0)")]
    assert mass["failing_rows"] == 2 and mass["examples"][0] == {"row": 3, "value": 9000.0}
    assert any(c == "column_in_schema" for _, c in failures)
    assert "2 data-contract violation(s) in the batch" in report["reasons"]


def test_a_sample_of_the_raw_source_is_cleaned_and_passes(
    trained_repo: Path, tmp_path: Path, in_process
):
    """The bundled raw table, unshifted, in its source form (raw column names, unmeasured
    birds): cleaned as training data is, it breaks no contract rule and shows no drift."""
    raw = trained_repo / "data/sample/penguins-raw.csv"
    result, report = drift_cli(trained_repo, raw, tmp_path / "out", call=in_process)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["contract"] == {"valid": True, "failures": []}
    cleaning = report["current"]["cleaning"]
    assert (cleaning["rows_read"], cleaning["rows_kept"]) == (344, 342)
    assert cleaning["fixes"]["unmeasured_rows_dropped"] == 2
    assert all(c["status"] == "tested" and not c["drifted"] for c in report["columns"])
    assert report["performance"]["degraded"] is False
    md = (tmp_path / "out" / "drift.md").read_text()
    assert "344 row(s) read, 342 kept; unmeasured rows dropped: 2." in md


def test_user_errors_exit_2(trained_repo: Path, tmp_path: Path, in_process):
    result, _ = drift_cli(trained_repo, tmp_path / "missing.csv", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.startswith("error: current batch") and "Traceback" not in result.stderr
    result, _ = drift_cli(
        trained_repo,
        tmp_path / "missing.csv",
        tmp_path / "out",
        "--reference",
        "nope.parquet",
        call=in_process,
    )
    assert result.returncode == 2 and "reference nope.parquet: file not found" in result.stderr


# --------------------------------------------------------------------------- staleness


def lock_text(md5: str, other: str = "aaa") -> str:
    return (
        "schema: '2.0'\nstages:\n  train:\n    outs:\n    - path: models/model.skops\n"
        f"      md5: {md5}\n  evaluate:\n    outs:\n    - path: reports/plots/importance.csv\n"
        f"      md5: {other}\n"
    )


def commit(repo: Path, message: str, days_ago: float) -> None:
    date = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=days_ago)
    stamp = date.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    git(repo, "add", "-A")
    run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", message],
        repo,
        GIT_AUTHOR_DATE=stamp,
        GIT_COMMITTER_DATE=stamp,
    )


def staleness_cli(repo: Path, call):
    return call(repo, "--params", str(EXAMPLE_PARAMS), "staleness", "--json")


def test_staleness_from_git_history(tmp_path: Path, in_process):
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "models/model_meta.json").write_text('{"estimator": "logistic_regression"}')
    (repo / "dvc.lock").write_text(lock_text("m1"))
    commit(repo, "train v1", days_ago=200)
    (repo / "dvc.lock").write_text(lock_text("m1", other="bbb"))  # evaluate only: same model
    commit(repo, "re-evaluate", days_ago=100)

    result = staleness_cli(repo, in_process)
    assert result.returncode == 1, result.stdout + result.stderr
    age = json.loads(result.stdout)
    assert age["stale"] is True and 199.9 < age["age_days"] < 200.1
    assert age["source"].startswith("git: commit") and age["max_model_age_days"] == 90

    (repo / "dvc.lock").write_text(lock_text("m2", other="bbb"))  # retrained: a new model
    commit(repo, "train v2", days_ago=3)
    result = staleness_cli(repo, in_process)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 2.9 < json.loads(result.stdout)["age_days"] < 3.1


def test_staleness_prefers_trained_at_and_explains_when_unknown(tmp_path: Path, in_process):
    repo = tmp_path / "plain"
    (repo / "models").mkdir(parents=True)
    result = staleness_cli(repo, in_process)
    assert result.returncode == 2 and "model_meta.json not found" in result.stderr
    (repo / "models/model_meta.json").write_text("{}")
    result = staleness_cli(repo, in_process)
    assert result.returncode == 2 and "cannot tell when the model was trained" in result.stderr
    when = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=120)).isoformat()
    (repo / "models/model_meta.json").write_text(json.dumps({"trained_at": when}))
    result = run(["mlci", "--params", str(EXAMPLE_PARAMS), "staleness"], repo, check=False)
    assert result.returncode == 1
    assert "STALE: retrain" in result.stdout and "(trained_at)" in result.stdout


def test_make_drift_needs_current():
    result = run(["make", "-n", "drift"], REPO, check=False)
    assert result.returncode != 0 and "set CURRENT=" in result.stderr
    result = run(["make", "-n", "drift", "CURRENT=logs/"], REPO, check=False)
    assert 'mlci drift --current "logs/"' in result.stdout
