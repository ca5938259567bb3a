"""The noise-aware gate with real trained models in a real git repository: the bundled example
with C: 0.06 (86 test rows, all right) against a pull request that flips one test row (C: 0.05;
found by scanning C on the example's split), which the interval rule passes and the point rule
fails, and one that breaks the model (C: 0.0001), which both fail. The verdict line names the
rule that decided."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.comment_length import estimate_height
from tests.conftest import git, run
from tests.fake_github import capture_post
from tests.integration.test_pr_report import NOT_ACTIONS, commit_all, gate, report, set_param

pytestmark = pytest.mark.slow


def trained_copy(trained_repo: Path, folder: Path) -> Path:
    """A private copy of the shared trained example (its results not committed yet)."""
    repo = folder / "repo"
    shutil.copytree(trained_repo, repo, symlinks=True)
    return repo


@pytest.fixture(scope="module")
def example(trained_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Only tune, train and evaluate run: the shared example's data stages are reused.
    repo = trained_copy(trained_repo, tmp_path_factory.mktemp("noise"))
    set_param(repo, "train.estimator.params.C", 0.06)
    run(["dvc", "repro"], repo)
    commit_all(repo, "base: C 0.06")
    return repo


def pull_request(example: Path, tmp_path: Path, name: str, c: float) -> Path:
    repo = tmp_path / name
    shutil.copytree(example, repo, symlinks=True)
    git(repo, "checkout", "-qb", name)
    set_param(repo, "train.estimator.params.C", c)
    run(["dvc", "repro"], repo)
    commit_all(repo, f"C: {c}")
    return repo


def test_one_flipped_row_is_noise_for_the_interval_rule(example: Path, tmp_path: Path) -> None:
    repo = pull_request(example, tmp_path, "one-row", 0.05)
    text, verdict = report(repo, "--no-images")
    assert "Rows that changed answer: 1 correct → wrong, 0 wrong → correct" in text
    assert "(exact McNemar p = 1)" in text
    accuracy = next(
        c for c in verdict["checks"] if c["kind"] == "regression" and c["metric"] == "accuracy"
    )
    # One row of 86 is 1.16 points of accuracy: beyond the 0.01 allowed on the point estimate...
    assert accuracy["base"] - accuracy["value"] == pytest.approx(1 / 86, abs=1e-4)
    assert accuracy["passed"] is True and "within the allowance or noise" in accuracy["detail"]
    assert verdict["passed"] is True, verdict["summary"]
    # verdict.json carries the same numbers for machines.
    assert verdict["flips"] == {"rows": 86, "worse": 1, "better": 0, "p_value": 1.0}
    assert verdict["intervals"]["accuracy"]["verdict"] == "within noise"
    assert verdict["noise"] == "both models re-scored"
    assert "rule: interval" in verdict["summary"] and "beyond noise" in verdict["summary"]
    row = next(line for line in text.splitlines() if line.startswith("| accuracy |"))
    assert "within noise" in row
    assert gate(repo)[0] == 0

    # ...so the point rule, judging the same models, fails it, and says which rule decided.
    # (The rule is read from the base branch, like every gate setting.)
    git(repo, "checkout", "-qb", "point-base", "main")
    set_param(repo, "gate.rule", "point")
    commit_all(repo, "judge on the point estimate")
    git(repo, "checkout", "-q", "one-row")
    result = run(["mlci", "gate", "--base", "point-base"], repo, check=False, **NOT_ACTIONS)
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "rule: point" in out.splitlines()[0], out


def test_a_broken_model_fails_either_rule(example: Path, tmp_path: Path) -> None:
    repo = pull_request(example, tmp_path, "broken", 0.0001)
    text, verdict = report(repo, "--no-images")
    assert verdict["passed"] is False
    failed = {(c["kind"], c["metric"]) for c in verdict["checks"] if not c["passed"]}
    # Beyond noise: the regression checks themselves fail, not only the floors.
    assert ("regression", "accuracy") in failed and ("regression", "f1_macro") in failed
    assert "worse beyond the allowance" in str(verdict["checks"])
    assert "rule: interval" in verdict["summary"]
    row = next(line for line in text.splitlines() if line.startswith("| f1_macro |"))
    assert "**worse**" in row and "❌" in row


@pytest.fixture(scope="module")
def shipped(trained_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = trained_copy(trained_repo, tmp_path_factory.mktemp("shipped"))  # already ran
    commit_all(repo, "base: the example as shipped (C: 1.0)")
    return repo


def test_the_examples_failing_pull_request_fits_three_screens(shipped: Path, tmp_path: Path):
    """The bundled example with `C: 0.01`, posted through the stand-in GitHub API: the first
    screen names the real damage, and the body renders under 3 screens (2,700 px in a 900 px
    column, foldouts closed), by the proxy calibrated against Chromium renders."""
    repo = pull_request(shipped, tmp_path, "c001", 0.01)
    run(["mlci", "report", "--base", "main"], repo, **NOT_ACTIONS)
    body = capture_post(repo / "reports/pr")
    first_screen = body.split("### Params")[0]
    assert "Chinstrap recall 1.00 → 0.53" in first_screen
    assert "8 Chinstrap rows now predicted Adelie" in first_screen
    assert "8 correct → wrong, 0 wrong → correct" in first_screen
    assert "| Chinstrap | 8 (+8) | **9** (-8) | 0 |" in body  # the cells that moved
    height = estimate_height(body)
    assert height <= 2700, height
    assert "ROC curves**: not charted for every class" in body  # saturated: one line
