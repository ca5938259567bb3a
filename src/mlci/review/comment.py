"""Post the pull-request report as ONE comment through GitHub's REST API (standard library only).

Runs in the ``workflow_run`` job that holds a token able to write to pull requests, on an artifact
that a pull request's code made. So:

* nothing is installed and nothing from the pull request is imported or run: ``PYTHONPATH=src
  python3 -m mlci.review.comment`` from the default branch's checkout, standard library only;
* the artifact is untrusted data. Only ``report.md``, ``pr.json`` and the PNG files that
  ``pr.json`` declares in ``attachments`` are opened (regular files inside the folder, never
  through a symlink, bounded sizes). Every reference in the markdown (images, links, reference
  definitions, autolinks, bare URLs, HTML ``src``/``href``/... attributes) must be an in-page
  anchor, an https link to the GitHub server itself, or a declared attachment; anything else
  refuses the whole comment. Attachments are not shown inline (nothing is uploaded anywhere):
  their references become links to the ``model-report`` artifact itself when the pipeline
  recorded its address (``artifact-url.txt``, checked to be an artifact of the triggering run),
  else to the workflow run, whose artifact holds them;
* the pull request named in ``pr.json`` must currently have the head commit the triggering run
  built; if a newer push moved it, nothing is posted (that push has its own run) and the exit
  code is 0;
* the comment is found by a hidden marker on every page of the pull request's comments, and only
  if the identity we post as wrote it (``MLCI_COMMENT_AUTHOR``, default ``github-actions[bot]``):
  anyone can paste the marker into a comment they can later edit;
* the body never exceeds GitHub's 65,536-character limit: a longer report is cut at a line that
  leaves no open code fence or half table, with a note linking to the full report;
* failures are one line on stderr (no traceback): exit 1 for GitHub or network errors, 2 for a
  refused artifact or a usage error.

The parts, each standard library only and importing nothing above it: ``comment_artifact``
reads the artifact, ``comment_links`` checks and rewrites its references, ``comment_body`` builds
the bounded body and ``github_api`` talks to GitHub; this module is the command line.

Environment: ``GITHUB_TOKEN`` (or ``GH_TOKEN``), ``GITHUB_REPOSITORY``, ``GITHUB_API_URL``
(default https://api.github.com; GitHub Enterprise Server: https://HOST/api/v3),
``GITHUB_SERVER_URL`` (default https://github.com), CA bundles from ``SSL_CERT_FILE``,
``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``; ``MLCI_COMMENT_RETRY_DELAY`` (seconds, default 1) is
the first retry's back-off.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import urllib.parse
from pathlib import Path

from mlci.github_api import ApiError, GitHub, ssl_context
from mlci.review.comment_artifact import (
    SHA,
    ArtifactError,
    read_artifact_url,
    read_pr,
    read_report,
)
from mlci.review.comment_body import MARKER, build_body
from mlci.review.comment_links import LinkPolicy

DEFAULT_AUTHOR = "github-actions[bot]"
DOCS_HINT = 'see docs/pull-requests.md, "Pull-request comments"'
REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _server(env: dict[str, str]) -> tuple[str, str, int | None]:
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    parts = urllib.parse.urlsplit(server)
    if parts.scheme != "https" or not parts.hostname:
        raise ArtifactError(f"GITHUB_SERVER_URL must be an https URL, got {server!r}")
    return server, parts.hostname.lower(), parts.port


def run(args: argparse.Namespace, env: dict[str, str]) -> int:
    repo = env.get("GITHUB_REPOSITORY", "")
    if not REPO_NAME.match(repo):
        return _fail(f"GITHUB_REPOSITORY must be owner/name, got {repo!r:.80}", 2)
    if not SHA.match(args.head_sha or ""):
        return _fail("--head-sha must be the 40-character commit the triggering run built", 2)
    if args.run_id and not args.run_id.isdigit():
        return _fail(f"--run-id must be a number, got {args.run_id!r:.40}", 2)
    folder: Path = args.dir
    try:
        server, host, port = _server(env)
        if not folder.is_dir():
            raise ArtifactError(f"{folder} is not a folder (the downloaded artifact)")
        pr = read_pr(folder)
        if pr.head_sha != args.head_sha:
            raise ArtifactError("pr.json's head_sha is not the commit the triggering run built")
        if args.run_id:
            run_url = f"{server}/{repo}/actions/runs/{args.run_id}"
        else:
            run_url = f"{server}/{repo}/pull/{pr.number}/checks"
        artifact_url = read_artifact_url(folder, server, repo, args.run_id)
        policy = LinkPolicy(host, port, frozenset(pr.attachments), run_url, artifact_url)
        body = build_body(read_report(folder), policy)
    except ArtifactError as err:
        return _fail(f"refusing to comment: {err}", 2)
    if args.dry_run:
        sys.stdout.write(body)
        return 0

    token = env.get("GITHUB_TOKEN") or env.get("GH_TOKEN")
    if not token:
        return _fail("set GITHUB_TOKEN (or GH_TOKEN) to a token that may comment", 2)
    author = env.get("MLCI_COMMENT_AUTHOR") or DEFAULT_AUTHOR
    try:
        base_delay = float(env.get("MLCI_COMMENT_RETRY_DELAY") or 1.0)
    except ValueError:
        return _fail("MLCI_COMMENT_RETRY_DELAY must be a number of seconds", 2)
    number = pr.number
    stage = "read"
    try:
        github = GitHub(
            env.get("GITHUB_API_URL") or "https://api.github.com",
            token,
            ssl_context(env),
            base_delay=base_delay,
        )
        head = github.pull_head(repo, number)
        if head != args.head_sha:
            print(
                f"pull request #{number} is now at {str(head)[:12]}, not at {args.head_sha[:12]} "
                "that this run built: a newer push supersedes this run (it posts its own "
                "report); nothing posted"
            )
            return 0
        stage = "write"
        verb, url = github.upsert(repo, number, body, author, MARKER)
    except ApiError as err:
        if err.status in (401, 403, 404) and stage == "write":
            return _fail(
                f"the token cannot write to pull request #{number} of {repo} ({err}): "
                f"a fork's token, or the job lacks pull-requests: write? {DOCS_HINT}",
                1,
            )
        if err.status in (401, 403, 404):
            return _fail(
                f"cannot read pull request #{number} of {repo} ({err}): check the token, "
                f"GITHUB_REPOSITORY and GITHUB_API_URL; {DOCS_HINT}",
                1,
            )
        return _fail(f"GitHub API: {err}" if err.status else str(err), 1)
    print(f"{verb} the report on pull request #{number}: {url}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m mlci.review.comment",
        description="Post the pull-request report artifact as one pull-request comment.",
    )
    parser.add_argument("--dir", type=Path, required=True, help="the downloaded artifact folder")
    parser.add_argument("--head-sha", required=True, help="the commit the triggering run built")
    parser.add_argument("--run-id", default="", help="the triggering run's id (links to it)")
    parser.add_argument(
        "--dry-run", action="store_true", help="check the artifact, print the body, post nothing"
    )
    args = parser.parse_args(argv)
    try:
        return run(args, dict(os.environ))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
