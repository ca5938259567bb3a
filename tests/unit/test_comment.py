"""The comment job's artifact checks. GitHub's API cannot be reached here, so the pull request's
current head is supplied by a stand-in function; everything else is the real code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlci.review.comment import ArtifactError, verify
from tests.helpers import REPO

HEAD = "a" * 40
OTHER = "b" * 40


def artifact(tmp_path: Path, pr: object, report: str = "## report\n") -> Path:
    folder = tmp_path / "model-report"
    folder.mkdir()
    (folder / "pr.json").write_text(json.dumps(pr))
    (folder / "report.md").write_text(report)
    return folder


def heads(mapping: dict[int, str]):
    return lambda number: mapping.get(number)


def test_valid_artifact_is_accepted(tmp_path: Path) -> None:
    folder = artifact(tmp_path, {"pr_number": 7, "head_sha": HEAD}, "![roc](roc.png)\n")
    (folder / "roc.png").write_bytes(b"\x89PNG")
    number, report = verify(folder, HEAD, heads({7: HEAD}))
    assert number == 7 and report == folder / "report.md"


@pytest.mark.parametrize(
    "pr",
    [
        {"pr_number": "7", "head_sha": HEAD},
        {"pr_number": "7; rm -rf /", "head_sha": HEAD},
        {"pr_number": -1, "head_sha": HEAD},
        {"pr_number": True, "head_sha": HEAD},
        {"pr_number": 7, "head_sha": "main"},
        {"pr_number": 7},
        [7],
    ],
)
def test_malformed_pr_info_is_refused(tmp_path: Path, pr: object) -> None:
    with pytest.raises(ArtifactError):
        verify(artifact(tmp_path, pr), HEAD, heads({7: HEAD}))


def test_artifact_cannot_aim_at_another_pull_request(tmp_path: Path) -> None:
    folder = artifact(tmp_path, {"pr_number": 8, "head_sha": HEAD})
    with pytest.raises(ArtifactError, match="#8 is at"):
        verify(folder, HEAD, heads({7: HEAD, 8: OTHER}))


def test_artifact_must_be_for_the_built_commit(tmp_path: Path) -> None:
    folder = artifact(tmp_path, {"pr_number": 7, "head_sha": OTHER})
    with pytest.raises(ArtifactError, match="not the commit the workflow run built"):
        verify(folder, HEAD, heads({7: OTHER}))


@pytest.mark.parametrize("target", ["../secret.png", "/etc/passwd", "roc.svg", "missing.png"])
def test_images_must_be_pngs_inside_the_artifact(tmp_path: Path, target: str) -> None:
    folder = artifact(tmp_path, {"pr_number": 7, "head_sha": HEAD}, f"![x]({target})\n")
    (tmp_path / "secret.png").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="image"):
        verify(folder, HEAD, heads({7: HEAD}))


def test_oversized_or_linked_report_is_refused(tmp_path: Path) -> None:
    folder = artifact(tmp_path, {"pr_number": 7, "head_sha": HEAD}, "x" * 70_000)
    with pytest.raises(ArtifactError, match="larger than"):
        verify(folder, HEAD, heads({7: HEAD}))
    (folder / "report.md").unlink()
    (folder / "report.md").symlink_to(tmp_path / "elsewhere.md")
    (tmp_path / "elsewhere.md").write_text("hi")
    with pytest.raises(ArtifactError, match="not a regular file"):
        verify(folder, HEAD, heads({7: HEAD}))


def test_comment_module_needs_only_the_standard_library() -> None:
    code = (
        "import sys; sys.path.insert(0, 'src'); import mlci.review.comment; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pandas', 'numpy', 'yaml', 'pydantic', 'sklearn', 'dvc', 'bentoml'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    # -S: no site-packages at all, like the comment job's bare python3.
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pr_check_records_the_pull_request(tmp_path: Path, monkeypatch) -> None:
    from mlci.review.report import write_pr_info

    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 12, "head": {"sha": HEAD}}}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    write_pr_info(tmp_path)
    assert json.loads((tmp_path / "pr.json").read_text()) == {"pr_number": 12, "head_sha": HEAD}
