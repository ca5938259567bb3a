"""Helpers for tests that drive real tools (git, dvc, the CLI) as subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The machinery's test bed: the Palmer Penguins example as a frozen fixture project, so the
# tests do not depend on the adopter's package (`make adopt` replaces src/project/, params.yaml
# and the sample data; these copies stay). The test process imports this `project` package
# (tests/conftest.py), and so does every subprocess that does not run in a project copy.
EXAMPLE = REPO / "tests" / "fixtures" / "penguins"
EXAMPLE_PARAMS = EXAMPLE / "params.yaml"
EXAMPLE_RAW = EXAMPLE / "data" / "penguins-raw.csv"
# This process's pytest-xdist worker ("gw0", "gw1", ...); None in a run without workers.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: the project's venv first on PATH, no telemetry."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ITERATIVE_DO_NOT_TRACK"] = "1"
    env["DVC_NO_ANALYTICS"] = "1"
    env["PYTHONPATH"] = str(EXAMPLE / "src")  # the example's contract, unless in a copy
    env.pop("MLCI_PARAMS", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the test process's own (tests/conftest.py)
    env.update(extra)
    return env


def project_env(cwd: Path) -> dict[str, str]:
    """In a repository copy, its own ``src/`` comes first on the import path: the venv's
    editable install points at this checkout's ``src/``, whose adopter package may differ."""
    src = Path(cwd) / "src"
    if Path(cwd).resolve() == REPO or not (src / "project").is_dir():
        return {}  # this checkout itself: the example's project, as in the test process
    return {"PYTHONPATH": str(src)}


def run(cmd: list[str], cwd: Path, check: bool = True, **extra_env: str):
    env = tool_env(**{**project_env(cwd), **extra_env})
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def git(cwd: Path, *args: str, check: bool = True):
    return run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd,
        check=check,
    )


def copy_repo(dest: Path) -> Path:
    """Copy the tracked files of this repository into ``dest`` and make it a fresh git repo."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "base")
    return dest


# The test projects (generated fixtures, copies of the example, adopted tables) run evaluate with
# fewer permutation and latency repeats than the template's 10 and 50: no test reads the
# spreads, and it takes about 0.4 s off each of the suite's many evaluate runs.
TEST_REPEATS = {"permutation_repeats": 3, "latency_repeats": 5}


def with_test_repeats(text: str, where: Path) -> str:
    """``params.yaml`` text with TEST_REPEATS in place of the template's values (comments kept)."""
    for setting, template in (("permutation_repeats", 10), ("latency_repeats", 50)):
        line = f"{setting}: {template}"
        assert text.count(line) == 1, f"{where}: {line!r} not found once"
        text = text.replace(line, f"{setting}: {TEST_REPEATS[setting]}")
    return text


def copy_example(dest: Path) -> Path:
    """A copy of this repository with the penguins example as its project (whatever the
    repository's own project is), without results (run the pipeline), committed."""
    copy_repo(dest)
    shutil.rmtree(dest / "src" / "project")
    shutil.copytree(EXAMPLE / "src" / "project", dest / "src" / "project")
    (dest / "params.yaml").write_text(with_test_repeats(EXAMPLE_PARAMS.read_text(), EXAMPLE_PARAMS))
    sample = dest / "data" / "sample"
    sample.mkdir(parents=True, exist_ok=True)
    for name in ("penguins-raw.csv", "README.md"):
        shutil.copy2(EXAMPLE / "data" / name, sample / name)
    for rel in ("dvc.lock", "models/model_meta.json", "models/tuned.json"):
        (dest / rel).unlink(missing_ok=True)
    for rel in ("reports", "data/raw", "data/interim", "data/processed"):
        shutil.rmtree(dest / rel, ignore_errors=True)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "the penguins example", "--allow-empty")
    return dest


def make_in(ws: Path, *args: str, timeout: float = 600, **env: str):
    """The real Makefile in the project copy ``ws``, on this checkout's environment: ``.venv``
    is linked, and ``-o .venv/.synced`` keeps make from syncing (writing to) that shared one."""
    uv = shutil.which("uv") or str(REPO / ".tools/bin/uv")
    if not (ws / ".venv").exists():
        (ws / ".venv").symlink_to(REPO / ".venv")
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.synced", *args, f"UV={uv}"],
        cwd=ws,
        env=tool_env(**project_env(ws), **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary folder of this test run that every pytest-xdist worker sees: a worker's base
    folder is ``<the run's base folder>/popen-gwN``."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if WORKER else base


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]
) -> Path:
    """``build(folder)`` once per test run, however many workers ask: the first builds it under a
    file lock, the others wait for it and get the same folder (read it or copy it; do not change
    it). A build that fails leaves nothing behind, so every test that needs it fails the same way.
    """
    folder = run_folder(tmp_path_factory) / "built" / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    done = folder.with_name(folder.name + ".done")
    with FileLock(folder.with_name(folder.name + ".lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            try:
                build(folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            done.touch()
    return folder
