"""Post the pull-request report as one CML comment, from the `workflow_run` job.

This runs with write access to pull requests, on an artifact made by a pull request's code, so
it treats the artifact as untrusted data:

* it needs the standard library only (``python3 -m mlci.review.comment``; nothing installed, nothing
  from the pull request imported or executed);
* the pull-request number must be a plain positive integer, and the pull request it names must
  have the head commit that the triggering run built (so an artifact cannot aim the comment at
  another pull request);
* the report must be a file of bounded size in the artifact folder; images are only the PNGs
  the report names, also inside that folder.

``cml comment update --watermark-title`` then edits our earlier comment instead of adding one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

WATERMARK = "mlci model report"
MAX_REPORT_BYTES = 60_000  # GitHub's comment limit is 65,536 characters
SHA = re.compile(r"^[0-9a-f]{40}$")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


class ArtifactError(Exception):
    """The artifact is not what the pull-request pipeline writes: refuse to comment."""


def read_pr(folder: Path) -> dict:
    path = folder / "pr.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8")[:4096])
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{path}: missing or not JSON ({err})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    number, head = data.get("pr_number"), data.get("head_sha")
    if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 10**9:
        raise ArtifactError(f"{path}: pr_number must be a positive integer, got {number!r}")
    if not isinstance(head, str) or not SHA.match(head):
        raise ArtifactError(f"{path}: head_sha must be a 40-character hex commit id")
    return {"pr_number": number, "head_sha": head}


def check_report(folder: Path) -> Path:
    report = folder / "report.md"
    if not report.is_file() or report.is_symlink():
        raise ArtifactError(f"{report}: missing or not a regular file")
    if report.stat().st_size > MAX_REPORT_BYTES:
        raise ArtifactError(f"{report}: larger than {MAX_REPORT_BYTES} bytes")
    root = folder.resolve()
    for target in IMAGE.findall(report.read_text(encoding="utf-8")):
        image = (folder / target).resolve()
        if not target.endswith(".png") or root not in image.parents or not image.is_file():
            raise ArtifactError(f"{report}: image {target!r} is not a PNG inside the artifact")
    return report


def verify(
    folder: Path, run_head_sha: str, pr_head_sha: Callable[[int], str | None]
) -> tuple[int, Path]:
    """Return (pull-request number, report path), or raise ArtifactError."""
    pr = read_pr(folder)
    if pr["head_sha"] != run_head_sha:
        raise ArtifactError("the artifact's head_sha is not the commit the workflow run built")
    actual = pr_head_sha(pr["pr_number"])
    if actual != run_head_sha:
        raise ArtifactError(
            f"pull request #{pr['pr_number']} is at {actual}, not at the built commit "
            f"{run_head_sha} (a newer push supersedes this run, or the number is wrong)"
        )
    return pr["pr_number"], check_report(folder)


def github_pr_head(number: int) -> str | None:
    repo = os.environ["GITHUB_REPOSITORY"]
    out = subprocess.run(
        ["gh", "api", f"repos/{repo}/pulls/{number}", "--jq", ".head.sha"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() if out.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlci.review.comment", description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="downloaded artifact folder")
    parser.add_argument("--head-sha", required=True, help="workflow_run.head_sha")
    parser.add_argument("--dry-run", action="store_true", help="verify only, do not post")
    args = parser.parse_args(argv)
    try:
        number, report = verify(args.dir, args.head_sha, github_pr_head)
    except ArtifactError as err:
        print(f"error: refusing to comment: {err}", file=sys.stderr)
        return 2
    command = [
        "cml",
        "comment",
        "update",
        f"--target=pr/{number}",
        f"--watermark-title={WATERMARK}",
        report.name,
    ]
    print(" ".join(command))
    if args.dry_run:
        return 0
    if shutil.which("cml") is None:
        print("error: cml not found (the workflow installs it with setup-cml)", file=sys.stderr)
        return 2
    os.environ.setdefault("ITERATIVE_DO_NOT_TRACK", "1")
    # Run from the artifact folder so the report's relative image paths resolve.
    return subprocess.run(command, cwd=report.parent).returncode


if __name__ == "__main__":
    sys.exit(main())
