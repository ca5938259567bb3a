"""Projects adopted the way an adopter does it: a generated table nobody here wrote, `make adopt`
and `make run` in a copy of this template (its example's results committed, as a fresh clone has
them) under a minimal environment.

Built once per test run and table (``adopted_project`` in tests/conftest.py) and shared:
test_adopt_commit takes each on to its first commit, a fresh clone, drift and the next pull
request; test_adopt_search judges the default search's choice on the two hard tables. Each test
works on its own copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tests import THREAD_LIMITS
from tests.helpers import REPO, copy_repo, with_test_repeats
from tests.projects import table


def collinear_regression(
    n: int = 200, seed: int = 5, rates: list[float] | None = None
) -> pd.DataFrame:
    """19 career totals, all years played times a rate: nearly one direction in 19 columns (the
    fixed ridge, alpha 1, does no better than the mean); pay peaks mid-career, so a line through
    the totals extrapolates badly. One salary in 15 is missing (rows cleaning drops, and counts).
    The rates are the population: those of the 200-row table of seed 5 unless given, so every
    seed draws other players of the same league."""
    rates = rates or _league_rates()
    rng = np.random.default_rng(seed)
    years = rng.lognormal(1.5, 0.7, n)
    skill = rng.normal(size=n)
    columns = {}
    for i in range(19):
        rng.uniform(5, 50)  # the draw that was this column's rate: same table for seed 5
        noise = rng.lognormal(0, 0.1, n)
        columns[f"career_{i}"] = np.round(years * rates[i] * np.exp(0.3 * skill) * noise)
    df = pd.DataFrame(columns)
    df.insert(0, "player", [f"p{seed:02d}{i:04d}" for i in range(n)])
    pay = 500 * np.exp(0.5 * skill) * np.minimum(years, 8) / 8 + rng.normal(0, 150, n)
    df["salary"] = np.round(pay, 1)
    unlabelled = np.random.default_rng(seed + 100).choice(n, size=n // 15, replace=False)
    df.loc[unlabelled, "salary"] = np.nan
    return df


def _league_rates() -> list[float]:
    rng = np.random.default_rng(5)
    rng.lognormal(1.5, 0.7, 200), rng.normal(size=200)
    rates = []
    for _ in range(19):
        rates.append(float(rng.uniform(5, 50)))
        rng.lognormal(0, 0.1, 200)
    return rates


def imbalanced_binary(n: int = 1200, seed: int = 7) -> pd.DataFrame:
    """3% positives, found by a pattern in two of six numbers plus a category; no ID column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    region = rng.choice(["north", "south", "east"], size=n)
    score = 1.6 * x[:, 0] - 1.2 * x[:, 1] + 0.8 * (region == "east") + rng.normal(0, 0.8, n)
    positive = score >= np.quantile(score, 0.97)
    df = pd.DataFrame({f"m{i}": np.round(x[:, i], 3) for i in range(6)})
    df["region"] = region
    df["churned"] = np.where(positive, "yes", "no")
    return df


@dataclass(frozen=True)
class Table:
    make: Callable[[int, int], pd.DataFrame]  # (rows, seed) -> the table
    target: str
    id_column: str | None
    rows: int
    seed: int


TABLES = {
    # binary, 3% positives, numbers and a category, no ID column
    "imbalanced_binary": Table(imbalanced_binary, "churned", None, 1200, 7),
    # regression with an ID, strongly collinear features, and a target with missing values
    "collinear_regression": Table(collinear_regression, "salary", "player", 200, 5),
    # digit-coded categories (leading zeros), a high-cardinality open category, missing values
    "mixed_codes": Table(
        lambda n, seed: table("mixed_codes", n, seed)[0], table("mixed_codes")[1], None, 400, 0
    ),
}


def minimal_env(root: Path) -> dict[str, str]:
    """`env -i HOME=$HOME PATH=<python3's folder>:/usr/bin:/bin`, plus the copy's own src/ (the
    shared .venv's editable install points at this checkout), a git identity and the suite's
    thread limits (tests/__init__.py)."""
    python_dir = str(Path(getattr(sys, "_base_executable", sys.executable)).parent)
    return {
        **{k: v for k, v in os.environ.items() if k in THREAD_LIMITS},
        "HOME": os.environ.get("HOME", "/root"),
        "PATH": f"{python_dir}:/usr/bin:/bin",
        "PYTHONPATH": str(root / "src"),
        "GIT_AUTHOR_NAME": "Adopter",
        "GIT_AUTHOR_EMAIL": "adopter@example.com",
        "GIT_COMMITTER_NAME": "Adopter",
        "GIT_COMMITTER_EMAIL": "adopter@example.com",
    }


def make(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv") or str(REPO / ".tools/bin/uv")
    if not (root / ".venv").exists():
        (root / ".venv").symlink_to(REPO / ".venv")
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.synced", *args, f"UV={uv}"],
        cwd=root, env=minimal_env(root), capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"{result.args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def shell(root: Path, command: str) -> str:
    return ok(subprocess.run(
        ["bash", "-c", command], cwd=root, env=minimal_env(root), capture_output=True, text=True
    ))  # fmt: skip


def status(root: Path) -> list[str]:
    lines = shell(root, "git status --porcelain").splitlines()
    return [line for line in lines if line != "?? .venv"]  # the shared environment, linked


def build(root: Path, kind: str) -> str:
    """A copy of this template at ``root``, `make adopt` on the table ``kind`` and `make run`,
    nothing committed after the copy; returns what `make adopt` printed."""
    spec = TABLES[kind]
    copy_repo(root)
    data = root.parent / f"{kind}.csv"
    spec.make(spec.rows, spec.seed).to_csv(data, index=False)
    force = ["FORCE=1"] if "mlci adopt" in (root / "src/project/schema.py").read_text() else []
    ident = [f"ID={spec.id_column}"] if spec.id_column else []
    adopted = ok(make(root, "adopt", f"DATA={data}", f"TARGET={spec.target}", *ident, *force))
    # As in every test project (tests.helpers.TEST_REPEATS); an adopter may edit params.yaml
    # before the first run just so.
    params = root / "params.yaml"
    params.write_text(with_test_repeats(params.read_text(), params))
    ok(make(root, "run"))
    return adopted
