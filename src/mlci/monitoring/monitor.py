"""The scheduled monitoring check: fetch the current batch, run drift and staleness, and keep ONE
GitHub issue up to date with the findings (never one issue per run).

``mlci monitor --current SOURCE [--publish] [--dispatch-retrain]`` is what the monitor workflow
calls; without ``--publish`` it only writes ``reports/monitor/report.md`` and exits 0 (clear),
1 (drift or staleness found) or 3 (not enough data for a drift verdict).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlci import files, paths
from mlci.config import Params
from mlci.errors import UserError
from mlci.github import run_url as github_run_url

OUT_DIR = Path("reports/monitor")
FETCHED = Path("data/monitor")
LABEL = "model-monitoring"
TITLE = "Model monitoring: drift or staleness found"
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")

Gh = Callable[[list[str]], str]


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


def github(args: list[str]) -> str:
    """Run the GitHub CLI (on runners: authenticated by GH_TOKEN)."""
    try:
        out = subprocess.run(["gh", *args], capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise UserError("`gh` (GitHub CLI) not found: --publish runs on GitHub runners") from None
    except subprocess.CalledProcessError as err:
        raise UserError(f"gh {' '.join(args[:2])} failed: {err.stderr.strip()}") from None
    return out.stdout


def publish(result: dict[str, Any], body_file: Path, gh: Gh = github) -> str:
    """Open or update the one monitoring issue. Returns what was done."""
    listed = json.loads(
        gh(["issue", "list", "--label", LABEL, "--state", "open", "--json", "number"]) or "[]"
    )
    existing = min((i["number"] for i in listed), default=None)
    if not result["found"]:
        if existing is None:
            return "clear: no issue"
        gh(["issue", "comment", str(existing), "--body", "Latest monitoring run: all clear."])
        return f"clear: commented on #{existing}"
    if existing is None:
        gh(["label", "create", LABEL, "--force", "--color", "D93F0B"])
        gh(["issue", "create", "--title", TITLE, "--label", LABEL, "--body-file", str(body_file)])
        return "opened an issue"
    gh(["issue", "edit", str(existing), "--body-file", str(body_file)])
    gh(["issue", "comment", str(existing), "--body", f"Still found: {', '.join(result['found'])}"])
    return f"updated #{existing}"


def dispatch_retrain(gh: Gh = github) -> str:
    gh(["workflow", "run", "retrain.yml"])
    return "dispatched the retrain workflow"


EXIT = {"found": 1, "not_enough_data": 3}


def run(
    params: Params, source: str, publish_issue: bool, retrain: bool, gh: Gh = github
) -> tuple[dict[str, Any], list[str]]:
    result = check(params, fetch(source))
    actions = []
    if publish_issue:
        actions.append(publish(result, OUT_DIR / "report.md", gh))
    if retrain and "drift" in result["found"]:
        actions.append(dispatch_retrain(gh))
    return result, actions
