"""The comment poster's pure parts: pr.json and attachment checks, reference scanning and
rewriting, cutting a long report, Link headers. The posting itself is tested end to end against a
fake GitHub API in tests/integration/test_comment_api.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlci.github_api import next_link
from mlci.review.comment_artifact import ArtifactError, read_pr, read_report
from mlci.review.comment_body import MARKER, MAX_BODY, build_body, cut_report, units
from mlci.review.comment_links import LinkPolicy, RefusedReferenceError, classify, rewrite_report
from tests.fake_github import png_bytes
from tests.helpers import REPO

HEAD = "a" * 40
RUN = "https://github.com/o/r/actions/runs/7"
POLICY = LinkPolicy("github.com", None, frozenset({"roc.png", "plots/pr.png"}), RUN)


def artifact(tmp_path: Path, pr: object, report: str = "## report\n") -> Path:
    folder = tmp_path / "model-report"
    folder.mkdir()
    (folder / "pr.json").write_text(json.dumps(pr))
    (folder / "report.md").write_text(report)
    return folder


# --------------------------------------------------------------------------- pr.json


def test_valid_pr_info_with_attachments(tmp_path: Path) -> None:
    folder = artifact(
        tmp_path, {"pr_number": 7, "head_sha": HEAD, "attachments": ["roc.png", "plots/pr.png"]}
    )
    (folder / "roc.png").write_bytes(png_bytes())
    (folder / "plots").mkdir()
    (folder / "plots/pr.png").write_bytes(png_bytes())
    info = read_pr(folder)
    assert (info.number, info.head_sha, info.attachments) == (7, HEAD, ("roc.png", "plots/pr.png"))


def test_attachments_are_optional(tmp_path: Path) -> None:
    assert read_pr(artifact(tmp_path, {"pr_number": 7, "head_sha": HEAD})).attachments == ()


@pytest.mark.parametrize(
    "pr",
    [
        {"pr_number": "7", "head_sha": HEAD},
        {"pr_number": "7; rm -rf /", "head_sha": HEAD},
        {"pr_number": -1, "head_sha": HEAD},
        {"pr_number": True, "head_sha": HEAD},
        {"pr_number": 7, "head_sha": "main"},
        {"pr_number": 7},
        {"pr_number": 7, "head_sha": HEAD, "attachments": "roc.png"},
        {"pr_number": 7, "head_sha": HEAD, "attachments": ["../roc.png"]},
        {"pr_number": 7, "head_sha": HEAD, "attachments": ["/etc/passwd"]},
        {"pr_number": 7, "head_sha": HEAD, "attachments": ["report.md"]},
        {"pr_number": 7, "head_sha": HEAD, "attachments": ["missing.png"]},
        {"pr_number": 7, "head_sha": HEAD, "attachments": ["fake.png"]},
        [7],
    ],
)
def test_malformed_pr_info_is_refused(tmp_path: Path, pr: object) -> None:
    folder = artifact(tmp_path, pr)
    (folder / "fake.png").write_text("not a png")
    with pytest.raises(ArtifactError):
        read_pr(folder)


def test_attachment_in_a_symlinked_folder_is_refused(tmp_path: Path) -> None:
    folder = artifact(tmp_path, {"pr_number": 7, "head_sha": HEAD, "attachments": ["p/roc.png"]})
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/roc.png").write_bytes(png_bytes())
    (folder / "p").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ArtifactError, match="symlink"):
        read_pr(folder)


def test_report_must_be_a_regular_utf8_file(tmp_path: Path) -> None:
    folder = artifact(tmp_path, {"pr_number": 7, "head_sha": HEAD})
    (folder / "report.md").write_bytes(b"\xff\xfe")
    with pytest.raises(ArtifactError, match="UTF-8"):
        read_report(folder)
    (folder / "report.md").unlink()
    (folder / "report.md").symlink_to(tmp_path / "elsewhere.md")
    (tmp_path / "elsewhere.md").write_text("hi")
    with pytest.raises(ArtifactError, match="symlink"):
        read_report(folder)


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("roc.png", "roc.png"),
        ("./roc.png", "roc.png"),
        ("<roc.png>", "roc.png"),
        ("plots/pr.png", "plots/pr.png"),
        ("plots%2Fpr.png", "plots/pr.png"),
        ("#metrics", None),
        ("", None),
        ("https://github.com/o/r/pull/1", None),
        ("HTTPS://GitHub.com/o/r", None),
    ],
)
def test_allowed_targets(target: str, expected: str | None) -> None:
    assert classify(target, POLICY) == expected


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("secret.png", "not a declared attachment"),
        ("/etc/passwd", "absolute path"),
        ("&#47;etc&#47;passwd", "absolute path"),
        ("\\/etc/passwd", "absolute path"),
        ("../roc.png", "leaves the artifact"),
        ("plots/../../x.png", "leaves the artifact"),
        ("%2e%2e/x.png", "leaves the artifact"),
        ("file:///etc/passwd", "scheme file:"),
        ("http://github.com/o/r", "scheme http:"),
        ("javascript:alert(1)", "scheme javascript:"),
        ("data:image/png;base64,AAAA", "scheme data:"),
        ("//evil.example/x.png", "scheme-relative"),
        ("https://evil.example/x.png", "links outside github.com"),
        ("https://github.com.evil.example/x", "links outside github.com"),
        ("https://github.com@evil.example/x", "links outside github.com"),
        ("https://github.com:8443/x", "links outside github.com"),
        ("https://evil.example\\@github.com/", "links outside github.com"),
        ("https://github.com\\evil.example/", "backslash"),
        ("roc.png\x00", "control"),
    ],
)
def test_refused_targets(target: str, reason: str) -> None:
    with pytest.raises(RefusedReferenceError, match=reason):
        classify(target, POLICY)


@pytest.mark.parametrize(
    ("report", "kind"),
    [
        ("![x](/etc/passwd)", "image"),
        ("[x](/etc/passwd)", "link"),
        ("![plot [1]](/etc/passwd)", "image"),
        ("![a](<../x.png>)", "image"),
        ("![a](  /etc/passwd  'title')", "image"),
        ("[a](foo(bar).png)", "link"),
        ("[id]: /etc/passwd", "reference definition"),
        ("> - [id]:\n>   /etc/passwd", "reference definition"),
        ("<file:///etc/passwd>", "autolink"),
        ("see http://example.com", "URL"),
        ("see www.example.com", "URL"),
        ('<img src="/etc/passwd">', "HTML src"),
        ("<IMG\nSRC=/etc/passwd>", "HTML src"),
        ("<a href='x.txt'>x</a>", "HTML href"),
        ('<picture><source srcset="a.png 1x, /etc/passwd 2x"></picture>', "HTML srcset"),
        ("```\n![x](/etc/passwd)\n```", "image"),  # code is scanned too: refusing is safe
    ],
)
def test_every_reference_kind_is_checked(report: str, kind: str) -> None:
    with pytest.raises(RefusedReferenceError, match=f"line \\d+: {kind} "):
        rewrite_report("# report\n\n" + report + "\n", POLICY)


def test_error_names_the_line_and_target() -> None:
    with pytest.raises(RefusedReferenceError) as err:
        rewrite_report("a\nb\n![p](/etc/passwd)\n", POLICY)
    assert str(err.value) == "report.md line 3: image '/etc/passwd' is an absolute path"


def test_attachments_become_links_to_the_run() -> None:
    report = (
        "![ROC curve](roc.png)\n"
        "![](plots/pr.png)\n"
        "[the ROC data](roc.png)\n"
        "![ROC again][r]\n\n"
        "[r]: roc.png\n"
        '<img alt="ROC" src="roc.png" width="400">\n'
        "[docs](https://github.com/o/r/blob/main/README.md) and [top](#metrics)\n"
    )
    assert rewrite_report(report, POLICY) == (
        f"[ROC curve (roc.png, PNG)]({RUN})\n"
        f"[plots/pr.png (PNG)]({RUN})\n"
        f"[the ROC data]({RUN})\n"
        "[ROC again (PNG)][r]\n\n"
        f"[r]: {RUN}\n"
        f"[ROC (roc.png, PNG)]({RUN})\n"
        "[docs](https://github.com/o/r/blob/main/README.md) and [top](#metrics)\n"
    )


def test_links_to_the_github_server_pass_unchanged() -> None:
    report = (
        "- workflow run: https://github.com/o/r/actions/runs/7\n"
        "- see <https://github.com/o/r/pull/3> and https://github.com/www.example\n"
        '- <a href="https://github.com/o/r/blob/main/params.yaml">params</a>\n'
    )
    assert rewrite_report(report, POLICY) == report


def test_mermaid_and_tables_pass_unchanged() -> None:
    report = (
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        '```mermaid\nxychart-beta\n  x-axis [a, b]\n  bar [1, 2]\n  line "x" [0.1, 0.2]\n```\n'
    )
    assert rewrite_report(report, POLICY) == report


# --------------------------------------------------------------------------- cutting


def test_short_report_is_not_cut() -> None:
    assert cut_report("a\nb\n", 100) == ("a\nb\n", None)


def test_cut_closes_an_open_code_fence() -> None:
    report = "intro\n```text\n" + "".join(f"line {i}\n" for i in range(100)) + "```\nafter\n"
    cut, kept = cut_report(report, 200)
    assert kept is not None and units(cut) <= 200
    assert cut.endswith("```\n") and cut.count("```") == 2


def test_cut_never_splits_a_table_header() -> None:
    report = "intro\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    cut, kept = cut_report(report, len("intro\n\n| a | b |\n") + 3)
    assert cut == "intro\n\n" and kept == 2


def test_cut_never_leaves_half_a_mermaid_diagram() -> None:
    report = "intro\n\n```mermaid\n" + "A-->B\n" * 50 + "```\n"
    cut, _ = cut_report(report, 100)
    assert cut == "intro\n\n"


def test_cut_closes_details() -> None:
    report = "<details><summary>x</summary>\n\n" + "row\n" * 100 + "</details>\n"
    cut, _ = cut_report(report, 120)
    assert cut.endswith("</details>\n") and units(cut) <= 120


def test_body_fits_the_limit_and_says_it_was_cut() -> None:
    report = "# big\n\n| n | emoji |\n|---|---|\n" + "| 1 | 😀😀😀 |\n" * 20_000
    body = build_body(report, POLICY)
    assert body.startswith(MARKER + "\n")
    assert len(body) <= units(body) <= MAX_BODY
    assert "was cut" in body and RUN in body


def test_a_single_huge_line_still_gives_a_body() -> None:
    body = build_body("x" * 300_000, POLICY)
    assert units(body) <= MAX_BODY and "was cut" in body


# --------------------------------------------------------------------------- API helpers


def test_next_link() -> None:
    header = (
        '<https://api.github.com/repos/o/r/issues/1/comments?page=2>; rel="next", '
        '<https://api.github.com/repos/o/r/issues/1/comments?page=5>; rel="last"'
    )
    assert next_link(header) == "https://api.github.com/repos/o/r/issues/1/comments?page=2"
    assert next_link('<https://x/?page=1>; rel="prev"') is None
    assert next_link(None) is None


def test_comment_module_needs_only_the_standard_library() -> None:
    code = (
        "import sys; sys.path.insert(0, 'src'); import mlci.review.comment; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pandas', 'numpy', 'yaml', 'pydantic', 'sklearn', 'dvc', 'bentoml', 'requests'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    # -S: no site-packages at all, like the comment job's bare python3.
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dry_run_prints_the_body(tmp_path: Path) -> None:
    folder = artifact(tmp_path, {"pr_number": 7, "head_sha": HEAD}, "## hello\n")
    args = ["--dir", str(folder), "--head-sha", HEAD, "--dry-run"]
    result = subprocess.run(
        [sys.executable, "-S", "-m", "mlci.review.comment", *args],
        cwd=REPO,
        env={"PYTHONPATH": "src", "GITHUB_REPOSITORY": "o/r"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == MARKER + "\n## hello\n"


def test_pr_check_records_the_pull_request(tmp_path: Path, monkeypatch) -> None:
    from mlci.review.report import write_pr_info

    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 12, "head": {"sha": HEAD}}}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    write_pr_info(tmp_path)
    info = json.loads((tmp_path / "pr.json").read_text())
    assert (info["pr_number"], info["head_sha"]) == (12, HEAD)
    assert info.get("attachments", []) == []  # no plots in tmp_path
