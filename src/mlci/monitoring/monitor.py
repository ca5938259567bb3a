"""The scheduled monitoring check: fetch the current batch, run drift and staleness, and keep ONE
GitHub issue up to date with the findings (never one issue per run).

``mlci monitor --current SOURCE [--publish] [--dispatch-retrain]`` is what the monitor workflow
calls; without ``--publish`` it only writes ``reports/monitor/report.md`` and exits 0 (clear),
1 (drift or staleness found) or 3 (not enough data for a drift verdict). GitHub is written to
through the project's one client (:mod:`mlci.github_repo`; no ``gh`` needed).
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlci import files, github_repo, paths
from mlci.config import Params
from mlci.errors import UserError
from mlci.github import run_url as github_run_url
from mlci.github_repo import Repo

OUT_DIR = Path("reports/monitor")
FETCHED = Path("data/monitor")
LABEL = "model-monitoring"
TITLE = "Model monitoring: drift or staleness found"
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def fetch(source: str, dest: Path = FETCHED) -> Path:
    """A local path is used as it is; a URL (s3://, gs://, https://, ...) is copied locally."""
    if not _URL.match(source):
        path = Path(source)
        if not path.exists():
            raise UserError(f"current batch {source!r}: no such file or folder")
        return path
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(source)
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True, exist_ok=True)
        if fs.isdir(root):
            fs.get(root.rstrip("/") + "/", str(dest), recursive=True)
            return dest
        target = dest / Path(root).name
        fs.get(root, str(target))
        return target
    except (OSError, ValueError, ImportError) as err:
        raise UserError(f"current batch {source!r}: cannot fetch it: {err}") from None


def check(params: Params, current: Path) -> dict[str, Any]:
    from mlci.monitoring import drift, model_age

    drift_report = drift.run(params, current, paths.TRAIN, OUT_DIR / "drift")
    age = model_age.staleness(params.monitor)
    found = []
    if drift_report["status"] == "drift":
        found.append("drift")
    if age["stale"]:
        found.append("stale model")
    status = "found" if found else drift_report["status"]
    body = "\n".join(
        [
            f"## Model monitoring: {', '.join(found) if found else 'clear'}",
            "",
            f"Checked {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
            + (f" in {url}" if (url := github_run_url()) else "")
            + ".",
            "",
            f"**Model age**: {model_age.summary_text(age)}",
            "",
            (OUT_DIR / "drift" / "drift.md").read_text(encoding="utf-8"),
        ]
    )
    result = {"status": status, "found": found, "drift": drift_report["status"], "age": age}
    files.write_text(OUT_DIR / "report.md", body)
    files.write_json(OUT_DIR / "result.json", result)
    return result


def publish(result: dict[str, Any], body: str, repo: Repo) -> str:
    """Open or update the one monitoring issue (the oldest open one labelled ``LABEL``, found on
    any page). A clear run comments on an open issue instead of opening another."""
    existing = repo.find_issue(LABEL)
    if not result["found"]:
        if existing is None:
            return "clear: no issue"
        repo.comment(existing, "Latest monitoring run: all clear.")
        return f"clear: commented on #{existing}"
    if existing is None:
        repo.ensure_label(LABEL, "D93F0B", "Drift or a stale model found by mlci monitor")
        number, created = repo.find_or_create_issue(LABEL, TITLE, body)
        if created:
            return f"opened issue #{number}"
        existing = number  # opened meanwhile (another run): update it
    repo.edit_issue(existing, body)
    repo.comment(existing, f"Still found: {', '.join(result['found'])}")
    return f"updated #{existing}"


def dispatch_retrain(repo: Repo) -> str:
    ref = repo.dispatch("retrain.yml")
    return f"dispatched the retrain workflow on {ref}"


EXIT = {"found": 1, "not_enough_data": 3}


def run(
    params: Params, source: str, publish_issue: bool, retrain: bool, repo: Repo | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Check ``source``; with ``publish_issue`` / ``retrain``, write to GitHub through ``repo``
    (default: the repository the environment names, :func:`mlci.github_repo.connect`)."""
    if (publish_issue or retrain) and repo is None:  # a missing token stops before any work
        repo = github_repo.connect(github_run_url())
    result = check(params, fetch(source))
    actions = []
    wants_dispatch = retrain and "drift" in result["found"]
    if publish_issue and repo is not None:
        body = (OUT_DIR / "report.md").read_text(encoding="utf-8")
        actions.append(publish(result, body, repo))
    if wants_dispatch and repo is not None:
        actions.append(dispatch_retrain(repo))
    return result, actions
