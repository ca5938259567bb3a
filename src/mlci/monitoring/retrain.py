"""Retraining as a pull request: re-run the pipeline (on new data, optionally) and open a pull
request with the new dvc.lock, params and reports. The pull request then goes through the same
report and gate as any other; nothing here merges or deploys.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mlci import history, run_guard
from mlci.errors import UserError

SOURCE_LINE = re.compile(r"^(\s+source:)\s*[^#\n]*?(\s*#.*)?$", re.M)
COMMITTED = ["params.yaml", "dvc.lock", "reports"]


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
    create_pr: Callable[[str, str, Path], str],
    remote: str = "origin",
    branch: str | None = None,
) -> str:
    """Commit the re-run results on a new branch, push it, open a pull request against ``base``."""
    from mlci.review import report

    changed = history.git("status", "--porcelain", "--", *COMMITTED)
    if not changed:
        return "nothing changed: no pull request"
    branch = branch or f"retrain/{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    c = report.write(f"{remote}/{base}", images=False)
    _run(["git", "switch", "-c", branch], "git switch")
    _run(["git", "add", "--", *COMMITTED], "git add")
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
    _run(["git", "push", remote, f"HEAD:refs/heads/{branch}"], "git push")
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


def github_create_pr(branch: str, base: str, body: Path) -> str:
    title = f"Retrain the model ({branch.split('/', 1)[-1]})"
    return _run(
        [
            "gh",
            "pr",
            "create",
            "--base",
            base,
            "--head",
            branch,
            "--title",
            title,
            "--body-file",
            str(body),
        ],
        "gh pr create",
    ).strip()
