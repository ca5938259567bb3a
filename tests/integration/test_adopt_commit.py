"""An adopted project is green from its first commit: in a copy of this template (its example's
results committed, as a fresh clone has them), under a minimal environment, `make adopt` on a
generated table, `make run`, then exactly the commit command adopt printed; then `git status` is
clean, the project's own tests of itself pass (a rerun changes no committed file), `make
check-stale` passes on a fresh clone, drift on unlabelled held-out rows exits 0, and
the next pull request is compared with the adopter's main (not judged as a contract change)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import REPO, copy_repo
from tests.projects import table

pytestmark = pytest.mark.slow


def minimal_env(root: Path) -> dict[str, str]:
    """`env -i HOME=$HOME PATH=<python3's folder>:/usr/bin:/bin`, plus the copy's own src/ (the
    shared .venv's editable install points at this checkout), a git identity and the suite's
    thread limits (tests/conftest.py)."""
    python_dir = str(Path(getattr(sys, "_base_executable", sys.executable)).parent)
    return {
        **{k: v for k, v in os.environ.items() if k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
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


TABLES = {
    # numeric binary without an ID column
    "binary_numeric": lambda n, seed: table("binary_numeric", n, seed)[:2],
    # regression whose target has missing values
    "regression_missing": lambda n, seed: _missing_target(n, seed),
    # digit-coded categories (leading zeros)
    "mixed_codes": lambda n, seed: table("mixed_codes", n, seed)[:2],
}


def _missing_target(n: int, seed: int) -> tuple[pd.DataFrame, str]:
    df, target, _, _ = table("regression", n, seed)
    df.loc[np.random.default_rng(seed).choice(n, size=n // 15, replace=False), target] = np.nan
    return df, target


@pytest.mark.parametrize("kind", list(TABLES))
def test_adopt_run_commit_is_green(kind: str, tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    df, target = TABLES[kind](400, 0)
    data = tmp_path / f"{kind}.csv"
    df.to_csv(data, index=False)
    force = ["FORCE=1"] if "mlci adopt" in (root / "src/project/schema.py").read_text() else []
    adopted = ok(make(root, "adopt", f"DATA={data}", f"TARGET={target}", *force))
    ok(make(root, "run"))

    (command,) = [line.strip() for line in adopted.splitlines() if "git add -A" in line]
    assert "models" in command.split("&&")[0].split()
    shell(root, command)
    assert status(root) == [], "the printed commit left files out"

    # The adopter's own test of its project: a rerun changes no committed file.
    shell(
        root,
        ".venv/bin/python -m pytest -q -p no:cacheprovider tests/integration/test_this_project.py",
    )
    assert status(root) == []

    clone = tmp_path / "clone"
    shell(tmp_path, f"git clone -q {root} {clone}")
    ok(make(clone, "check-stale"))

    # Production rows: labels arrive late, so no target column at all.
    held_out = tmp_path / "held_out.csv"
    TABLES[kind](300, 7)[0].drop(columns=[target]).to_csv(held_out, index=False)
    drift = make(root, "drift", f"CURRENT={held_out}", f"DRIFT_OUT={tmp_path / 'drift'}")
    assert drift.returncode == 0, drift.stdout + drift.stderr

    # The next pull request: compared with the adopter's main, not as a contract change. It
    # changes the baseline strategy, a param only the train stage reads (dvc.yaml): train and
    # evaluate rerun, not the split and the search (a new seed would rerun both, seconds each).
    shell(root, "git switch -q -c next")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["baseline"] = {"prior": "most_frequent", "mean": "median"}[
        params["train"]["baseline"]
    ]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stale = make(root, "check-stale")
    assert stale.returncode != 0 and command.split(" && ")[0] in stale.stderr  # the same set
    ok(make(root, "run"))
    shell(root, command.replace("Adopt mlci for my data", "Another baseline"))
    assert status(root) == []
    report = ok(make(root, "report", "BASE=main"))
    assert "contract changed" not in report and "absolute limits and baseline only" not in report
    assert re.search(r"against `?main`?", report), report[:1500]
