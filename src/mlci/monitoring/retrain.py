"""Retraining as a pull request: re-run the pipeline (on new data, optionally) and open a pull
request with every file the project commits (``paths.committed``: dvc.lock, params, reports,
models/model_meta.json...), through the project's GitHub client (no ``gh``). The pull request
then goes through the same report and gate as any other; nothing here merges or deploys.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mlci import github_repo, history, paths, run_guard
from mlci.errors import UserError
from mlci.github import run_url as github_run_url

SOURCE_LINE = re.compile(r"^(\s+source:)\s*[^#\n]*?(\s*#.*)?$", re.M)
# Pushing over https with the API token, read from the environment by git's credential helper
# protocol (never on a command line, where other processes could read it); no `gh` needed.
CREDENTIALS = (
    '!f() { test "$1" = get || exit 0; echo username=x-access-token; '
    'echo "password=${GITHUB_TOKEN:-$GH_TOKEN}"; }; f'
)


def set_data_source(text: str, source: str) -> str:
    """Point ``data.source`` at ``source`` in params.yaml text, keeping its comments."""
    data_at = re.search(r"^data:\s*$", text, re.M)
    if not data_at:
        raise UserError("params.yaml: no `data:` section")
    match = SOURCE_LINE.search(text, data_at.end())
    if not match:
        raise UserError("params.yaml: no `source:` under `data:`")
    quoted = json.dumps(source)  # a JSON string is a valid YAML scalar
    line = f"{match.group(1)} {quoted}{match.group(2) or ''}"
    return text[: match.start()] + line + text[match.end() :]


def _run(cmd: list[str], what: str) -> str:
    # Tied: if `mlci retrain` is stopped, its `dvc repro` (and the stages under it) stop too.
    result = run_guard.run_tied(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"{what} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout


def retrain(source: str | None) -> None:
    params = Path("params.yaml")
    if source:
        params.write_text(set_data_source(params.read_text(), source))
    _run(["dvc", "repro"], "dvc repro")


def open_pull_request(
    base: str,
    create_pr: Callable[[str, str, Path], str] | None = None,
    remote: str = "origin",
    branch: str | None = None,
) -> str:
    """Commit the re-run results (every path the project commits, ``paths.committed``) on a new
    branch, push it, open a pull request against ``base`` (default: through the project's
    GitHub client, :func:`github_create_pr`)."""
    from mlci.review import report

    if create_pr is None:
        repo = github_repo.connect(github_run_url())  # a missing token stops before any work
        create_pr = functools.partial(github_create_pr, repo)
    changed = history.git("status", "--porcelain", "--", *paths.committed())
    if not changed:
        return "nothing changed: no pull request"
    branch = branch or f"retrain/{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    c = report.write(f"{remote}/{base}", images=False)
    _run(["git", "switch", "-c", branch], "git switch")
    _run(["git", "add", "-A", "--", *paths.committed()], "git add")
    _run(
        [
            "git",
            "-c",
            "user.name=mlci-retrain[bot]",
            "-c",
            "user.email=mlci-retrain@users.noreply.github.com",
            "commit",
            "-m",
            f"Retrain: {c.verdict.summary[:60]}",
        ],
        "git commit",
    )
    subprocess.run(["dvc", "push"], capture_output=True, text=True)  # no remote: nothing to do
    push = ["git", "-c", "credential.helper=", "-c", f"credential.helper={CREDENTIALS}", "push"]
    _run([*push, remote, f"HEAD:refs/heads/{branch}"], "git push")
    body = Path("reports/pr/retrain_body.md")
    body.write_text(
        "Automated retraining. The model gate runs on this pull request like on any other;\n"
        "merge only if it passes.\n\n"
        "> A pull request opened with the workflow's GITHUB_TOKEN does not start other\n"
        "> workflows: close and reopen it (or push any commit) to run the checks. The required\n"
        "> `model gate` check blocks the merge until then.\n\n"
        + Path("reports/pr/report.md").read_text()
    )
    return create_pr(branch, base, body)


def github_create_pr(repo: github_repo.Repo, branch: str, base: str, body: Path) -> str:
    title = f"Retrain the model ({branch.split('/', 1)[-1]})"
    url = repo.create_pull(branch, base, title, body.read_text(encoding="utf-8"))
    return f"opened {url}"
