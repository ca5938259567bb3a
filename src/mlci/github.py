"""What the GitHub Actions environment says about the current run: its page, the pull request
that started it, links to commits (all None when run locally)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path


def run_url() -> str | None:
    """The web page of this workflow run, where its logs and artifacts are."""
    server, repo, run = (
        os.environ.get("GITHUB_SERVER_URL"),
        os.environ.get("GITHUB_REPOSITORY"),
        os.environ.get("GITHUB_RUN_ID"),
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def pull_request_event() -> dict | None:
    """The ``pull_request`` object of the event that started this run, if it is one."""
    path = os.environ.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pr = event.get("pull_request") if isinstance(event, dict) else None
    return pr if isinstance(pr, dict) else None


def commit_url(sha: str | None) -> str | None:
    server = os.environ.get("GITHUB_SERVER_URL", "").rstrip("/")
    repo = os.environ.get("GITHUB_REPOSITORY", "")
    if not sha or not server or not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        return None
    return f"{server}/{repo}/commit/{sha}"
