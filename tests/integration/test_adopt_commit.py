"""An adopted project is green from its first commit: in a copy of this template (its example's
results committed, as a fresh clone has them), under a minimal environment, `make adopt` on a
generated table, `make run`, then exactly the commit command adopt printed; then `git status` is
clean, the project's own tests of itself pass (a rerun changes no committed file), `make
check-stale` passes on a fresh clone, drift on unlabelled held-out rows exits 0, and
the next pull request is compared with the adopter's main (not judged as a contract change).

The adoption and first `make run` are shared with test_adopt_search (tests/adopted.py): each
test takes its own copy from there."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.adopted import TABLES, make, ok, shell, status

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", list(TABLES))
def test_adopt_run_commit_is_green(
    kind: str, tmp_path: Path, adopted_project: Callable[[str, Path], tuple[Path, str]]
) -> None:
    # `make adopt` and `make run`, shared (tests/adopted.py): this test's own copy
    root, adopted = adopted_project(kind, tmp_path / "repo")

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
    spec = TABLES[kind]
    spec.make(300, spec.seed + 1).drop(columns=[spec.target]).to_csv(held_out, index=False)
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
