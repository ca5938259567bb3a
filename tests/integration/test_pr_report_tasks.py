"""`mlci report` / `mlci gate` on a generated regression project, in real git with real
`dvc repro`: the report and gate per task, and the comparisons that cannot be made.

The base is a freshly adopted template (tag ``adopted``: no results yet) followed by a commit of
its first results (``main``). Branches: a hyperparameter change (an equal model), a target
shuffled in the data (a useless model), a dropped feature, a task changed to classification,
and the first pull request against ``adopted``. Everything runs as subprocesses in the copy, so
its own adopter package (not this repository's penguins) is the contract.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import git, run
from tests.integration.test_pr_report import (
    NOT_ACTIONS,
    commit_all,
    gate,
    local_links,
    metric_row,
    report,
    set_param,
)
from tests.projects import GATE, Project, contract_source
from tests.unit.test_report_charts import mermaid_blocks, parse_xychart, table_rows

pytestmark = pytest.mark.slow
FIRST_PR = "first pull request: no base results, the gate used absolute limits and the baseline"
ABSOLUTE = "(absolute limits and baseline only)"


@pytest.fixture(scope="module")
def base_repo(
    trained_fixture: Callable[[str], Project], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    # The shared trained regression fixture: its first results are committed on top of the
    # adopted template.
    repo = tmp_path_factory.mktemp("regression") / "repo"
    shutil.copytree(trained_fixture("regression").root, repo, symlinks=True)
    git(repo, "tag", "adopted", "HEAD~1")  # the adopted template, before its first results
    # A floor, as an adopter sets one: "beats the mean" alone lets noise through (a model fit
    # to a shuffled target scores R² 0.02 here, against -0.01 for the baseline).
    set_param(repo, "gate.minimum", {"r2": 0.5})
    run(["dvc", "repro"], repo)
    commit_all(repo, "a floor on R²")
    return repo


@pytest.fixture
def branch(base_repo: Path, tmp_path: Path):
    def make(name: str) -> Path:
        repo = tmp_path / name
        shutil.copytree(base_repo, repo, symlinks=True)
        git(repo, "checkout", "-qb", name)
        return repo

    return make


def checks(verdict: dict, passed: bool | None = None) -> set[tuple[str, str | None]]:
    return {
        (c["kind"], c["metric"])
        for c in verdict["checks"]
        if passed is None or c["passed"] is passed
    }


def repro_and_commit(repo: Path, message: str) -> None:
    run(["dvc", "repro"], repo)
    commit_all(repo, message)


def test_param_change_reports_regression_metrics_residuals_and_passes(branch) -> None:
    repo = branch("alpha")
    set_param(repo, "train.estimator.params.alpha", 2.0)
    repro_and_commit(repo, "ridge alpha 2")

    text, verdict = report(repo)
    assert verdict["passed"] is True and verdict["basis"] == "base", verdict["summary"]
    assert text.startswith("## ✅ Model gate passed")
    for metric in ("rmse", "mae", "r2"):
        _, base, mine, change, noise, _ = metric_row(text, metric)
        assert abs(float(mine) - float(base)) < 0.05 * float(base), (metric, base, mine)
        assert change == "0" or " [" in change  # the change with its 95% interval
        assert noise in ("unchanged", "within noise", "**better**", "**worse**")
    assert metric_row(text, "r2")[5] == "✅"  # max_regression r2: compared with base
    assert ("regression", "r2") in checks(verdict, passed=True)
    assert not any(line.startswith(("| accuracy |", "| log_loss |")) for line in text.splitlines())
    assert "Baseline model on this branch: rmse " in text
    assert "| `train.estimator.params.alpha` | `1.0` | `2.0` |" in text
    assert "| target min · median · max | min " in text and "class balance" not in text
    assert "<details><summary>Slices (RMSE per value): worst " in text
    assert "Confusion" not in text and "ROC" not in text
    assert "<summary>Permutation importance (drop in R² when a feature is shuffled)" in text

    # Residuals: a histogram of both sides, and a table with the same numbers.
    lines = text.splitlines()
    (residuals,) = (parse_xychart(b) for b in mermaid_blocks(text))
    (_, line), (_, bars) = residuals["plots"]  # base, then this branch: both lines
    rows = table_rows(lines, "| residual from |")
    assert [float(r[3]) for r in rows] == bars and [float(r[2]) for r in rows] == line
    assert sum(int(r[5]) for r in rows) == sum(int(r[4]) for r in rows) == 100  # test rows
    assert "| rows | 100 | 100 |\n| mean residual (bias; 0 is unbiased) |" in text
    # the generated signal's strongest features first
    assert [r[0] for r in table_rows(lines, "| feature |")][:2] == ["age", "bmi"]

    assert local_links(text) == ["actual_vs_predicted.png", "importance.png"]
    for image in local_links(text):
        assert (repo / "reports/pr" / image).stat().st_size > 1000
    assert gate(repo)[0] == 0


def test_a_model_trained_on_a_shuffled_target_fails(branch) -> None:
    repo = branch("shuffled")
    source = repo / "data/fixture.csv"
    df = pd.read_csv(source)
    df["progression"] = np.random.default_rng(1).permutation(df["progression"].to_numpy())
    df.to_csv(source, index=False)
    repro_and_commit(repo, "shuffled target")

    code, out = gate(repo)
    assert code == 1 and out.startswith("FAILED: r2 0.0198 (minimum 0.5)"), out
    text, verdict = report(repo, "--no-images")
    # Same contract, new test set: the base model is re-scored on it (regression metrics),
    # where it is as useless, so it is the floor that fails this model, not a regression.
    assert "re-scored on this branch's test set" in text and verdict["basis"] == "base"
    # ... and the baseline margin (gate.baseline_margin), without any floor at all.
    assert checks(verdict, passed=False) == {("minimum", "r2"), ("baseline", "r2")}
    _, base, mine, _, _, mark = metric_row(text, "r2")
    assert float(base) < 0 and float(mine) < 0.1 and mark == "❌ floor, vs baseline"


def test_a_dropped_feature_is_reported_and_judged_on_absolute_limits(branch) -> None:
    repo = branch("drop-bp")
    schema = repo / "src/project/schema.py"
    kept = [line for line in schema.read_text().splitlines() if not line.startswith("    bp:")]
    schema.write_text("\n".join(kept) + "\n")
    source = repo / "data/fixture.csv"
    pd.read_csv(source).drop(columns=["bp"]).to_csv(source, index=False)
    repro_and_commit(repo, "drop bp")

    text, verdict = report(repo, "--no-images")
    assert "### Data contract changed against base\n\n- feature(s) removed: `bp`\n" in text
    assert "(Base facts from: models/model_meta.json (committed).)" in text
    assert (
        "> the data contract changed against base (feature(s) removed: `bp`): the two models "
        "are not comparable, so the gate used absolute limits and the baseline"
    ) in text
    assert verdict["basis"] == "absolute" and verdict["passed"] is True, verdict["summary"]
    assert verdict["summary"].endswith(ABSOLUTE)
    assert not any(kind == "regression" for kind, _ in checks(verdict))
    assert ("baseline", "r2") in checks(verdict, passed=True)
    _, base, _, change, _, mark = metric_row(text, "r2")
    assert base != "—" and change == "not compared" and mark == "✅"
    code, out = gate(repo)
    assert code == 0 and ABSOLUTE in out and "feature(s) removed: `bp`" in out

    # A base without the metadata (a project that does not commit it): the committed reports
    # tell the same.
    git(repo, "checkout", "-q", "main")
    git(repo, "rm", "-q", "--cached", "models/model_meta.json")
    git(repo, "commit", "-qm", "base without committed metadata")
    git(repo, "checkout", "-qf", "drop-bp")
    text, verdict = report(repo, "--no-images")
    assert "- feature(s) removed: `bp`\n" in text and verdict["basis"] == "absolute"
    assert "(Base facts from: committed reports.)" in text


def test_a_changed_task_is_reported_and_judged_by_this_branchs_gate(branch) -> None:
    repo = branch("to-classes")
    source = repo / "data/fixture.csv"
    df = pd.read_csv(source)
    df["progression"] = np.where(df["progression"] > df["progression"].median(), "high", "low")
    df.to_csv(source, index=False)
    contract = contract_source(df, "progression", None, "classification")
    (repo / "src/project/schema.py").write_text(contract)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["task"] = "classification"
    params["train"] = {"estimator": {"name": "logistic_regression", "params": {}}}
    params["validate"]["min_class_share"] = 0.05
    params["gate"] = {**GATE["classification"], "minimum": {"f1_macro": 0.6}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    repro_and_commit(repo, "predict high or low progression")

    text, verdict = report(repo)
    assert "### Data contract changed against base\n\n- task: regression → classification\n" in text
    assert verdict["basis"] == "absolute" and verdict["summary"].endswith(ABSOLUTE)
    # The base's gate is for regression: this branch's gate judged it, and the report says so.
    assert "its `gate:` is for regression and this branch is classification" in text
    assert ("minimum", "f1_macro") in checks(verdict)
    assert not any(kind == "regression" for kind, _ in checks(verdict))
    # Classification sections, with no base numbers of another task beside them.
    _, base, _, change, _, _ = metric_row(text, "accuracy")
    assert (base, change) == ("—", "—")
    assert "| rmse |" not in text and "### Residuals" not in text
    assert "### Confusion matrix (this branch, test set)" in text and "| high |" in text
    assert "| target | min " in text and "| high 50.0%, low 50.0% |" in text
    rows = table_rows(text.splitlines(), "| feature |")
    assert {r[1] for r in rows} == {"—"}  # base measured R², not F1: not set beside it
    assert "drop in macro F1" in text
    assert local_links(text) == ["importance.png", "precision_recall.png", "roc.png"]
    assert verdict["passed"] is True, verdict["summary"]
    assert gate(repo)[0] == 0


def test_first_pull_request_against_a_base_without_results(branch) -> None:
    repo = branch("first")
    run(["mlci", "report", "--base", "adopted"], repo, **NOT_ACTIONS)
    text = (repo / "reports/pr/report.md").read_text()
    verdict = json.loads((repo / "reports/pr/verdict.json").read_text())
    assert f"> {FIRST_PR}" in text
    assert verdict["passed"] is True and verdict["basis"] == "absolute", verdict["summary"]
    assert verdict["summary"] == f"PASSED: all 3 checks {ABSOLUTE}"
    assert checks(verdict) == {("baseline", "rmse"), ("baseline", "mae"), ("baseline", "r2")}
    assert "### Data contract changed" not in text
    assert "The base has no data report (no results yet): nothing to compare with." in text
    assert "| `gate.minimum.r2` | *(absent)* | `0.5` |" in text  # the one param main added
    assert metric_row(text, "rmse")[1:4] == ["—", metric_row(text, "rmse")[2], "—"]
    residuals = parse_xychart(mermaid_blocks(text)[0])
    assert [kind for kind, _ in residuals["plots"]] == ["line"]
    assert [n.split()[0] for n in residuals["names"]] == ["this"]  # this branch only
    result = run(["mlci", "gate", "--base", "adopted"], repo, **NOT_ACTIONS)
    assert result.stdout.startswith(f"PASSED: all 3 checks {ABSOLUTE}")
    assert f"note: {FIRST_PR}" in result.stdout
