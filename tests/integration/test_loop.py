"""The loop: `mlci monitor` on real batches and retraining that ends in a pushed branch (the
GitHub side, against the stand-in API: tests/integration/test_github_loop.py); git, dvc and the
pipeline are real. Machinery tests: they run on a generated fixture project (tests/projects.py),
not on the bundled example."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mlci.monitoring import retrain
from tests.conftest import git, run
from tests.projects import Project, shifted_batch

pytestmark = pytest.mark.slow


KIND = "multiclass_numeric"  # numeric features, an ID column, three classes
SHIFTED = "alcohol"  # a numeric feature of that table (sd 1)


def batch(repo: Path, name: str, shift: float, seed: int) -> Path:
    return shifted_batch(repo, name, SHIFTED, shift, seed, id_column="sample")


@pytest.fixture
def repo(trained_fixture: Callable[[str], Project], tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(trained_fixture(KIND).root, repo, symlinks=True)
    return repo


def test_monitor_exit_codes_and_report(repo: Path) -> None:
    shifted = run(["mlci", "monitor", "--current", str(batch(repo, "s", 2.0, 1))], repo, False)
    assert shifted.returncode == 1 and "drift" in shifted.stdout
    body = (repo / "reports/monitor/report.md").read_text()
    assert body.startswith("## Model monitoring: drift") and SHIFTED in body
    calm = run(["mlci", "monitor", "--current", str(batch(repo, "u", 0, 2))], repo, False)
    assert calm.returncode == 0, calm.stdout + calm.stderr
    result = json.loads((repo / "reports/monitor/result.json").read_text())
    assert result["found"] == [] and result["age"]["stale"] is False


def test_missing_batch_is_a_clear_error(repo: Path) -> None:
    result = run(["mlci", "monitor", "--current", "nowhere.jsonl"], repo, check=False)
    assert result.returncode == 2 and "nowhere.jsonl" in result.stderr


def test_set_data_source_keeps_comments() -> None:
    text = (
        "seed: 1\ndata:\n  # where\n  source: old.csv   # a comment\n  format: auto\n"
        "other:\n  source: untouched\n"
    )
    out = retrain.set_data_source(text, "s3://bucket/new data.csv")
    assert '  source: "s3://bucket/new data.csv"   # a comment\n' in out
    assert "  source: untouched" in out and "  # where\n" in out


def test_retraining_ends_in_a_pushed_branch_and_a_pull_request(
    retrained_fixture: Callable[[str], Path], tmp_path: Path
) -> None:
    # Retrained on data/new.csv (tests/conftest.py: `make retrain`, shared with test_github_loop).
    repo = tmp_path / "repo"
    shutil.copytree(retrained_fixture(KIND), repo, symlinks=True)
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    git(repo, "fetch", "-q", "origin")
    # In a subprocess, so the fixture's own contract is the one imported (not this checkout's).
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from mlci.monitoring import retrain\n"
        "opened = []\n"
        "def create_pr(branch, base, body):\n"
        "    opened.append([branch, base, Path(body).read_text()])\n"
        "    return f'https://example.invalid/pull/{branch}'\n"
        "said = retrain.open_pull_request('main', create_pr, branch='retrain/test')\n"
        "print(json.dumps({'said': said, 'opened': opened}))\n"
    )
    out = json.loads(run([sys.executable, "-c", script], repo, GIT_AUTHOR_NAME="t").stdout)

    assert out["said"].endswith("retrain/test")
    branch, base, body = out["opened"][0]
    assert (branch, base) == ("retrain/test", "main")
    assert "model gate" in body and "## " in body
    remote_heads = run(["git", "ls-remote", "--heads", str(origin)], tmp_path).stdout
    assert "refs/heads/retrain/test" in remote_heads
    shown = git(repo, "show", "--stat", "--format=%s", "retrain/test").stdout
    assert "params.yaml" in shown and "dvc.lock" in shown and "reports/metrics.json" in shown
    params = git(repo, "show", "retrain/test:params.yaml").stdout
    assert 'source: "data/new.csv"' in params
