"""Shared fixtures. The expensive one, ``trained_repo``, is a real copy of this repository with the
penguins example as its project (tests/fixtures/penguins; a real git repository) on which a
real ``dvc repro`` has run once per test session.

The test process imports the example's ``project`` package, not the adopter's: the machinery is
tested on a project it knows, and an adopter's own project is tested through subprocesses in a
copy of the repository as it is (tests/integration/test_this_project.py)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import EXAMPLE, REPO, copy_example, copy_repo, git, run, tool_env
from tests.projects import Project, make_project

# prometheus_client picks in-memory or multiprocess storage once, when it is first imported, from
# PROMETHEUS_MULTIPROC_DIR; BentoML's /metrics reads the multiprocess files. Set it before any
# test imports prometheus_client (test_server parses /metrics with it), so the in-process service
# tests see their counters whatever order the tests run in. Subprocesses do not inherit it
# (tests.helpers.tool_env): `bentoml serve` makes its own.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="mlci-prometheus-"))

# Before any test module imports mlci.contract (which imports `project`).
sys.path.insert(0, str(EXAMPLE / "src"))
assert "project" not in sys.modules, "the adopter's project was imported before the example's"

__all__ = ["REPO", "copy_repo", "git", "run", "tool_env"]


@pytest.fixture(scope="session")
def trained_fixture(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Project]:
    """``trained_fixture(kind)``: a generated fixture project (tests/projects.py) after a real
    ``dvc repro``, its results committed; built once per session and kind (do not modify it:
    copy it)."""
    built: dict[str, Project] = {}

    def get(kind: str) -> Project:
        if kind not in built:
            project = make_project(tmp_path_factory.mktemp(kind) / "repo", kind)
            run(["dvc", "repro"], project.root)
            git(project.root, "add", "-A")
            git(project.root, "commit", "-qm", "results")
            built[kind] = project
        return built[kind]

    return get


@pytest.fixture(scope="session")
def trained_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository copy after a real, full ``dvc repro`` (shared: do not modify it)."""
    dest = copy_example(tmp_path_factory.mktemp("trained") / "repo")
    run(["dvc", "repro", "--force"], dest)
    return dest


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A fresh copy of the example project of your own to change (no pipeline run yet)."""
    return copy_example(tmp_path / "repo")
