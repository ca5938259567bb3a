"""What a git ref had: committed files, its dvc.lock, and its model from the DVC cache.

Metrics, reports and plot data are committed (DVC `cache: false`), so the base branch's results
are read with `git show`; only the model itself needs the DVC cache.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from mlci.errors import UserError

MD5 = re.compile(r"[0-9a-f]{32}")


def git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout


def resolve(ref: str) -> str:
    sha = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if not sha:
        raise UserError(
            f"unknown git ref {ref!r}: fetch it first (for example `git fetch origin main`) "
            "or pass BASE=<branch, tag or commit>"
        )
    return sha.strip()


def show(ref: str, path: str | Path) -> str | None:
    """The file's text at ``ref``, or None when it did not exist there."""
    return git("show", f"{ref}:{Path(path).as_posix()}")


def show_json(ref: str, path: str | Path) -> Any | None:
    text = show(ref, path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def show_yaml(ref: str, path: str | Path) -> Any | None:
    text = show(ref, path)
    if text is None:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def read_json(path: str | Path) -> Any | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def read_yaml(path: str | Path) -> Any | None:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def lock_outs(lock: dict | None) -> dict[str, str]:
    """Output path -> md5 for every stage in a parsed dvc.lock."""
    outs: dict[str, str] = {}
    for stage in (lock or {}).get("stages", {}).values():
        for out in stage.get("outs", []):
            if "md5" in out:
                outs[out["path"]] = out["md5"]
    return outs


def text_digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def cached(md5: str, root: Path = Path()) -> Path | None:
    """A file's path in the local DVC cache (DVC 3 layout), if it is there."""
    if not MD5.fullmatch(md5 or ""):  # a lock file's value is never a path
        return None
    path = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return path if path.is_file() else None


def stale_stages() -> dict[str, list[str]]:
    """Stages whose code, params or source data changed since dvc.lock was written.

    Outputs or intermediate files that are merely absent (a fresh clone without the DVC cache)
    are not staleness; a modified dependency or parameter is.
    """
    try:
        out = subprocess.run(
            ["dvc", "status", "--json"], capture_output=True, text=True, check=True
        ).stdout
    except FileNotFoundError:
        raise UserError("`dvc` not found: run this through `make` or `uv run`") from None
    except subprocess.CalledProcessError as err:
        raise UserError(f"`dvc status` failed:\n{err.stderr.strip()}") from None
    stale: dict[str, list[str]] = {}
    for stage, entries in (json.loads(out or "{}") or {}).items():
        reasons = []
        for entry in entries:
            if not isinstance(entry, dict):
                if entry == "changed command":
                    reasons.append("its command changed")
                continue
            for path, state in entry.get("changed deps", {}).items():
                if isinstance(state, dict):  # params file: {key: state}
                    reasons += [f"param {key} {s}" for key, s in state.items()]
                elif state in ("modified", "new"):
                    reasons.append(f"{path} {state}")
            if "changed command" in entry:
                reasons.append("its command changed")
        if reasons:
            stale[stage.split(":")[-1]] = reasons
    return stale
