"""`make monitor PUBLISH=1`, `make retrain-pr` (a real bare git remote) and `make github-release`
against the stand-in GitHub API over HTTPS (tests/fake_github.py, its certificate trusted through
SSL_CERT_FILE), on a generated fixture project: no `gh` anywhere, asserting on what the API
received."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fake_github import REPOSITORY, FakeGitHub
from tests.fake_github_repo import add_issue
from tests.helpers import git, make_in, run
from tests.projects import Project, shifted_batch

pytestmark = pytest.mark.slow

KIND = "multiclass_numeric"
SHIFTED = "alcohol"
LABEL = "model-monitoring"


@pytest.fixture
def repo(trained_fixture: Callable[[str], Project], tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(trained_fixture(KIND).root, repo, symlinks=True)
    return repo


@pytest.fixture
def fake(tmp_path: Path):
    with FakeGitHub(tmp_path / "tls", max_per_page=2) as server:
        yield server


def api_env(fake: FakeGitHub, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_API_URL": fake.url,
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_TOKEN": fake.token,
        "SSL_CERT_FILE": str(fake.cert),
        "MLCI_GITHUB_RETRY_DELAY": "0.01",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "99",
        **extra,
    }


def batch(repo: Path, name: str, shift: float, seed: int) -> Path:
    return shifted_batch(repo, name, SHIFTED, shift, seed, id_column="sample")


def monitor(repo: Path, fake: FakeGitHub, current: Path, **extra: str):
    return make_in(repo, "monitor", "PUBLISH=1", f"CURRENT={current}", **api_env(fake, **extra))


def exit_code(result) -> int:
    """The recipe's exit code (make itself exits 2 whenever a recipe fails)."""
    found = re.search(r"\] Error (\d+)$", result.stderr, re.M)
    return int(found.group(1)) if found else result.returncode


def writes(fake: FakeGitHub, since: int = 0) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in fake.requests[since:] if r.method != "GET"]


def test_monitor_keeps_one_issue_across_runs(repo: Path, fake: FakeGitHub) -> None:
    drifted, calm = batch(repo, "d", 2.0, 1), batch(repo, "c", 0.0, 2)
    issues = f"/repos/{REPOSITORY}/issues"

    first = monitor(repo, fake, drifted)
    assert exit_code(first) == 1, first.stdout + first.stderr
    (number,) = fake.state.issues
    assert "opened issue #1" in first.stdout
    assert writes(fake) == [("POST", f"/repos/{REPOSITORY}/labels"), ("POST", issues)]
    issue = fake.state.issues[number]
    assert issue["body"].startswith("## Model monitoring: drift") and SHIFTED in issue["body"]
    assert [lab["name"] for lab in issue["labels"]] == [LABEL]

    # Newer labelled pull requests and an issue fill page one (two per page): ours is on page two.
    for n in range(3):
        add_issue(fake, f"labelled {n}", [LABEL], pull=n < 2)
    seen = len(fake.requests)
    second = monitor(repo, fake, drifted)
    assert exit_code(second) == 1, second.stderr
    assert f"updated #{number}" in second.stdout
    pages = [r.query.get("page", ["1"])[0] for r in fake.requests[seen:] if r.path == issues]
    assert pages == ["1", "2"]
    comments = f"{issues}/{number}/comments"
    assert writes(fake, seen) == [("PATCH", f"{issues}/{number}"), ("POST", comments)]
    assert fake.bodies(number) == ["Still found: drift"]

    seen = len(fake.requests)
    clear = monitor(repo, fake, calm)
    assert exit_code(clear) == 0, clear.stdout + clear.stderr
    assert writes(fake, seen) == [("POST", f"{issues}/{number}/comments")]
    assert fake.bodies(number)[-1] == "Latest monitoring run: all clear."
    opened = [i for i in fake.state.issues.values() if i["title"].startswith("Model monitoring")]
    assert len(opened) == 1


def test_drift_dispatches_retraining_and_a_read_only_token_is_named(
    repo: Path, fake: FakeGitHub
) -> None:
    drifted = batch(repo, "d", 2.0, 1)
    result = make_in(
        repo, "monitor", "PUBLISH=1", "RETRAIN_ON_DRIFT=1", f"CURRENT={drifted}", **api_env(fake)
    )
    assert exit_code(result) == 1, result.stderr
    assert fake.state.dispatches == [{"workflow": "retrain.yml", "ref": "main", "inputs": {}}]
    assert "dispatched the retrain workflow on main" in result.stdout

    fake.read_only = True
    denied = monitor(repo, fake, drifted)
    assert exit_code(denied) == 2
    (line,) = [x for x in denied.stderr.splitlines() if x.startswith("error:")]
    assert "HTTP 403" in line and "`issues: write`" in line and REPOSITORY in line
    assert "Traceback" not in denied.stderr


def test_retrain_pr_pushes_a_branch_and_opens_a_well_formed_pull_request(
    retrained_fixture: Callable[[str], Path], fake: FakeGitHub, tmp_path: Path
) -> None:
    # `make retrain SOURCE=data/new.csv` has run (tests/conftest.py, shared with test_loop).
    repo = tmp_path / "repo"
    shutil.copytree(retrained_fixture(KIND), repo, symlinks=True)
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    git(repo, "fetch", "-q", "origin")

    fake.state.git_remote = origin  # the stand-in knows the remote's branches, as GitHub does
    pushed = make_in(repo, "retrain-pr", "DEFAULT_BRANCH=main", **api_env(fake))
    assert exit_code(pushed) == 0, pushed.stdout + pushed.stderr
    heads = run(["git", "ls-remote", "--heads", str(origin)], tmp_path).stdout
    (branch,) = [h.split("refs/heads/")[1] for h in heads.splitlines() if "retrain/" in h]
    assert f"opened https://github.com/{REPOSITORY}/pull/" in pushed.stdout
    opened = fake.requests[-1]
    assert opened.method == "POST" and opened.path == f"/repos/{REPOSITORY}/pulls"
    assert isinstance(opened.body, dict)
    assert opened.body["head"] == branch and opened.body["base"] == "main"
    assert opened.body["title"].startswith("Retrain the model")
    assert "model gate" in opened.body["body"]
    shown = git(repo, "show", "--stat", "--format=%s", branch).stdout
    for path in ("params.yaml", "dvc.lock", "reports/metrics.json", "models/model_meta.json"):
        assert path in shown, shown
    assert [i["head"] for i in fake.state.issues.values()] == [branch]
    status = git(repo, "status", "--porcelain").stdout.splitlines()
    assert [line for line in status if line != "?? .venv"] == []  # everything it changed, committed


def test_github_release_publishes_the_model_card(repo: Path, fake: FakeGitHub) -> None:
    card = repo / "reports/release/model_card.md"
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text("# Model card\n\n" + "| slice | n |\n|---|---:|\n" + "| a | 1 |\n" * 9000)
    missing = make_in(repo, "github-release", "TAG=v1.0.0", **api_env(fake))
    assert exit_code(missing) == 2 and "push the tag first" in missing.stderr
    fake.state.tags.add("v1.0.0")
    made = make_in(repo, "github-release", "TAG=v1.0.0", **api_env(fake))
    assert exit_code(made) == 0, made.stderr
    (release,) = fake.state.releases
    assert release["tag_name"] == "v1.0.0" and release["body"].startswith("# Model card")
    assert len(release["body"]) <= 65_536 < len(card.read_text())
    assert "actions/runs/99" in release["body"]
