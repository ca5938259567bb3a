"""What the GitHub Actions environment says about the current run (nothing when run locally)."""

from __future__ import annotations

import os


def run_url() -> str | None:
    """The web page of this workflow run, where its logs and artifacts are."""
    server, repo, run = (
        os.environ.get("GITHUB_SERVER_URL"),
        os.environ.get("GITHUB_REPOSITORY"),
        os.environ.get("GITHUB_RUN_ID"),
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None
