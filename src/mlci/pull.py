"""``mlci pull`` (``make pull``): DVC-tracked data and models from the remote, with honest exits.

``dvc pull --allow-missing`` exits 0 and prints "Everything is up to date." whether the remote
answers or not and whether it had anything, so a CI step built on it cannot fail. Here:

* exit 0: every output ``dvc.lock`` records is in the workspace (pulled, or already here); or
  there is nothing to pull yet: no remote configured, or the default remote is a folder inside
  the repository that does not exist (the template's ``.dvc/storage``, git-ignored, is absent
  in every fresh clone);
* exit 1: the remote cannot be reached or listed (network, credentials, a missing plugin, a
  folder outside the repository that is not there); or it holds none of the outputs (a wrong
  bucket or prefix, or nothing pushed there yet: CI would recompute everything silently); or
  it holds some of them but not all. ``--allow-missing`` (``make pull ALLOW_MISSING=1``)
  accepts only the last, for steps that rebuild with ``make run`` next;
* exit 2: ``params.yaml`` is unsafe for DVC to read (:mod:`mlci.params_file`).

DVC itself reports an unreachable remote as one that lacks every file, so the remote is first
listed with ``dvc ls-url remote://NAME`` (the remote's own settings and credentials). Its name
and URL come from DVC's own configuration (every level, relative paths resolved), not from
``dvc remote list``, whose output is wrapped at 80 columns when it is not a terminal.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlci import params_file
from mlci.errors import UserError

# Words of a failure to reach a remote, as opposed to a location nothing was written to yet.
_UNREACHABLE = re.compile(
    r"connect|resolv|name or service|timed? ?out|unreachable|refused|ssl|certificate|credential"
    r"|denied|forbidden|unauthori[sz]|expired|token|40[13]\b|requires '|install",
    re.I,
)


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    message: str


def _dvc(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["dvc", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError("`dvc` not found: run this through `make` or `uv run`") from None


def _errors(result: subprocess.CompletedProcess[str]) -> str:
    """DVC's ERROR lines, as one line (its help footer dropped)."""
    lines = [x[6:].strip() for x in result.stderr.splitlines() if x.startswith("ERROR:")]
    return " ".join(lines or result.stderr.split()[-40:]) or f"exit code {result.returncode}"


def _default_remote() -> tuple[str, str] | None:
    """(name, url) of the default remote as DVC's merged configuration has it (system, global,
    repository and local files; a local path made absolute), or None when none is set."""
    from dvc.config import Config, ConfigError

    try:
        config = Config.from_cwd(validate=False)
    except ConfigError as err:
        raise UserError(f"DVC's configuration cannot be read: {err}") from None
    name = config.get("core", {}).get("remote")
    if not name:
        return None
    remote = config.get("remote", {}).get(name)
    if not remote or not remote.get("url"):
        raise UserError(f"the default DVC remote {name!r} has no url (.dvc/config, core.remote)")
    return name, str(remote["url"])


def _inside_repository(url: str) -> bool:
    """A local folder inside this repository (the template's default, ``.dvc/storage``)."""
    return "://" not in url and Path(url).resolve().is_relative_to(Path.cwd().resolve())


def _remote_state(name: str, url: str) -> str:
    """ "ok" (it answers), "absent" (nothing was ever written there) or "unreachable: ..."."""
    probe = _dvc("ls-url", f"remote://{name}")
    if probe.returncode == 0:
        return "ok"
    error = _errors(probe)
    if "does not exist" in error and not _UNREACHABLE.search(error):
        # A folder outside the repository that is not there: a mount or a path gone wrong.
        local = "://" not in url
        return "absent" if _inside_repository(url) or not local else f"unreachable: {error}"
    return f"unreachable: {error}"


def _tracked() -> list[str]:
    """Every output DVC caches (dvc.lock's and .dvc files'), as recorded, present or not."""
    listed = _dvc("ls", "--dvc-only", "--recursive", "--json", ".")
    if listed.returncode != 0:
        raise UserError(f"`dvc ls` failed: {_errors(listed)}")
    return sorted(entry["path"] for entry in json.loads(listed.stdout or "[]") if entry["isout"])


def _not_in_remote() -> set[str]:
    status = _dvc("data", "status", "--not-in-remote", "--json")
    if status.returncode != 0:
        raise UserError(f"`dvc data status` failed: {_errors(status)}")
    return set(json.loads(status.stdout or "{}").get("not_in_remote", []))


def pull(allow_missing: bool = False) -> Outcome:
    # `dvc` interpolates params.yaml: an alias bomb there would hang it before anything else.
    params_file.read_checked(Path("params.yaml"))
    remote = _default_remote()
    if remote is None:
        return Outcome(
            0,
            "nothing to pull: no default DVC remote is configured (`dvc remote add -d NAME "
            "URL`); `make run` builds everything",
        )
    name, url = remote
    where = f"DVC remote {name!r} ({url})"
    state = _remote_state(name, url)
    if state.startswith("unreachable"):
        return Outcome(1, f"{where} cannot be reached or listed: {state.split(': ', 1)[1]}")
    # Also with an absent remote: what the local cache holds is checked out.
    pulled = _dvc("pull", "--allow-missing")
    if pulled.returncode != 0:
        return Outcome(1, f"dvc pull from {where} failed: {_errors(pulled)}")
    tracked = _tracked()
    absent = [p for p in tracked if not Path(p).exists()]
    if not absent:
        done = (pulled.stdout.strip().splitlines() or [""])[-1]
        return Outcome(0, f"pulled ({done}): all {len(tracked)} DVC-tracked outputs are present")
    if state == "absent" and _inside_repository(url):
        return Outcome(
            0,
            f"nothing to pull yet: {where} is a folder in this repository that does not exist "
            f"(a fresh clone; nothing pushed from here yet); `make run` builds {len(absent)} "
            "missing",
        )
    not_in_remote = set() if state == "absent" else set(_not_in_remote())  # one dvc call
    held = [] if state == "absent" else [p for p in tracked if p not in not_in_remote]
    if not held:
        there = "does not exist: it holds" if state == "absent" else "holds"
        return Outcome(
            1,
            f"{where} {there} none of the {len(tracked)} outputs dvc.lock records: a wrong "
            "location (bucket, prefix, path), or nothing was pushed there yet. Check the url "
            "(`dvc remote modify`), or push from where they were built (`dvc push`)",
        )
    lacking = f"{where} lacks {len(absent)} of the {len(tracked)} outputs: {', '.join(absent)}"
    if allow_missing:
        return Outcome(0, f"{lacking}; `make run` rebuilds them")
    return Outcome(
        1,
        f"{lacking}. Push them where they were built (`dvc push`), or rebuild with `make run` "
        "(`make pull ALLOW_MISSING=1` accepts this)",
    )
