"""The comment job end to end: ``make comment`` as a subprocess, as the workflow runs it (the
checkout as working directory, the downloaded artifact elsewhere, a bare python3 and a minimal
environment), posting over real HTTPS to a fake GitHub API. Assertions are on the requests the
fake recorded."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.fake_github import (
    BOT,
    REPOSITORY,
    SERVER_URL,
    FakeGitHub,
    png_bytes,
    run_make_comment,
    write_sample_artifact,
)
from tests.helpers import REPO

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("make") is None,
    reason="needs the openssl and make command lines",
)

MARKER = "<!-- mlci-model-report -->"
HEAD = "3f" * 20
NEWER = "9e" * 20
PR = 12
RUN_URL = f"{SERVER_URL}/{REPOSITORY}/actions/runs/4242"


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture
def fake(tls_dir: Path):
    with FakeGitHub(tls_dir) as server:
        server.pulls[PR] = HEAD
        yield server


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return write_sample_artifact(tmp_path / "runner-temp" / "model-report", HEAD, PR)


def set_report(folder: Path, text: str, attachments: list[str] | None = None) -> None:
    (folder / "report.md").write_text(text, encoding="utf-8")
    if attachments is not None:
        info = json.loads((folder / "pr.json").read_text())
        info["attachments"] = attachments
        (folder / "pr.json").write_text(json.dumps(info))


def one_line_error(result) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert len(errors[0]) < 600, errors[0]
    return errors[0]


# --------------------------------------------------------------------------- posting


def test_first_run_posts_one_comment_with_the_marker(fake: FakeGitHub, artifact: Path) -> None:
    result = run_make_comment(fake, artifact, HEAD)
    assert result.returncode == 0, result.stderr
    assert "posted the report on pull request #12" in result.stdout
    methods = [(r.method, r.path) for r in fake.requests]
    assert methods[0] == ("GET", f"/repos/{REPOSITORY}/pulls/{PR}")
    assert [r for r in fake.writes] == [r for r in fake.requests if r.method == "POST"]
    (post,) = fake.writes
    assert post.path == f"/repos/{REPOSITORY}/issues/{PR}/comments"
    assert post.headers["authorization"] == f"Bearer {fake.token}"
    body = post.body["body"]
    assert body.startswith(MARKER + "\n")
    assert "Model gate FAILED" in body
    # the plots are links to the run (its artifact holds them), never inline images
    assert f"[ROC curves (roc.png, PNG)]({RUN_URL})" in body
    assert "![" not in body
    assert fake.bodies(PR) == [body]


def test_the_artifact_itself_is_linked_when_the_pipeline_recorded_its_address(
    fake: FakeGitHub, artifact: Path
) -> None:
    """`make report-link` (after upload-artifact) writes artifact-url.txt; the comment job
    downloads it beside the report: every attachment then links the artifact itself. An
    address that is not an artifact of the triggering run is ignored (the run is linked)."""
    artifact_url = f"{RUN_URL}/artifacts/987654"
    checkout = artifact.parent / "checkout"
    checkout.mkdir()
    command = ["make", "--no-print-directory", "-f", str(REPO / "Makefile"), "report-link"]
    made = subprocess.run(
        [*command, f"ARTIFACT_URL={artifact_url}"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    written = checkout / "reports/pr-link/artifact-url.txt"
    shutil.copy2(written, artifact / "artifact-url.txt")  # what the download step does
    result = run_make_comment(fake, artifact, HEAD)
    assert result.returncode == 0, result.stderr
    body = fake.writes[-1].body["body"]
    assert f"[ROC curves (roc.png, PNG)]({artifact_url})" in body
    assert f"({RUN_URL})" not in body.replace(f"({artifact_url})", "")

    for wrong in (
        "https://github.com/other/repo/actions/runs/4242/artifacts/1",
        f"{RUN_URL.rsplit('/', 1)[0]}/999/artifacts/1",  # another run
        f"{artifact_url}?x=1",
        "https://evil.example/artifacts/1",
    ):
        (artifact / "artifact-url.txt").write_text(wrong)
        assert run_make_comment(fake, artifact, HEAD).returncode == 0
        body = fake.writes[-1].body["body"]
        assert f"[ROC curves (roc.png, PNG)]({RUN_URL})" in body and wrong not in body


def test_second_run_updates_the_same_comment(fake: FakeGitHub, artifact: Path) -> None:
    assert run_make_comment(fake, artifact, HEAD).returncode == 0
    (first,) = fake.comments[PR]
    set_report(artifact, "## ✅ Model gate passed\n\nall good\n", attachments=[])
    fake.requests.clear()
    result = run_make_comment(fake, artifact, HEAD)
    assert result.returncode == 0, result.stderr
    assert "updated the report" in result.stdout
    (patch,) = fake.writes
    assert patch.method == "PATCH"
    assert patch.path == f"/repos/{REPOSITORY}/issues/comments/{first['id']}"
    assert len(fake.comments[PR]) == 1
    assert fake.comments[PR][0]["body"] == MARKER + "\n## ✅ Model gate passed\n\nall good\n"


def test_our_comment_on_page_two_is_found(tls_dir: Path, artifact: Path) -> None:
    with FakeGitHub(tls_dir, max_per_page=30) as fake:
        fake.pulls[PR] = HEAD
        # someone pasted our marker on page 1: not ours (they could edit it later), ignored
        fake.add_comment(PR, MARKER + "\nfake report: ✅ passed", login="mallory")
        for i in range(44):
            fake.add_comment(PR, f"review comment {i}")
        ours = fake.add_comment(PR, MARKER + "\nold report", login=BOT, kind="Bot")
        fake.add_comment(PR, "a later comment")
        result = run_make_comment(fake, artifact, HEAD)
        assert result.returncode == 0, result.stderr
        (patch,) = fake.writes
        assert patch.method == "PATCH"
        assert patch.path.endswith(f"/issues/comments/{ours['id']}")
        listings = [r for r in fake.requests if r.path.endswith(f"/issues/{PR}/comments")]
        assert [r.query.get("page") for r in listings] == [None, ["2"]]
        assert listings[0].query["per_page"] == ["100"]
        assert fake.comments[PR][0]["body"].startswith(MARKER + "\nfake report")


def test_next_link_to_another_host_is_not_followed(tls_dir: Path, artifact: Path) -> None:
    with FakeGitHub(tls_dir, max_per_page=30) as fake:
        fake.pulls[PR] = HEAD
        for i in range(40):
            fake.add_comment(PR, f"comment {i}")
        fake.next_link_base = "https://attacker.example"
        result = run_make_comment(fake, artifact, HEAD)
        assert "another host" in one_line_error(result)
        assert fake.writes == []


def test_enterprise_server_api_prefix(tls_dir: Path, artifact: Path) -> None:
    with FakeGitHub(tls_dir, prefix="/api/v3") as fake:
        fake.pulls[PR] = HEAD
        result = run_make_comment(fake, artifact, HEAD)
        assert result.returncode == 0, result.stderr
        assert [r.method for r in fake.writes] == ["POST"]


def test_a_200_kb_report_is_cut_and_posted(fake: FakeGitHub, artifact: Path) -> None:
    rows = [f"| feature_{i} | {i * 0.001:.4f} | {i * 0.002:.4f} |" for i in range(2_500)]
    code = [f"step {i}: loss {1 / (i + 1):.6f}" for i in range(2_500)]
    report = "\n".join(
        [
            "## ❌ Model gate FAILED",
            "",
            "| feature | base | this branch |",
            "|---|---:|---:|",
            *rows,
            "",
            "```text",
            *code,
            "```",
            "",
            "| tail | table |",
            "|---|---|",
            *rows,
        ]
    )
    assert len(report.encode()) > 200_000
    set_report(artifact, report, attachments=[])
    result = run_make_comment(fake, artifact, HEAD)
    assert result.returncode == 0, result.stderr
    (post,) = fake.writes
    body = post.body["body"]
    assert len(body) <= 65_536
    assert body.startswith(MARKER)
    assert "was cut" in body and RUN_URL in body
    fence_lines = [line for line in body.splitlines() if line.startswith("```")]
    assert len(fence_lines) % 2 == 0, "a code fence was left open"


# --------------------------------------------------------------------------- untrusted artifact


def _outside(folder: Path) -> Path:
    secret = folder.parent / "secret.png"
    secret.write_bytes(png_bytes())
    return secret


MALICIOUS = {
    "image": ("![plot](secret.png)\n", "image 'secret.png'"),
    "link": ("[notes](notes.txt)\n", "link 'notes.txt'"),
    "reference definition": (
        "![the plot][p]\n\n[p]: /etc/passwd\n",
        "reference definition '/etc/passwd'",
    ),
    "bracketed alt": ("![plot [1]](/etc/passwd)\n", "image '/etc/passwd'"),
    "html src": ('<img alt="x" src="/etc/passwd">\n', "HTML src '/etc/passwd'"),
    "html href": ("<a href='notes.txt'>notes</a>\n", "HTML href 'notes.txt'"),
    "dot dot": ("![x](../secret.png)\n", "leaves the artifact"),
    "absolute path": ("![x](/etc/passwd)\n", "is an absolute path"),
    "file url": ("[x](file:///etc/passwd)\n", "scheme file:"),
    "file autolink": ("see <file:///etc/passwd>\n", "autolink"),
    "http url": ("see http://example.com/x\n", "scheme http:"),
    "https elsewhere": ("![t](https://tracker.example/p.png)\n", "links outside github.com"),
    "encoded dot dot": ("![x](%2e%2e/secret.png)\n", "leaves the artifact"),
    "entity in html": ('<img src="&#47;etc&#47;passwd">\n', "is an absolute path"),
}


@pytest.mark.parametrize("case", MALICIOUS, ids=list(MALICIOUS))
def test_malicious_report_is_refused_before_any_request(
    fake: FakeGitHub, artifact: Path, case: str
) -> None:
    report, expected = MALICIOUS[case]
    _outside(artifact)
    (artifact / "notes.txt").write_text("private\n")
    set_report(artifact, "## report\n\n" + report)
    error = one_line_error(run_make_comment(fake, artifact, HEAD))
    assert error.startswith("error: refusing to comment: report.md line")
    assert expected in error
    assert fake.requests == [], "nothing may reach GitHub"


def test_symlinked_attachment_is_refused(fake: FakeGitHub, artifact: Path) -> None:
    (artifact / "roc.png").unlink()
    (artifact / "roc.png").symlink_to("/etc/passwd")
    error = one_line_error(run_make_comment(fake, artifact, HEAD))
    assert "attachment 'roc.png' is a symlink" in error
    assert fake.requests == []


def test_symlinked_report_is_refused(fake: FakeGitHub, artifact: Path) -> None:
    (artifact / "report.md").unlink()
    (artifact / "report.md").symlink_to("/etc/passwd")
    assert "'report.md' is a symlink" in one_line_error(run_make_comment(fake, artifact, HEAD))
    assert fake.requests == []


@pytest.mark.parametrize("name", ["../secret.png", "/etc/passwd", "notes.txt", "x/../roc.png"])
def test_attachment_outside_or_not_png_is_refused(
    fake: FakeGitHub, artifact: Path, name: str
) -> None:
    _outside(artifact)
    set_report(artifact, "## report\n", attachments=[name])
    assert "pr.json: attachment" in one_line_error(run_make_comment(fake, artifact, HEAD))
    assert fake.requests == []


def test_artifact_for_another_commit_is_refused(fake: FakeGitHub, artifact: Path) -> None:
    error = one_line_error(run_make_comment(fake, artifact, NEWER))
    assert "head_sha is not the commit" in error
    assert fake.requests == []


# --------------------------------------------------------------------------- GitHub's answers


def test_read_only_token_is_one_clear_line(fake: FakeGitHub, artifact: Path) -> None:
    fake.read_only = True
    result = run_make_comment(fake, artifact, HEAD)
    error = one_line_error(result)
    assert error.startswith("error: the token cannot write to pull request #12")
    assert "HTTP 403: Resource not accessible by integration" in error
    assert 'see docs/pull-requests.md, "Pull-request comments"' in error
    assert "Error 1" in result.stderr  # make passes on the poster's exit code 1 as 2
    assert fake.comments.get(PR, []) == []


def test_bad_token_is_one_clear_line(fake: FakeGitHub, artifact: Path) -> None:
    result = run_make_comment(fake, artifact, HEAD, GITHUB_TOKEN="wrong")
    assert "HTTP 401: Bad credentials" in one_line_error(result)
    assert "wrong" not in result.stderr and fake.writes == []


def test_a_newer_push_supersedes_the_run(fake: FakeGitHub, artifact: Path) -> None:
    fake.pulls[PR] = NEWER
    result = run_make_comment(fake, artifact, HEAD)
    assert result.returncode == 0, result.stderr
    assert "a newer push supersedes this run" in result.stdout
    assert fake.writes == []


def test_bad_gateway_is_retried_and_posted_once(fake: FakeGitHub, artifact: Path) -> None:
    fake.fail_next(1, 502)
    result = run_make_comment(fake, artifact, HEAD)
    assert result.returncode == 0, result.stderr
    pulls = [r for r in fake.requests if r.path.endswith(f"/pulls/{PR}")]
    assert len(pulls) == 2
    assert [r.method for r in fake.writes] == ["POST"]
    assert len(fake.comments[PR]) == 1


def test_failed_post_is_not_repeated_blindly(fake: FakeGitHub, artifact: Path) -> None:
    fake.fail_next(1, 502, methods=("POST",))
    result = run_make_comment(fake, artifact, HEAD)
    assert result.returncode == 0, result.stderr
    assert [r.method for r in fake.writes] == ["POST", "POST"]
    listings = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/comments")]
    assert len(listings) == 2, "the comments are listed again before posting again"
    assert len(fake.comments[PR]) == 1


def test_secondary_rate_limit_is_retried(fake: FakeGitHub, artifact: Path) -> None:
    fake.fail_next(2, 403, headers={"Retry-After": "0"})
    fake.fail_next(1, 429, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"})
    result = run_make_comment(fake, artifact, HEAD)
    assert result.returncode == 0, result.stderr
    assert len(fake.comments[PR]) == 1


def test_rate_limited_post_is_retried_after_listing_again(fake: FakeGitHub, artifact: Path) -> None:
    fake.fail_next(1, 403, headers={"Retry-After": "0"}, methods=("POST",))
    result = run_make_comment(fake, artifact, HEAD)
    assert result.returncode == 0, result.stderr
    assert [r.method for r in fake.writes] == ["POST", "POST"]
    assert len(fake.comments[PR]) == 1


def test_persistent_outage_gives_up_with_one_line(fake: FakeGitHub, artifact: Path) -> None:
    fake.fail_next(10, 503)
    error = one_line_error(run_make_comment(fake, artifact, HEAD))
    assert "HTTP 503" in error
    assert len(fake.requests) == 5  # bounded
    assert fake.writes == []


def test_unreachable_api_is_one_line(fake: FakeGitHub, artifact: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_make_comment(fake, artifact, HEAD, GITHUB_API_URL=f"https://127.0.0.1:{port}")
    assert "cannot reach 127.0.0.1" in one_line_error(result)


def test_the_certificate_is_verified(fake: FakeGitHub, artifact: Path) -> None:
    result = run_make_comment(fake, artifact, HEAD, SSL_CERT_FILE="/nonexistent/ca.pem")
    assert "SSL_CERT_FILE" in one_line_error(result)
    env_without_ca = {"SSL_CERT_FILE": None}
    result = run_make_comment(fake, artifact, HEAD, **env_without_ca)
    assert "CERTIFICATE_VERIFY_FAILED" in one_line_error(result).upper().replace(" ", "_")
    assert fake.requests == []


def test_other_ca_variables_are_honoured(fake: FakeGitHub, artifact: Path) -> None:
    result = run_make_comment(
        fake, artifact, HEAD, SSL_CERT_FILE=None, REQUESTS_CA_BUNDLE=str(fake.cert)
    )
    assert result.returncode == 0, result.stderr
