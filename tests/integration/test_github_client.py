"""The project's one GitHub client (mlci.github_api + mlci.github_repo) against the stand-in
GitHub API over real HTTPS (tests/fake_github.py): pagination, retries, the body limit, an
Enterprise Server URL, and one clear line for 401/403/404/422."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlci.github_api import MAX_BODY, GitHub, ssl_context, units
from mlci.github_repo import GitHubError, Repo
from tests.fake_github import REPOSITORY, FakeGitHub
from tests.fake_github_repo import add_issue

LABEL = "model-monitoring"


@pytest.fixture
def fake(tmp_path: Path):
    with FakeGitHub(tmp_path / "tls", max_per_page=2) as server:
        yield server


def client(fake: FakeGitHub, token: str | None = None, repo: str = REPOSITORY) -> Repo:
    env = {"SSL_CERT_FILE": str(fake.cert)}
    api = GitHub(fake.url, token or fake.token, ssl_context(env), base_delay=0.01)
    return Repo(api, repo, run_url="https://github.com/octo-org/model-repo/actions/runs/7")


def test_the_oldest_labelled_issue_is_found_on_page_two(fake: FakeGitHub) -> None:
    ours = add_issue(fake, "Model monitoring", [LABEL])
    add_issue(fake, "unrelated", ["bug"])
    for n in range(3):  # newer: pull requests and an issue carrying the label, listed first
        add_issue(fake, f"labelled {n}", [LABEL], pull=n < 2)
    assert client(fake).find_issue(LABEL) == ours["number"]
    pages = [r.query.get("page", ["1"])[0] for r in fake.requests if r.path.endswith("/issues")]
    assert pages == ["1", "2"]
    assert fake.requests[0].query["labels"] == [LABEL]


def test_a_failed_create_is_not_repeated_blindly(fake: FakeGitHub) -> None:
    fake.fail_next(1, 502, methods=("POST",))
    number, created = client(fake).find_or_create_issue(LABEL, "title", "body")
    assert created and list(fake.state.issues) == [number]
    verbs = [(r.method, r.path.rsplit("/", 1)[-1]) for r in fake.requests]
    assert verbs == [("GET", "issues"), ("POST", "issues"), ("GET", "issues"), ("POST", "issues")]


def test_a_long_body_is_cut_with_a_link(fake: FakeGitHub) -> None:
    number = add_issue(fake, "t", [LABEL])["number"]
    text = "```\n" + "x" * 99 + "\n" + ("y" * 99 + "\n") * 1000 + "```\n"
    client(fake).edit_issue(number, text)
    body = fake.state.issues[number]["body"]
    assert units(body) <= MAX_BODY < units(text)
    assert "Cut to fit GitHub's limit" in body and "actions/runs/7" in body
    assert body.count("```") % 2 == 0  # the open fence was closed before the note


def test_enterprise_server_prefix(tmp_path: Path) -> None:
    with FakeGitHub(tmp_path / "tls", prefix="/api/v3") as fake:
        repo = client(fake)
        assert repo.dispatch("retrain.yml") == "main"
        assert fake.state.dispatches == [{"workflow": "retrain.yml", "ref": "main", "inputs": {}}]
        assert all(r.headers["authorization"] == f"Bearer {fake.token}" for r in fake.requests)


def test_errors_are_one_line_and_say_what_to_do(fake: FakeGitHub) -> None:
    with pytest.raises(GitHubError, match=r"HTTP 401.*GITHUB_TOKEN") as bad:
        client(fake, token="wrong").find_issue(LABEL)
    with pytest.raises(GitHubError, match=r"HTTP 404.*GITHUB_REPOSITORY \(someone/else\)"):
        client(fake, repo="someone/else").edit_issue(1, "x")
    with pytest.raises(GitHubError, match=r"dispatching nope.yml: HTTP 404"):
        client(fake).dispatch("nope.yml")
    with pytest.raises(GitHubError, match=r"HTTP 422.*refused"):
        client(fake).create_pull("main", "main", "t", "b")
    with pytest.raises(GitHubError, match=r"tag v9.9.9 is not on GitHub.*push the tag"):
        client(fake).create_release("v9.9.9", "card")
    fake.read_only = True
    with pytest.raises(GitHubError, match=r"HTTP 403.*lacks `issues: write`") as denied:
        client(fake).ensure_label(LABEL, "D93F0B", "d")
    for err in (bad.value, denied.value):
        assert "\n" not in str(err)


def test_retries_then_succeeds_and_label_exists_is_fine(fake: FakeGitHub) -> None:
    fake.fail_next(2, 502, methods=("GET",))
    repo = client(fake)
    assert repo.find_issue(LABEL) is None
    repo.ensure_label(LABEL, "D93F0B", "d")
    repo.ensure_label(LABEL, "D93F0B", "d")  # 422 already_exists: left as it is
    assert list(fake.state.labels) == [LABEL]


def test_release_of_a_pushed_tag_carries_the_card(fake: FakeGitHub) -> None:
    fake.state.tags.add("v1.2.3")
    url = client(fake).create_release("v1.2.3", "# Model card\n")
    assert url.endswith("/releases/tag/v1.2.3")
    (release,) = fake.state.releases
    assert release["tag_name"] == release["name"] == "v1.2.3"
    assert release["body"] == "# Model card\n"
    with pytest.raises(GitHubError, match=r"HTTP 422.*already_exists"):
        client(fake).create_release("v1.2.3", "again")
