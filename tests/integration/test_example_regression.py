"""The second bundled example, end to end: scikit-learn's diabetes table (it ships inside a
dependency), adopted into a fresh copy of this template with the real ``mlci adopt``, then
everything an adopter does: ``dvc repro``, a pull request that changes a param (report and gate
pass), one whose model learned nothing (the gate fails), a real ``bentoml serve`` answering the
table's own rows, and drift on an unshifted and a shifted held-out sample.

The same steps as the README's "Bring your own data"; only the table differs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_diabetes

from tests.conftest import git, run
from tests.helpers import copy_example, project_env
from tests.integration.test_server import http, running

pytestmark = pytest.mark.slow


def diabetes() -> pd.DataFrame:
    # Unscaled: the measurements as recorded (age in years, BMI, blood pressure, ...).
    return load_diabetes(as_frame=True, scaled=False).frame


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A template copy adopted onto 80% of the table and trained; the held-out 20% returned."""
    tmp = tmp_path_factory.mktemp("diabetes")
    repo = copy_example(tmp / "repo")
    frame = diabetes()
    holdout = frame.sample(frac=0.2, random_state=0)
    source = tmp / "diabetes.csv"
    frame.drop(index=holdout.index).to_csv(source, index=False)

    out = run(["mlci", "adopt", "--data", str(source), "--target", "target"], repo)
    assert "regression" in out.stdout, out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "adopt the diabetes table")
    run(["dvc", "repro"], repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first results")
    return repo, holdout.reset_index(drop=True)


def test_adopted_project_is_a_regression_project(adopted: tuple[Path, pd.DataFrame]) -> None:
    repo, _ = adopted
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["task"] == "regression"
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["task"] == "regression"
    assert metrics["model"]["r2"] > 0.3 > metrics["baseline"]["r2"]
    assert not (repo / "data/sample/penguins-raw.csv").exists()
    assert "up to date" in run(["dvc", "status"], repo).stdout


def test_pull_requests_pass_and_fail_the_gate(
    adopted: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    """Two pull requests on the adopted table: a param change that keeps the model as good
    passes; a model that learned nothing fails, with the reason. (That a fresh clone reproduces
    an adopted project byte for byte is test_adopt_commit's, on three generated tables; a
    shuffled target failing is test_pr_report_tasks's.)"""
    origin, _ = adopted
    repo = tmp_path / "repo"
    shutil.copytree(origin, repo, symlinks=True)  # with its DVC cache: main's results as built

    # A pull request that changes a param and keeps the model as good: passes. The baseline's
    # strategy, read by train alone: the search (which chooses the model) does not rerun.
    git(repo, "checkout", "-qb", "baseline")
    set_baseline(repo, "median")
    rerun = run(["dvc", "repro"], repo).stdout
    assert "Running stage 'train'" in rerun and "Running stage 'tune'" not in rerun
    git(repo, "commit", "-qam", "a median baseline")
    run(["mlci", "report", "--base", "main"], repo)
    report = (repo / "reports/pr/report.md").read_text()
    for metric in ("rmse", "mae", "r2"):
        assert f"| {metric} |" in report
    passed = run(["mlci", "gate", "--base", "main"], repo, check=False)
    assert passed.returncode == 0, passed.stdout + passed.stderr

    # A pull request whose model learned nothing (the search may only regularise it to a
    # constant): fails.
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-qb", "flat")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["search"]["estimators"] = {"ridge": {"alpha": [1e9]}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro"], repo)
    git(repo, "commit", "-qam", "regularise to a constant")
    failed = run(["mlci", "gate", "--base", "main"], repo, check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "r2" in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr


def set_baseline(repo: Path, strategy: str) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["train"]["baseline"] != strategy
    params["train"]["baseline"] = strategy
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_service_answers_the_tables_own_rows(
    adopted: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    repo, holdout = adopted
    env = {**project_env(repo), "BENTOML_HOME": str(tmp_path / "bentoml")}
    run(["mlci", "register-model"], repo, **env)
    features = holdout.drop(columns=["target"])
    rows = json.loads(features.head(5).to_json(orient="records"))
    with running("mlci.serving.service:Classifier", repo, tmp_path / "serve.log", **env) as url:
        status, body = http("POST", f"{url}/predict", {"records": rows})
        assert status == 200, body
        answer = json.loads(body)
        predictions = answer["predictions"] if isinstance(answer, dict) else answer
        assert len(predictions) == 5
        assert all(isinstance(p["prediction"], float) for p in predictions), body

        bad = {**rows[0], "bmi": "heavy"}
        status, body = http("POST", f"{url}/predict", {"records": [bad]})
        assert 400 <= status < 500 and "bmi" in body, (status, body)


def test_drift_on_held_out_samples(adopted: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    repo, holdout = adopted
    calm = tmp_path / "calm.csv"
    holdout.to_csv(calm, index=False)
    result = run(["mlci", "drift", "--current", str(calm)], repo, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    shifted = holdout.copy()
    shifted["bmi"] = shifted["bmi"] + 2 * holdout["bmi"].std()
    path = tmp_path / "shifted.csv"
    shifted.to_csv(path, index=False)
    result = run(["mlci", "drift", "--current", str(path)], repo, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "bmi" in result.stdout + result.stderr
