"""`make adopt`'s default search on tables nobody here wrote: a small regression table of
strongly collinear career totals (where the fixed ridge, alpha 1, loses to the mean) and a
binary table with 3% positives. With the search, both pass their baseline gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlci.adopt.render import MARKER
from tests.helpers import copy_example, git, run

pytestmark = pytest.mark.slow


def collinear_regression(path: Path, n: int = 200, seed: int = 5) -> Path:
    """19 career totals, all years played times a rate: nearly one direction in 19 columns;
    pay peaks mid-career, so a line through the totals extrapolates badly."""
    rng = np.random.default_rng(seed)
    years = rng.lognormal(1.5, 0.7, n)
    skill = rng.normal(size=n)
    df = pd.DataFrame(
        {
            f"career_{i}": np.round(
                years * rng.uniform(5, 50) * np.exp(0.3 * skill) * rng.lognormal(0, 0.1, n)
            )
            for i in range(19)
        }
    )
    df.insert(0, "player", [f"p{i:03d}" for i in range(n)])
    pay = 500 * np.exp(0.5 * skill) * np.minimum(years, 8) / 8 + rng.normal(0, 150, n)
    df["salary"] = np.round(pay, 1)
    df.to_csv(path, index=False)
    return path


def imbalanced_binary(path: Path, n: int = 1200, seed: int = 7) -> Path:
    """3% positives, found by a pattern in two of six numbers plus a category."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    region = rng.choice(["north", "south", "east"], size=n)
    score = 1.6 * x[:, 0] - 1.2 * x[:, 1] + 0.8 * (region == "east") + rng.normal(0, 0.8, n)
    positive = score >= np.quantile(score, 0.97)
    df = pd.DataFrame({f"m{i}": np.round(x[:, i], 3) for i in range(6)})
    df["region"] = region
    df["churned"] = np.where(positive, "yes", "no")
    df.to_csv(path, index=False)
    return path


TABLES = {
    "collinear_regression": (collinear_regression, "salary", "player"),
    "imbalanced_binary": (imbalanced_binary, "churned", None),
}


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_adopted_default_search_passes_the_baseline_gate(kind: str, tmp_path: Path) -> None:
    make, target, id_column = TABLES[kind]
    root = copy_example(tmp_path / "repo")
    table = make(tmp_path / f"{kind}.csv")
    force = ["--force"] if MARKER in (root / "src/project/schema.py").read_text() else []
    ident = ["--id", id_column] if id_column else []
    run(["mlci", "adopt", "--data", str(table), "--target", target, *ident, *force], root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "adopt")
    run(["dvc", "repro"], root)
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
