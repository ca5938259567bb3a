"""How old is the production model? ``mlci staleness`` and the "model age" part of a drift report.

The production model is the one recorded in ``dvc.lock`` (``models/model.skops``). Its training
time comes from, in this order:

1. ``trained_at`` in ``models/model_meta.json``, when the training stage writes one (it does
   not today);
2. git history: the commit date of the oldest commit in the unbroken run of commits whose
   ``dvc.lock`` records the model's current hash, i.e. when this exact model was committed.
   A commit that only changed other stages does not reset the age; a retrain that produced a
   new file does. This needs the full history: in a shallow clone (CI's default
   ``fetch-depth: 1``) the date is that of the oldest commit present and the result says so.

The file's modification time is never used: ``git clone`` and ``dvc pull`` reset it.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import yaml

from mlci import files, paths
from mlci.config import MonitorConfig
from mlci.errors import UserError

LOCK = Path("dvc.lock")
MAX_COMMITS = 500


def _git(*args: str, cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, cwd=cwd, timeout=60
        )
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    return out.stdout


def model_hash(lock_text: str, model: Path = paths.MODEL) -> str | None:
    """The md5 that a ``dvc.lock`` text records for the model file, if any."""
    try:
        lock = yaml.safe_load(lock_text) or {}
    except yaml.YAMLError:
        return None
    for stage in (lock.get("stages") or {}).values():
        for out in (stage or {}).get("outs") or []:
            if out.get("path") == model.as_posix():
                return out.get("md5")
    return None


def committed_at(lock: Path = LOCK, model: Path = paths.MODEL) -> tuple[dt.datetime, str] | None:
    """When the model that ``lock`` records first appeared in git history (see module doc)."""
    if not lock.is_file():
        return None
    current = model_hash(lock.read_text(), model)
    if current is None:
        return None
    log = _git("log", f"-{MAX_COMMITS}", "--format=%H %cI", "--", lock.as_posix())
    if not log:
        return None
    found: tuple[dt.datetime, str] | None = None
    for line in log.splitlines():
        sha, date = line.split(" ", 1)
        text = _git("show", f"{sha}:{lock.as_posix()}")
        if text is None or model_hash(text, model) != current:
            break
        found = (dt.datetime.fromisoformat(date.strip()), sha)
    return found


def staleness(
    cfg: MonitorConfig,
    meta_path: Path = paths.MODEL_META,
    lock: Path = LOCK,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    now = now or dt.datetime.now(dt.UTC)
    meta_path = Path(meta_path)
    if not meta_path.is_file():
        raise UserError(f"{meta_path} not found: run `make run` (or `dvc pull`) first")
    meta = files.read_json(meta_path)
    notes: list[str] = []
    trained_at: dt.datetime | None = None
    source = None
    commit = None
    if meta.get("trained_at"):
        try:
            trained_at = dt.datetime.fromisoformat(str(meta["trained_at"]))
            source = f"{meta_path} (trained_at)"
        except ValueError:
            notes.append(f"{meta_path}: trained_at {meta['trained_at']!r} is not an ISO-8601 time")
    if trained_at is None:
        found = committed_at(lock)
        if found is not None:
            trained_at, commit = found
            source = f"git: commit {commit[:12]} of {lock} that recorded this model"
            if (_git("rev-parse", "--is-shallow-repository") or "").strip() == "true":
                notes.append(
                    "shallow git clone: the model may be older than shown "
                    "(check out with fetch-depth: 0)"
                )
            if (_git("status", "--porcelain", "--", lock.as_posix()) or "").strip():
                notes.append(f"{lock} has uncommitted changes: the age is the committed model's")
    if trained_at is None:
        raise UserError(
            f"cannot tell when the model was trained: {meta_path} has no trained_at and "
            f"{lock} is not in git history (commit it, or run from a git clone of the repository)"
        )
    if trained_at.tzinfo is None:
        trained_at = trained_at.replace(tzinfo=dt.UTC)
    age_days = (now - trained_at).total_seconds() / 86400
    stale = age_days > cfg.max_model_age_days
    return {
        "status": "stale" if stale else "fresh",
        "stale": stale,
        "trained_at": trained_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "source": source,
        "age_days": round(age_days, 3),
        "max_model_age_days": cfg.max_model_age_days,
        "estimator": meta.get("estimator"),
        "notes": notes,
    }


def summary_text(result: dict[str, Any]) -> str:
    verdict = "STALE: retrain" if result["stale"] else "fresh"
    lines = [
        f"model age: {result['age_days']:.1f} days (trained {result['trained_at']}, "
        f"from {result['source']}); limit {result['max_model_age_days']} days: {verdict}"
    ]
    lines += [f"  note: {n}" for n in result["notes"]]
    return "\n".join(lines)
