"""The pipeline on tables the template has never seen: numeric-only binary and multiclass,
regression, categorical-only, and digit-coded / high-cardinality / missing categories.

Each is a generated fixture project (tests/projects.py) after a real ``dvc repro``."""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd
import pytest

from mlci.tasks import GATE_METRICS
from tests.conftest import run
from tests.projects import KINDS, Project

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", KINDS)
def test_every_stage_runs_and_the_model_learns(
    kind: str, trained_fixture: Callable[[str], Project]
) -> None:
    project = trained_fixture(kind)
    root = project.root
    assert "Data and pipelines are up to date" in run(["dvc", "status"], root).stdout
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["task"] == project.task
    assert set(GATE_METRICS[project.task]) <= set(metrics["model"])
    primary = metrics["primary"]
    # Every fixture has real signal: the model beats the do-nothing baseline clearly.
    assert metrics["model"][primary] > metrics["baseline"][primary] + 0.2, metrics
    meta = json.loads((root / "models/model_meta.json").read_text())
    assert meta["task"] == project.task and meta["features"] == project.features
    if project.task == "classification":
        assert sorted(meta["classes"]) == sorted(project.data[project.target].dropna().unique())
        assert (root / "reports/plots/confusion.csv").is_file()
    else:
        assert meta["classes"] == []
        assert (root / "reports/plots/residuals.csv").is_file()
    slices = json.loads((root / "reports/slices.json").read_text())
    assert list(slices) == project.slices


def test_digit_codes_and_open_categories_reach_the_model_as_text(
    trained_fixture: Callable[[str], Project],
) -> None:
    root = trained_fixture("mixed_codes").root
    train = pd.read_parquet(root / "data/processed/train.parquet")
    assert set(train["store"]) == {"001", "002", "010"}
    assert train["postcode"].str.len().eq(5).all()
    slices = json.loads((root / "reports/slices.json").read_text())
    assert set(slices["store"]) == {"001", "002", "010"}
    assert "(missing)" in slices["channel"]


def test_a_rerun_changes_nothing(trained_fixture: Callable[[str], Project]) -> None:
    root = trained_fixture("regression").root
    again = run(["dvc", "repro"], root)
    assert "Running stage" not in again.stdout
    assert run(["git", "status", "--porcelain"], root).stdout == ""
