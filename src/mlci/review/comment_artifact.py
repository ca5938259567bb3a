"""Read the comment poster's input, the downloaded report artifact, as untrusted data.

A pull request's code made the artifact, so only ``pr.json``, ``report.md`` and the PNG files that
``pr.json`` declares in ``attachments`` are opened: regular files inside the folder, never through
a symlink, of bounded sizes. ``pr.json`` must name a pull request and the 40-character head commit;
anything unexpected raises ``ArtifactError`` and the poster refuses to comment. Standard library
only, like every module ``mlci.review.comment`` imports.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_REPORT_BYTES = 2_000_000  # larger than this is not a report: refuse (smaller ones are cut)
MAX_PR_JSON_BYTES = 64 * 1024
MAX_ATTACHMENTS = 50
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SHA = re.compile(r"^[0-9a-f]{40}$")
ATTACHMENT_NAME = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")


class ArtifactError(Exception):
    """The artifact is not what the pull-request pipeline writes: refuse to comment."""


@dataclass(frozen=True)
class PullRequestInfo:
    number: int
    head_sha: str
    attachments: tuple[str, ...] = ()


def _read_inside(folder: Path, name: str, limit: int, what: str, read: int | None = None) -> bytes:
    """Read ``folder/name`` (at most ``read`` bytes) without following a symlink anywhere below
    ``folder``; it must be a regular file of at most ``limit`` bytes."""
    current = folder
    for part in PurePosixPath(name).parts[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            raise ArtifactError(f"{what} {name!r} is missing") from None
        if not stat.S_ISDIR(mode):
            raise ArtifactError(f"{what} {name!r}: {part!r} is a symlink or not a folder")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(folder / name, flags)
    except FileNotFoundError:
        raise ArtifactError(f"{what} {name!r} is missing") from None
    except OSError as err:  # ELOOP: the file is a symlink
        raise ArtifactError(
            f"{what} {name!r} is a symlink or unreadable ({err.strerror})"
        ) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactError(f"{what} {name!r} is not a regular file")
        if info.st_size > limit:
            raise ArtifactError(f"{what} {name!r} is larger than {limit:,} bytes")
        data = handle.read(limit + 1 if read is None else read)
    if len(data) > limit:
        raise ArtifactError(f"{what} {name!r} is larger than {limit:,} bytes")
    return data


def _check_attachment_name(name: object) -> str:
    if (
        not isinstance(name, str)
        or len(name) > 200
        or not ATTACHMENT_NAME.match(name)
        or any(part in (".", "..") for part in name.split("/"))
        or not name.lower().endswith(".png")
    ):
        raise ArtifactError(
            f"pr.json: attachment {str(name)[:80]!r} is not a relative .png path inside the "
            "artifact (letters, digits, '_', '-', '.', '/'; no '..')"
        )
    return name


def read_pr(folder: Path) -> PullRequestInfo:
    """Parse and check ``pr.json``; the declared attachments must be PNG files in ``folder``."""
    raw = _read_inside(folder, "pr.json", MAX_PR_JSON_BYTES, "artifact file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ArtifactError(f"pr.json is not JSON ({err})") from None
    if not isinstance(data, dict):
        raise ArtifactError("pr.json: expected a JSON object")
    number, head = data.get("pr_number"), data.get("head_sha")
    if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 10**9:
        raise ArtifactError(f"pr.json: pr_number must be a positive integer, got {number!r:.40}")
    if not isinstance(head, str) or not SHA.match(head):
        raise ArtifactError("pr.json: head_sha must be a 40-character hex commit id")
    attachments = data.get("attachments", [])
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise ArtifactError(f"pr.json: attachments must be a list of at most {MAX_ATTACHMENTS}")
    names = tuple(dict.fromkeys(_check_attachment_name(a) for a in attachments))
    for name in names:
        head_bytes = _read_inside(folder, name, MAX_ATTACHMENT_BYTES, "attachment", read=8)
        if head_bytes != PNG_MAGIC:
            raise ArtifactError(f"attachment {name!r} is not a PNG file")
    return PullRequestInfo(number, head, names)


ARTIFACT_URL_FILE = "artifact-url.txt"  # written by the pipeline after uploading the artifact


def read_artifact_url(folder: Path, server: str, repo: str, run_id: str) -> str | None:
    """The ``model-report`` artifact's own address, if the pipeline recorded it (the
    ``artifact-url`` output of actions/upload-artifact, in ``artifact-url.txt``); it must be an
    artifact of the triggering run on this server, or it is ignored (None: link the run)."""
    if not run_id:
        return None
    try:
        raw = _read_inside(folder, ARTIFACT_URL_FILE, 1024, "artifact file")
    except ArtifactError:
        return None
    url = raw.decode("utf-8", "replace").strip()
    run = f"{re.escape(server)}/{re.escape(repo)}/actions/runs/{re.escape(run_id)}"
    return url if re.fullmatch(rf"{run}/artifacts/[0-9]{{1,20}}", url) else None


def read_report(folder: Path) -> str:
    raw = _read_inside(folder, "report.md", MAX_REPORT_BYTES, "artifact file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ArtifactError(
            f"report.md is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
