"""`make adopt`'s default search on tables nobody here wrote: a small regression table of
strongly collinear career totals (where the fixed ridge, alpha 1, loses to the mean) and a
binary table with 3% positives (tests/adopted.py; adopted and run once, shared with
test_adopt_commit). With the search, both pass their baseline gate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import git, run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["collinear_regression", "imbalanced_binary"])
def test_adopted_default_search_passes_the_baseline_gate(
    kind: str, tmp_path: Path, adopted_project: Callable[[str, Path], tuple[Path, str]]
) -> None:
    # `make adopt` and `make run`, shared (tests/adopted.py): this test's own copy
    root, _ = adopted_project(kind, tmp_path / "repo")
    # The adoption committed without its results: the first pull request, against a base that
    # has none.
    git(root, "add", "-A", "--", ".", ":!.venv")
    results = ["dvc.lock", "reports", "models/model_meta.json", "models/tuned.json"]
    git(root, "rm", "-r", "-q", "--cached", "--ignore-unmatch", *results)
    git(root, "commit", "-qm", "adopt")
    tuned = json.loads((root / "models/tuned.json").read_text())
    search = json.loads((root / "reports/search.json").read_text())
    assert tuned["searched"] and len(search["candidates"]) >= 10
    gate = run(["mlci", "gate", "--base", "HEAD"], root, check=False)
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert gate.returncode == 0, (gate.stdout, tuned, metrics["model"], metrics["baseline"])
    # the pull-request report's Search foldout: the chosen candidate first, ticked
    out = tmp_path / "pr"
    run(["mlci", "report", "--base", "HEAD", "--no-images", "--out-dir", str(out)], root)
    text = (out / "report.md").read_text()
    assert "<summary>Search</summary>" in text and "base recorded no choice" in text
    assert f"| 1 ✓ | `{tuned['estimator']}` |" in text
